"""Targets given as None for the outputs compiled without a loss, as Keras takes them.

Keras leaves an output untrained when its loss is None (``loss=["mse", None]`` or
``{"oa": "mse", "ob": None}``) and then needs no target for it: ``y=[ya, None]`` or
``{"oa": ya, "ob": None}`` train, its compiled loss and metrics reading each target by the
position or key of its output (a None target is simply not read). fitpipe's adapters take
arrays, not None: :func:`without_absent_targets` leaves the None targets out before the data
is adapted, and :func:`restore_targets` puts them back, as None, where Keras' compiled loss
and metrics see them (in the step, traced once, and for the checks of the batches' specs),
so every target keeps its position or key:

* a list or tuple ``y`` (one entry per output) with None entries becomes a dict of its
  present entries by position (``{0: ya, 2: yc}``), back as a list ``[ya, None, yc]``;
* a dict ``y`` loses its None entries, back as None for the outputs without a loss;
* ``sample_weight`` nested as ``y`` goes the same way: the entries of the targets left out,
  and in a list its own None entries, are left out and come back as None; a dict's None
  weights of a present target become weights of 1 (what Keras' loss and weighted metrics
  compute without weights), so that its keys still nest as ``y``'s.

Batches of generators and ``tf.data`` carry absent targets as absent values, None in the
step. A None target for an output that has a loss is refused before any step (Keras fails
in the step with "None values not supported"), and so is one for an output with metrics (Keras
fails in the metric's update).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitpipe.adapters import nesting
from fitpipe.errors import DataMismatchError, message, raw
from fitpipe.training.check_rules import losses_by_output, target_leaves

__all__ = [
    "TargetLayout",
    "check_absent_targets",
    "restore_targets",
    "restored_targets",
    "target_layout",
    "weights_for_keras",
    "without_absent_targets",
]

_ABSENT = (type(None), tf.OptionalSpec, type(tf.type_spec_from_value(None)))


@dataclass(frozen=True)
class TargetLayout:
    """What :func:`restore_targets` needs of the model to put absent targets back.

    Attributes:
        outputs: The number of model outputs.
        names: The outputs' names (``model.output_names``), or empty when unknown.
        lossless: The names of the outputs compiled without a loss.
        stripped: Whether targets may have been left out (the loss of every output is
            known): a dict by position is then put back as a list, and only then.
        listed: The model's outputs are a list or tuple: weights keyed by output name
            reach Keras' compiled loss as a list in the outputs' order (it reads weights by
            its outputs' positions: a dict of them failed with ``KeyError: 0``).
    """

    outputs: int
    names: tuple[str, ...]
    lossless: frozenset[str]
    stripped: bool = True
    listed: bool = False

    @property
    def keys(self) -> frozenset[str]:
        """The names a dict ``y`` keyed by output name may use (none if they repeat)."""
        return frozenset(self.names) if len(set(self.names)) == len(self.names) else frozenset()


def target_layout(model: keras.Model) -> TargetLayout:
    """The model's :class:`TargetLayout` (read once, where its step is made)."""
    outputs = list(getattr(model, "outputs", None) or [])
    names = tuple(getattr(model, "output_names", None) or [])
    losses = losses_by_output(model)
    lossless: frozenset[str] = frozenset()
    if losses is not None and len(names) == len(losses):
        lossless = frozenset(name for name, loss in zip(names, losses, strict=True) if loss is None)
    return TargetLayout(len(outputs), names, lossless, losses is not None, _listed(model))


def _listed(model: keras.Model) -> bool:
    """Whether the model's outputs are a list or tuple (False where not known yet)."""
    try:
        return isinstance(model.output, (list, tuple))
    except (AttributeError, ValueError):  # a model never called has no output yet
        return False


def _by_position(structure: Any) -> bool:
    return (
        isinstance(structure, Mapping)
        and bool(structure)
        and all(isinstance(key, int) and not isinstance(key, bool) for key in structure)
    )


def restore_targets(layout: TargetLayout, structure: Any, named: Any = None) -> Any:
    """``y`` (or ``sample_weight``) with the entries :func:`without_absent_targets` left out.

    Args:
        layout: The model's :func:`target_layout`.
        structure: The targets (tensors or their specs), maybe without some entries.
        named: For weights, the targets as they came (before their own restoration): a dict
            of weights gets back only the entries left out with those targets.

    Returns:
        A dict by position back as a list of one entry per output, None where left out; a
        dict by name with None for the outputs without a loss that it (and, for weights,
        the targets) does not name; anything else as it is.
    """
    if layout.stripped and _by_position(structure):
        return [structure.get(i) for i in range(max(layout.outputs, max(structure) + 1))]
    if not isinstance(structure, Mapping) or not structure or not set(structure) <= layout.keys:
        return structure  # not keyed by output names (say, a nested output structure)
    missing = layout.lossless - set(structure)
    if named is not None:
        missing = missing - set(named) if isinstance(named, Mapping) else frozenset()
    if not missing:
        return structure
    return {**structure, **{name: None for name in layout.names if name in missing}}


def restored_targets(layout: TargetLayout, parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """``(y, sample_weight, ...)`` of a batch with their absent entries back (see above)."""
    if len(parts) < 2:
        return (restore_targets(layout, parts[0]),) if parts else parts
    y, weights = parts[0], parts[1]
    return (restore_targets(layout, y), restore_targets(layout, weights, y), *parts[2:])


def weights_for_keras(layout: TargetLayout, parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """``(y, sample_weight, ...)`` with weights keyed by output name as Keras' loss reads them.

    For a model whose outputs are a list, a dict of weights by output name becomes a list
    in the outputs' order (``layout.listed``); Keras reads a dict ``y`` by output name
    itself, but its weights by position. Anything else is returned as it is.
    """
    if len(parts) < 2 or not layout.listed:
        return parts
    weights = parts[1]
    if not isinstance(weights, Mapping) or not weights or not set(weights) <= layout.keys:
        return parts
    return (parts[0], [weights.get(name) for name in layout.names], *parts[2:])


def _keys(y: Any) -> list[Any]:
    return list(y) if isinstance(y, Mapping) else list(range(len(y)))


def _owner(model: keras.Model, y: Any, key: Any) -> int | None:
    """The position of the model output the target ``y[key]`` belongs to, if known."""
    outputs = list(getattr(model, "outputs", None) or [])
    if isinstance(y, Mapping):
        names = list(getattr(model, "output_names", None) or [])
        return names.index(key) if key in names and len(names) == len(outputs) else None
    return key if len(y) == len(outputs) else None


def measured_outputs(model: keras.Model) -> frozenset[int]:
    """The positions of the outputs compiled with metrics (or weighted metrics), if known.

    Metrics given per output: a list of one entry per output, or a dict by output name.
    """
    try:  # Keras' public record of the compile arguments (read only for an absent target)
        config = model.get_compile_config() or {}
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        config = {}
    names = list(getattr(model, "output_names", None) or [])
    found: set[int] = set()
    for argument in ("metrics", "weighted_metrics"):
        user = config.get(argument) if isinstance(config, Mapping) else None
        if isinstance(user, Mapping):
            found |= {names.index(key) for key, value in user.items() if value and key in names}
        elif isinstance(user, (list, tuple)) and len(user) == len(names) > 1:
            found |= {i for i, value in enumerate(user) if value}
    return frozenset(found)


def _refused(
    model: keras.Model, position: int, caller: str, y: Any, metrics: bool = False
) -> DataMismatchError:
    names = list(getattr(model, "output_names", None) or [])
    name = repr(names[position]) if position < len(names) else str(position)
    if metrics:
        what = f"got None as the target of output {name}, which is compiled with metrics"
        expected = (
            "An output's metrics compare its predictions with targets; only an output with "
            "neither a loss nor metrics may have None as its target"
        )
        fix = "Pass the output's targets, or compile it without metrics (e.g. " + (
            '`metrics=[["mae"], []]` or `{"out_a": ["mae"]}`)'
        )
    else:
        what = f"got None as the target of output {name}, which is compiled with a loss"
        expected = (
            "An output with a loss compares its predictions with targets; only an output "
            "whose loss is None may have None as its target (or none at all)"
        )
        fix = (
            "Pass the output's targets, or compile it without a loss (e.g. "
            '`loss=["mse", None]` or `{"out_a": "mse", "out_b": None}`)'
        )
    return DataMismatchError(message(caller, what, expected, fix, y=raw(nesting(y))))


def _check_owner(model: keras.Model, owner: int, losses: list[Any], caller: str, y: Any) -> None:
    """Refuses an absent target of the output at ``owner`` where it has a loss or metrics."""
    if losses[owner] is not None:
        raise _refused(model, owner, caller, y)
    if owner in measured_outputs(model):
        raise _refused(model, owner, caller, y, metrics=True)


def without_absent_targets(
    model: keras.Model, y: Any, sample_weight: Any, caller: str
) -> tuple[Any, Any]:
    """``y`` and ``sample_weight`` without their None entries, positions kept.

    Args:
        model: The compiled model.
        y: The targets given: a list, tuple or dict of them may hold None.
        sample_weight: The weights given; where nested as ``y``, the entries of the targets
            left out and their own None entries are left out too.
        caller: The public method being run.

    Returns:
        ``(y, sample_weight)``: a list or tuple left without entries as a dict of the others
        by position, a dict without them (see the module docstring); unchanged where
        nothing is absent.

    Raises:
        DataMismatchError: For a None target of an output that has a loss or metrics.
    """
    if not isinstance(y, (Mapping, list, tuple)) or not y:
        return y, sample_weight
    absent = [key for key in _keys(y) if y[key] is None]
    losses = losses_by_output(model)
    owners = [_owner(model, y, key) for key in absent]
    if losses is None or any(owner is None for owner in owners):
        return y, sample_weight
    for owner in owners:
        if owner is not None:
            _check_owner(model, owner, losses, caller, y)
    return _without(y, absent), _weights_without(sample_weight, y, absent)


def _without(structure: Any, absent: list[Any]) -> Any:
    if isinstance(structure, Mapping):
        return {key: value for key, value in structure.items() if key not in absent}
    if not absent:
        return structure
    return {i: value for i, value in enumerate(structure) if i not in absent}


def _weights_without(sample_weight: Any, y: Any, absent: list[Any]) -> Any:
    """The weights without the entries of the targets left out, and their None entries."""
    if isinstance(y, Mapping) and isinstance(sample_weight, Mapping):
        left = {
            key: _unweighted(y[key]) if value is None and key in y else value
            for key, value in _without(sample_weight, absent).items()
        }
        left = {key: value for key, value in left.items() if value is not None}
    elif isinstance(y, (list, tuple)) and _same_length(sample_weight, y):
        nones = [i for i, value in enumerate(sample_weight) if value is None]
        left = _without(sample_weight, sorted({*absent, *nones}))
    else:
        return sample_weight
    return left if left or not sample_weight else None  # all None: unweighted, as in Keras


def _unweighted(target: Any) -> Any:
    """Weights of 1 for a dict's target weighed by None (as Keras weighs it: not at all).

    A dict of weights keeps its keys (a dict by name has no position to keep); None where
    the target's rows are not counted (left to the adapters).
    """
    rows = getattr(target, "shape", None)
    count = rows[0] if rows is not None and len(rows) else None
    if count is None:
        return None
    return np.ones((int(count),), dtype=keras.config.floatx())


def _same_length(sample_weight: Any, y: Any) -> bool:
    return isinstance(sample_weight, (list, tuple)) and len(sample_weight) == len(y)


def check_absent_targets(model: keras.Model, y_spec: Any, caller: str) -> None:
    """Refuses batches whose target for an output with a loss or metrics is absent.

    Args:
        model: The compiled model.
        y_spec: The spec of the batches' targets, absent ones as None (or empty Optionals).
        caller: The public method being run.

    Raises:
        DataMismatchError: For an absent target of an output that has a loss or metrics.
    """
    leaves, losses = tf.nest.flatten(y_spec), losses_by_output(model)
    owners = target_leaves(y_spec, model)
    if losses is None or owners is None:
        return
    for owner, leaf in zip(owners, leaves, strict=True):
        if isinstance(leaf, _ABSENT):
            shown = tf.nest.map_structure(lambda s: None if isinstance(s, _ABSENT) else s, y_spec)
            _check_owner(model, owner, losses, caller, shown)
