"""The state of a run that a ``BackupAndRestore`` backup leaves out: random and metric state.

The callback saves ``model.save_weights``: the weights (trainable and not) and the optimizer's
variables. A training step changes two more kinds of variable, which the continuation of a
run depends on:

* **random state**: the state of every ``keras.random.SeedGenerator`` the model tracks
  (``Dropout``, ``GaussianNoise``, the random augmentation layers, a layer's own generator;
  seeded or drawn under ``keras.utils.set_random_seed``), read as the model's variables that
  are neither weights nor metric variables. Restored, a resumed run draws the masks and the
  noise an uninterrupted run draws;
* **metric state**: ``model.metrics_variables`` (the compiled loss tracker, the compiled
  metrics, metrics the model tracks). Restored when the resumed epoch begins, its logs are
  the whole epoch's, as an uninterrupted run reports them.

Values are saved exactly (raw bytes, base64), each with its path, dtype and shape; a saved
state that does not fit the model's variables is not restored (the caller warns).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["assign", "capture", "encode", "random_variables", "restore_metrics"]


def random_variables(model: keras.Model) -> list[Any]:
    """The model's variables that neither its weights nor its metrics hold (random state)."""
    kept = {id(v) for v in model.weights} | {id(v) for v in model.metrics_variables}
    return [v for v in model.variables if id(v) not in kept]


def encode(variables: Sequence[Any]) -> list[dict[str, Any]]:
    """The variables' values, JSON-ready and exact (raw bytes in base64).

    Args:
        variables: Keras variables.

    Returns:
        One ``{"path", "dtype", "shape", "data"}`` per variable, in order.
    """
    encoded = []
    for variable in variables:
        array = np.asarray(variable.numpy())  # convert_to_numpy warns under NumPy 2 (copy=)
        encoded.append(
            {
                "path": str(variable.path),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
            }
        )
    return encoded


def capture(model: keras.Model) -> dict[str, Any]:
    """The model's random and metric state, JSON-ready (see the module's docstring)."""
    return {"random": encode(random_variables(model)), "metrics": encode(model.metrics_variables)}


def _decode(entry: Any) -> np.ndarray | None:
    """The array of one :func:`encode` entry, or None when it is not one."""
    try:
        data = base64.b64decode(entry["data"])
        return np.frombuffer(data, dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])
    except (KeyError, TypeError, ValueError):
        return None


def assign(variables: Sequence[Any], saved: Any) -> bool:
    """Assigns the values :func:`encode` saved to ``variables``, when they fit them all.

    Args:
        variables: The variables, in the order they were saved.
        saved: What :func:`encode` returned for them.

    Returns:
        Whether they were assigned (nothing is when one does not fit: another model).
    """
    if not isinstance(saved, list) or len(saved) != len(variables):
        return False
    arrays = [_decode(entry) for entry in saved]
    for variable, array in zip(variables, arrays, strict=True):
        if array is None or tuple(array.shape) != tuple(variable.shape):
            return False
        if np.dtype(array.dtype) != np.dtype(keras.backend.standardize_dtype(variable.dtype)):
            return False
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)
    return True


def restore_metrics(model: keras.Model, saved: Any, build: Callable[[], None]) -> bool:
    """Restores the model's metric state, building its compiled metrics first if needed.

    A fresh process has built its compiled metrics only once the step has been traced:
    ``build`` traces it (running nothing) when the saved state holds more variables.

    Args:
        model: The model.
        saved: The ``"metrics"`` part of :func:`capture`'s state.
        build: Creates the variables the step creates when first traced.

    Returns:
        Whether the state was restored.
    """
    if not isinstance(saved, list):
        return False
    if len(model.metrics_variables) != len(saved):
        build()
    return assign(model.metrics_variables, saved)
