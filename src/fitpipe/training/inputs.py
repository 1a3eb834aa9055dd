"""Checks the data's structure and shapes against a built model's inputs before training.

Keras finds a mismatch only inside the traced step; fitpipe checks first and names the input,
the shape the model expects and the shape it got.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from fitpipe.errors import DataMismatchError, message, raw

__all__ = ["check_model_inputs"]


def _model_inputs(model: keras.Model) -> list[Any]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return []
    return list(inputs or [])


def _shape(spec: Any) -> tuple[int | None, ...] | None:
    shape = getattr(spec, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return tuple(tf.TensorShape(shape).as_list())


def _compatible(expected: tuple[int | None, ...], found: tuple[int | None, ...]) -> bool:
    if len(expected) == len(found) + 1 and expected[-1] == 1:
        expected = expected[:-1]
    elif len(found) == len(expected) + 1 and found[-1] == 1:
        found = found[:-1]
    if len(expected) != len(found):
        return False
    return all(
        e is None or f is None or e == f for e, f in zip(expected[1:], found[1:], strict=True)
    )


def _mismatch(caller: str, what: str, expected: str, fix: str, found: str) -> DataMismatchError:
    return DataMismatchError(message(caller, what, expected, fix, x=raw(found)))


def _check_names(inputs: list[Any], x: Mapping[str, Any], caller: str) -> None:
    names = [t.name for t in inputs]
    missing = [n for n in names if n not in x]
    unknown = [k for k in x if k not in names]
    if missing or unknown:
        raise _mismatch(
            caller,
            f"got input names that do not match the model (missing {missing}, unknown {unknown})",
            f"The model's inputs are named {names}",
            "Key the dict by the model's input names",
            f"dict with keys {sorted(map(str, x))}",
        )


def check_model_inputs(model: keras.Model, element_spec: Any, caller: str) -> None:
    """Raises ``DataMismatchError`` when the batches' ``x`` cannot feed the built model.

    Models that are not built yet (subclassed models before their first call) are not
    checked: their inputs are defined by the data.

    Args:
        model: The model.
        element_spec: The pipeline's element spec ``(x, ...)``.
        caller: The public method being run.

    """
    inputs = _model_inputs(model)
    if not inputs:
        return
    x = element_spec[0]
    if isinstance(x, Mapping):
        _check_names(inputs, x, caller)
        pairs = [(t, x[t.name]) for t in inputs]
    else:
        flat = tf.nest.flatten(x)
        if len(flat) != len(inputs):
            raise _mismatch(
                caller,
                f"got {len(flat)} input array(s) for a model with {len(inputs)} input(s)",
                f"The model's inputs are {[t.name for t in inputs]}",
                "Pass one array per model input, as a list in that order or a dict by name",
                f"{len(flat)} array(s)",
            )
        pairs = list(zip(inputs, flat, strict=True))
    for position, (tensor, spec) in enumerate(pairs):
        expected, found = tuple(tensor.shape), _shape(spec)
        if found is not None and not _compatible(expected, found):
            name = _input_label(tensor, position)
            raise _mismatch(
                caller,
                f"got data of shape {found} for {name}, which does not fit the model",
                f"The model expected shape {expected} for {name} (None: any size)",
                "Reshape the data, or rebuild the model's `keras.Input` to match it",
                f"data of shape {found} received for {name}",
            )


def _input_label(tensor: Any, position: int) -> str:
    name = str(getattr(tensor, "name", ""))
    if not name or name.startswith("keras_tensor"):
        return f"input {position}"
    return f"input {name!r}"
