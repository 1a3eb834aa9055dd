"""Targets given as None for the outputs compiled without a loss, as Keras takes them.

Keras leaves an output untrained when its loss is None (``loss=["mse", None]`` or
``{"oa": "mse", "ob": None}``) and then needs no target for it: ``y=[ya, None]`` or
``{"oa": ya, "ob": None}`` train as ``y=[ya]`` or ``{"oa": ya}`` do (its compiled loss drops
the fields of outputs without a loss). fitpipe drops those None targets of a list or tuple
``y`` (and their ``sample_weight`` entries) before the arrays are adapted (a dict ``y``'s
keys come back as None in the step, where Keras' compiled loss reads them: ``conversions.
lossless_output_names``); batches of generators and
``tf.data`` carry them as absent values, which the step never reads. A None target for an
output that has a loss is refused before any step (Keras fails in the step with "None values
not supported").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from fitpipe.adapters import nesting
from fitpipe.errors import DataMismatchError, message, raw
from fitpipe.training.check_rules import losses_by_output, target_leaves

__all__ = ["check_absent_targets", "without_absent_targets"]

_ABSENT = (type(None), tf.OptionalSpec, type(tf.type_spec_from_value(None)))


def _keys(y: Any) -> list[Any]:
    return list(y) if isinstance(y, Mapping) else list(range(len(y)))


def _owner(model: keras.Model, y: Any, key: Any) -> int | None:
    """The position of the model output the target ``y[key]`` belongs to, if known."""
    outputs = list(getattr(model, "outputs", None) or [])
    if isinstance(y, Mapping):
        names = list(getattr(model, "output_names", None) or [])
        return names.index(key) if key in names and len(names) == len(outputs) else None
    return key if len(y) == len(outputs) else None


def _refused(model: keras.Model, position: int, caller: str, y: Any) -> DataMismatchError:
    names = list(getattr(model, "output_names", None) or [])
    name = repr(names[position]) if position < len(names) else str(position)
    return DataMismatchError(
        message(
            caller,
            f"got None as the target of output {name}, which is compiled with a loss",
            "An output with a loss compares its predictions with targets; only an output "
            "whose loss is None may have None as its target (or none at all)",
            "Pass the output's targets, or compile it without a loss (e.g. "
            '`loss=["mse", None]` or `{"out_a": "mse", "out_b": None}`)',
            y=raw(nesting(y)),
        )
    )


def without_absent_targets(
    model: keras.Model, y: Any, sample_weight: Any, caller: str
) -> tuple[Any, Any]:
    """``y`` and ``sample_weight`` without the None targets of outputs that have no loss.

    Args:
        model: The compiled model.
        y: The targets given: a list, tuple or dict of them may hold None.
        sample_weight: The weights given; where nested as ``y``, the same entries are left
            out.
        caller: The public method being run.

    Returns:
        ``(y, sample_weight)``, unchanged where ``y`` holds no None target.

    Raises:
        DataMismatchError: For a None target of an output that has a loss.
    """
    if not isinstance(y, (Mapping, list, tuple)) or not y:
        return y, sample_weight
    absent = [key for key in _keys(y) if y[key] is None]
    losses = losses_by_output(model)
    if not absent or losses is None:
        return y, sample_weight
    owners = [_owner(model, y, key) for key in absent]
    if any(owner is None for owner in owners):
        return y, sample_weight
    for owner in owners:
        if owner is not None and losses[owner] is not None:
            raise _refused(model, owner, caller, y)
    return _without(y, absent), _weights_without(sample_weight, y, absent)


def _without(structure: Any, absent: list[Any]) -> Any:
    if isinstance(structure, Mapping):
        return {key: value for key, value in structure.items() if key not in absent}
    return type(structure)(v for i, v in enumerate(structure) if i not in absent)


def _weights_without(sample_weight: Any, y: Any, absent: list[Any]) -> Any:
    """The weights without the entries of the targets left out, where they nest as ``y``."""
    if isinstance(y, Mapping) and isinstance(sample_weight, Mapping):
        return _without(sample_weight, absent)
    same_length = isinstance(sample_weight, (list, tuple)) and len(sample_weight) == len(y)
    if isinstance(y, (list, tuple)) and same_length:
        return _without(sample_weight, absent)
    return sample_weight


def check_absent_targets(model: keras.Model, y_spec: Any, caller: str) -> None:
    """Refuses batches whose target for an output with a loss is absent (None in a batch).

    Args:
        model: The compiled model.
        y_spec: The spec of the batches' targets.
        caller: The public method being run.

    Raises:
        DataMismatchError: For an absent target of an output that has a loss.
    """
    leaves, losses = tf.nest.flatten(y_spec), losses_by_output(model)
    owners = target_leaves(y_spec, model)
    if losses is None or owners is None:
        return
    for owner, leaf in zip(owners, leaves, strict=True):
        if isinstance(leaf, _ABSENT) and losses[owner] is not None:
            shown = tf.nest.map_structure(lambda s: None if isinstance(s, _ABSENT) else s, y_spec)
            raise _refused(model, owner, caller, shown)
