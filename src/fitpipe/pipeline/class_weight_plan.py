"""``class_weight`` planned for one source: checked against its targets, ``"balanced"`` counted.

:func:`source_class_weight` turns the argument (a map, ``"balanced"``, or such values by
output name) into a :class:`ClassWeightPlan`: what the pipeline applies to each target, and
what ``fit`` reports. :func:`weigh_batch` plans and applies it to one batch
(``train_on_batch``). The maps' checks and their application to batches are in
:mod:`fitpipe.pipeline.class_weights`, which also says what each form means.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fitpipe.adapters import (
    ArraySource,
    ClassCountable,
    Source,
    check_numeric_targets,
    class_counts,
)
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message
from fitpipe.pipeline.class_weights import (
    BALANCED,
    TargetKey,
    apply_class_weight,
    balanced_weights,
    check_class_weight,
    check_single_target,
    class_weight_table,
    is_per_output,
    target_leaves,
)
from fitpipe.schemas import closest_column

__all__ = ["ClassWeightPlan", "source_class_weight", "weigh_batch"]


@dataclasses.dataclass(frozen=True)
class ClassWeightPlan:
    """``class_weight`` checked against a source's targets, ``"balanced"`` resolved.

    Attributes:
        applied: What the pipeline applies: class to weight (one target), or such maps by
            :data:`TargetKey` (several targets).
        resolved: The argument as given with ``"balanced"`` replaced by its computed map
            (per-output maps keyed by output name): what ``fit`` reports.
        balanced_rows: The rows (or time steps) counted for ``"balanced"``; None when no
            weight was computed.
    """

    applied: dict[Any, Any]
    resolved: dict[Any, Any]
    balanced_rows: int | None = None


Counts = dict[TargetKey, dict[int, int]]


def _count(source: Source, class_weight: Any, caller: str) -> Counts:
    """Class counts of every target: from rows held in memory, or the source's own pass."""
    if isinstance(source, ArraySource):
        return {key: class_counts(leaf, caller) for key, leaf in target_leaves(source.y)}
    if isinstance(source, ClassCountable):
        counts: Counts = source.count_classes()
        return counts
    raise FitpipeValueError(
        message(
            caller,
            f'cannot compute `class_weight="{BALANCED}"` for this input',
            "Balanced weights count the classes of the targets before training; an input "
            "read once in batches (a generator, tf.data, a PyDataset) cannot be counted "
            "without consuming it",
            "Count the classes yourself and pass the map, e.g. from "
            '`sklearn.utils.class_weight.compute_class_weight("balanced", ...)`',
            class_weight=class_weight,
        )
    )


def _balanced(
    value: str, counts: dict[int, int], class_weight: Any, caller: str
) -> tuple[dict[int, float], int]:
    """The balanced map of one target's counts, and the rows counted."""
    if value != BALANCED:
        raise FitpipeValueError(
            message(
                caller,
                f"got the string {value!r} as `class_weight`",
                f'The one string `class_weight` takes is "{BALANCED}"',
                'Pass `"balanced"` or a map from class index to weight',
                class_weight=class_weight,
            )
        )
    return balanced_weights(counts), sum(counts.values())


def _unknown_output(name: Any, names: Sequence[str], class_weight: Any, caller: str) -> Exception:
    guess = closest_column(name, names) if isinstance(name, str) and names else None
    hint = f" (did you mean {guess!r}?)" if guess is not None else ""
    return FitpipeValueError(
        message(
            caller,
            f"got `class_weight` for the unknown output {name!r}{hint}",
            "Keys of a per-output `class_weight` are output names: "
            + (", ".join(repr(n) for n in names) or "(none known)"),
            "Rename the key, or pass the targets as a dict keyed by output name",
            class_weight=class_weight,
        )
    )


