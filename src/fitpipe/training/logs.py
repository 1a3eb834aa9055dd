"""Logs: the values a step returns, as callbacks, History and ``evaluate`` see them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

__all__ = ["epoch_logs", "flatten_in_order", "pythonify"]


def pythonify(logs: Mapping[str, Any] | None, flatten: bool = True) -> dict[str, Any]:
    """Turns tensor values into Python floats (scalars) or NumPy arrays, keys sorted.

    Sorted as Keras' own logs are (``return_dict=True`` results, History, callbacks' logs).
    A nested dict's entries take its key's place; with ``flatten`` False it is kept (Keras'
    callback list flattens it so, after any ``val_`` entries are added beside it).
    """
    result: dict[str, Any] = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, Mapping):
            if flatten:
                result.update(pythonify(value))
            else:
                result[key] = pythonify(value, flatten=False)
            continue
        array = np.asarray(value)
        result[key] = float(array) if array.ndim == 0 else array
    return result


def epoch_logs(model: keras.Model, step_logs: Any, flatten: bool = True) -> dict[str, Any]:
    """The logs of a finished epoch: the model's metric results when they match the step's.

    A custom ``train_step`` may return other keys than the model's metrics; its last logs are
    then used as they are (as Keras does).

    Args:
        model: The model.
        step_logs: What the last step returned.
        flatten: Flatten the dicts a custom step nests (``fit`` leaves them to the callback
            list, as Keras does: History then keeps their entries where their key sorts
            among the others, ``val_`` entries included).

    Returns:
        Python values by name.

    """
    metrics = model.get_metrics_result()
    if isinstance(step_logs, Mapping) and set(step_logs) == set(metrics):
        return pythonify(metrics, flatten)
    if isinstance(step_logs, Mapping):
        return pythonify(step_logs, flatten)
    return pythonify(metrics, flatten)


def _metric_names(model: keras.Model) -> list[str]:
    names: list[str] = []
    for metric in model.metrics:
        children = getattr(metric, "metrics", None)
        if metric.name == "compile_metrics" and isinstance(children, list):
            names.extend(child.name for child in children)
        else:
            names.append(metric.name)
    return names


def flatten_in_order(model: keras.Model, logs: Mapping[str, Any]) -> Any:
    """The documented return of ``evaluate``/``*_on_batch`` without ``return_dict``.

    A scalar when there is one value (single output, no metrics), else a list in the order of
    the model's metrics, then any other keys sorted.
    """
    names = _metric_names(model)
    results = [logs[name] for name in names if name in logs]
    results += [logs[key] for key in sorted(logs) if key not in names]
    return results[0] if len(results) == 1 else results