def _target_key(
    name: Any, y: Any, output_names: Sequence[str] | None, class_weight: Any, caller: str
) -> TargetKey:
    """Where the output ``name`` is in the targets ``y``."""
    names = list(output_names or ())
    if isinstance(y, Mapping):
        if name in y:
            return str(name)
        names = [str(k) for k in y]
    elif isinstance(y, (list, tuple)):
        if name in names and names.index(name) < len(y):
            return names.index(name)
    elif len(names) == 1 and name == names[0]:
        return None
    raise _unknown_output(name, names, class_weight, caller)


def _per_output_plan(
    class_weight: Mapping[Any, Any],
    y: Any,
    counts: Callable[[], Counts],
    caller: str,
    output_names: Sequence[str] | None,
) -> ClassWeightPlan:
    """Checks (and resolves) the map of each output named."""
    if y is None:
        check_single_target(y, caller)
    applied: dict[TargetKey, dict[int, float]] = {}
    resolved: dict[Any, dict[int, float]] = {}
    rows = None
    for name, weights in class_weight.items():
        key = _target_key(name, y, output_names, class_weight, caller)
        if isinstance(weights, str):
            table, rows = _balanced(weights, counts()[key], class_weight, caller)
        elif isinstance(weights, Mapping):
            table = check_class_weight(weights, caller)
        else:
            raise FitpipeTypeError(
                message(
                    caller,
                    f"got {weights!r} for the output {name!r} in a per-output `class_weight`",
                    'Each output maps to a map from class index to weight, or to "balanced"',
                    "Give every output a map, or pass one map for a single output",
                    class_weight=class_weight,
                )
            )
        applied[key], resolved[name] = table, table
    single = list(applied) == [None]
    return ClassWeightPlan(applied[None] if single else applied, resolved, rows)


def source_class_weight(
    class_weight: Any,
    source: Source,
    caller: str,
    output_names: Sequence[str] | None = None,
) -> ClassWeightPlan | None:
    """Checks ``class_weight`` against the source's targets and resolves ``"balanced"``.

    Args:
        class_weight: A map from class index to weight, ``"balanced"``, a per-output map
            of those, or None.
        source: Rows or batches.
        caller: The public method, for messages.
        output_names: The model's output names, to find list targets by name.

    Returns:
        The plan, or None when no ``class_weight`` was given.

    Raises:
        FitpipeValueError: For invalid maps, unknown outputs, and ``"balanced"`` for inputs
            that cannot be counted before training.
        FitpipeTypeError: For string targets (class weights map class indices).
    """
    if class_weight is None:
        return None
    if isinstance(source, ArraySource):
        y = source.y
    else:
        spec = source.make_dataset().element_spec
        y = spec[1] if len(spec) > 1 else None
    check_numeric_targets(y, caller)
    counted: dict[str, Counts] = {}

    def counts() -> Counts:
        if "all" not in counted:
            counted["all"] = _count(source, class_weight, caller)
        return counted["all"]

    if is_per_output(class_weight):
        return _per_output_plan(class_weight, y, counts, caller, output_names)
    check_single_target(y, caller, class_weight, output_names)
    if isinstance(class_weight, str):
        table, rows = _balanced(class_weight, counts()[None], class_weight, caller)
        return ClassWeightPlan(table, table, rows)
    table = check_class_weight(class_weight, caller)
    return ClassWeightPlan(table, table)


def weigh_batch(
    batch: tuple[Any, ...],
    class_weight: Any,
    caller: str,
    output_names: Sequence[str] | None = None,
) -> tuple[Any, ...]:
    """One batch of tensors ``(x, y)`` or ``(x, y, sw)`` with ``class_weight`` applied.

    Args:
        batch: The batch (``train_on_batch``'s).
        class_weight: As :func:`source_class_weight` takes it (``"balanced"`` counts this
            batch).
        caller: The public method, for messages.
        output_names: The model's output names.

    Returns:
        ``(x, y, sw)``, the weights multiplied by the class weights.
    """
    rows = ArraySource(batch[0], batch[1], None, 0)
    plan = source_class_weight(class_weight, rows, caller, output_names)
    if plan is None:
        return batch
    return tuple(apply_class_weight(batch, class_weight_table(plan.applied)))
