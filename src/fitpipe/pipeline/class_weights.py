"""``class_weight``: a map from class index to weight, turned into per-sample weights.

Targets of rank 1, or of rank >= 2 with a final dimension of 1, are sparse class labels;
targets of rank >= 2 with a wider final dimension are one-hot (the class is the ``argmax``),
as the Keras documentation states. Classes missing from the map weigh 1. When sample weights
are given as well, the two are multiplied.

Beyond Keras:

* ``class_weight="balanced"`` is resolved to a map from the targets before the pipeline is
  built, by scikit-learn's definition ``n_samples / (n_classes * count)`` (classes counted
  are those present): from the rows held in memory, or, for Parquet streamed from disk, by
  a counting pass over the target columns (the source's ``count_classes``). Inputs read
  once in batches (generators, ``tf.data``, ``PyDataset``) cannot be counted: an error.
* A per-output map ``{"out_a": {0: 1.0, 1: 5.0}, "out_b": "balanced"}`` (values are maps
  or ``"balanced"``) weights each output's loss by its own targets. Keys are output names:
  the keys of dict targets, or, for list targets, the model's ``output_names`` (given by
  the trainer as ``AdaptRequest.output_names``). Outputs left out weigh 1; a single
  ``sample_weight`` is multiplied into every output's weights, as Keras broadcasts it.

Here: the maps' checks, their lookup tables and their application to batches (and to
datasets, shards); the argument planned for one source (``"balanced"`` counted, maps by
output resolved) is :mod:`fitpipe.pipeline.class_weight_plan`'s.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitpipe.adapters import class_counts
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message

__all__ = [
    "BALANCED",
    "TargetKey",
    "apply_class_weight",
    "balanced_weights",
    "check_class_weight",
    "check_single_target",
    "class_counts",
    "class_weight_table",
    "is_per_output",
    "target_leaves",
    "weighted_dataset",
    "weighted_shard",
]


#: The key of one target in the targets' structure: the dict key, or the list position; None
#: for a single target.
TargetKey = str | int | None

#: ``class_weight="balanced"``: ``n_samples / (n_classes * count)``, as scikit-learn.
BALANCED = "balanced"


def is_per_output(class_weight: Any) -> bool:
    """True for a per-output map: a map with a value that is a map or ``"balanced"``."""
    return isinstance(class_weight, Mapping) and any(
        isinstance(value, Mapping) or (isinstance(value, str) and value == BALANCED)
        for value in class_weight.values()
    )


def target_leaves(y: Any) -> list[tuple[TargetKey, Any]]:
    """The targets of ``y`` by key: dict keys, list positions, or ``[(None, y)]``."""
    if isinstance(y, Mapping):
        return list(y.items())
    if isinstance(y, (list, tuple)):
        return list(enumerate(y))
    return [(None, y)]


def balanced_weights(counts: Mapping[int, int]) -> dict[int, float]:
    """``n_samples / (n_classes * count)`` for every class counted (scikit-learn's)."""
    total, present = sum(counts.values()), len(counts)
    return {c: total / (present * counts[c]) for c in sorted(counts) if counts[c]}


def _class_index(key: Any, class_weight: Any, caller: str) -> Any:
    """An integer key as it is; a digit string, or a float equal to an int, as its int.

    Digit strings come from JSON/TOML configs; a float such as ``1.0`` Keras finds too (it
    looks each label up by ``int(label)``).
    """
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    if isinstance(key, numbers.Real) and not isinstance(key, (bool, numbers.Integral)):
        value = float(key)
        if np.isfinite(value) and value.is_integer():
            return int(value)
    if isinstance(key, bool) or not isinstance(key, numbers.Integral):
        raise FitpipeTypeError(
            message(
                caller,
                f"got the non-integer `class_weight` key {key!r}",
                "Keys of `class_weight` are class indices: ints, or strings of digits such "
                'as `"1"` (as JSON and TOML configs give them), or floats equal to an int '
                "such as `1.0`",
                "Map class indices, not names, e.g. `{0: 1.0, 1: 5.0}`",
                class_weight=class_weight,
            )
        )
    return key


def check_class_weight(class_weight: Any, caller: str) -> dict[int, float]:
    """Validates ``class_weight`` and returns it with plain int keys and float values.

    Keys are class indices: ints, or strings of ASCII digits (``"1"``, as JSON and TOML
    configs give them; Keras 3.16 takes them too). Other strings stay an error.

    Args:
        class_weight: The user's argument.
        caller: The public method being run.

    Raises:
        FitpipeTypeError: When it is not a dict of integer (or digit-string) keys and numeric
            values.
        FitpipeValueError: For negative keys, a class given
            twice (``1`` and ``"1"``), or negative or non-finite weights.

    """
    if not isinstance(class_weight, Mapping):
        raise FitpipeTypeError(
            message(
                caller,
                "got a `class_weight` that is not a dict",
                "`class_weight` maps class indices (int) to weights (float)",
                "Pass e.g. `{0: 1.0, 1: 5.0}`",
                class_weight=class_weight,
            )
        )
    table: dict[int, float] = {}
    for given_key, weight in class_weight.items():
        key = _class_index(given_key, class_weight, caller)
        value = _weight_value(weight)
        if value is None or not np.isfinite(value) or value < 0:
            raise FitpipeValueError(
                message(
                    caller,
                    f"got the weight {weight!r} for class {key} in `class_weight`",
                    "Class weights are finite, non-negative numbers",
                    "Fix the weight",
                    class_weight=class_weight,
                )
            )
        index = int(key)
        if index < 0:  # (one past the classes is no class: Keras takes it, as for labels)
            raise FitpipeValueError(
                message(
                    caller,
                    f"got class {key} in `class_weight`, outside the classes of the targets",
                    "Class indices are non-negative",
                    "Remove or renumber the class",
                    class_weight=class_weight,
                )
            )
        if index in table:
            raise FitpipeValueError(
                message(
                    caller,
                    f"got class {index} twice in `class_weight`",
                    'Each class has one weight; the key `1` and the key `"1"` are the same class',
                    "Keep one of the two keys",
                    class_weight=class_weight,
                )
            )
        table[index] = value
    return table


def _weight_value(weight: Any) -> float | None:
    """A class's weight as a float: a real number, or one in a 0-d array or tensor (else None)."""
    if isinstance(weight, numbers.Real):
        return float(weight)
    try:
        value = np.asarray(weight)
    except (TypeError, ValueError):
        return None
    return float(value) if value.shape == () and value.dtype.kind in "biuf" else None


def class_weight_table(class_weight: Mapping[Any, Any]) -> Any:
    """Returns a lookup vector: entry ``c`` is the weight of class ``c`` (default 1).

    In ``keras.config.floatx()``, as Keras makes class weights (float64 weights stay exact
    under a float64 floatx). A per-target map (values are maps, keyed by
    :data:`TargetKey`) gives a dict of vectors by target key.
    """
    if is_per_output(class_weight):
        return {key: class_weight_table(table) for key, table in class_weight.items()}
    size = max(class_weight) + 1 if class_weight else 0
    dtype = tf.as_dtype(keras.config.floatx())
    return tf.constant([class_weight.get(c, 1.0) for c in range(size)], dtype=dtype)


def _class_ids(y: tf.Tensor) -> tf.Tensor:
    rank = y.shape.rank
    if rank is not None and rank >= 2:
        if y.shape[-1] == 1:
            y = tf.squeeze(y, axis=-1)
        else:
            y = tf.argmax(y, axis=-1)
    if y.dtype.is_floating:
        y = tf.round(y)
    return tf.cast(y, tf.int64)


def apply_class_weight(batch: tuple[Any, ...], table: Any) -> tuple[Any, ...]:
    """Graph function: adds (or multiplies into) the sample weights of one batch.

    Args:
        batch: ``(x, y)`` or ``(x, y, sample_weight)``: a single target tensor, or (with a
            dict of tables) a dict, list or tuple of targets.
        table: From :func:`class_weight_table`.

    Returns:
        ``(x, y, sample_weight)``.

    """
    if isinstance(table, dict):
        return _apply_per_target(batch, table)
    x, y = batch[0], batch[1]
    ids = _class_ids(y)
    if table.shape[0] == 0:  # no class listed: every sample weighs 1
        return (x, y, batch[2]) if len(batch) == 3 else (x, y, tf.ones(tf.shape(ids), table.dtype))
    size = tf.cast(tf.shape(table)[0], tf.int64)
    known = tf.logical_and(ids >= 0, ids < size)
    weights = tf.where(known, tf.gather(table, tf.clip_by_value(ids, 0, size - 1)), 1.0)
    if len(batch) == 3 and batch[2] is not None:
        given = tf.cast(batch[2], table.dtype)
        while weights.shape.rank is not None and weights.shape.rank < given.shape.rank:
            weights = tf.expand_dims(weights, -1)
        weights = given * weights
    return (x, y, weights)


def _apply_per_target(batch: tuple[Any, ...], tables: dict[TargetKey, Any]) -> tuple[Any, ...]:
    """Per-target weights: each target's table applied to its targets (others weigh 1)."""
    x, y = batch[0], batch[1]
    given = batch[2] if len(batch) == 3 else None
    found = []
    for key, target in target_leaves(y):
        weight = given
        if given is not None and tf.nest.is_nested(given):
            weight = given[key]
        part = (x, target) if weight is None else (x, target, weight)
        if key in tables:
            found.append(apply_class_weight(part, tables[key])[2])
        elif weight is None:
            dtype = next(iter(tables.values())).dtype
            found.append(tf.ones(tf.shape(tf.nest.flatten(target)[0])[:1], dtype))
        else:
            found.append(weight)
    if isinstance(y, Mapping):
        return (x, y, dict(zip(y, found, strict=True)))
    return (x, y, type(y)(found) if isinstance(y, (list, tuple)) else found[0])


def check_single_target(
    y: Any,
    caller: str,
    class_weight: Any = None,
    output_names: Sequence[str] | None = None,
) -> None:
    """Refuses one ``class_weight`` map without targets, or for targets given as a dict or list."""
    if y is None:
        raise FitpipeValueError(
            message(
                caller,
                "got `class_weight` without targets",
                "Class weights weight samples by their target class",
                "Pass `y`, or yield `(x, y)` batches",
                y=None,
            )
        )
    if len(tf.nest.flatten(y)) != 1 or isinstance(y, (Mapping, tuple, list)):
        raise FitpipeValueError(_nested_targets_message(y, caller, class_weight, output_names))


def _nested_targets_message(
    y: Any, caller: str, class_weight: Any, output_names: Sequence[str] | None
) -> str:
    """Why one ``class_weight`` map does not fit targets nested in a dict or list, and the fix."""
    nested = isinstance(y, (Mapping, tuple, list))
    count = len(y) if nested else len(tf.nest.flatten(y))
    kind = "dict" if isinstance(y, Mapping) else "list" if nested else "structure"
    names = [str(k) for k in y] if isinstance(y, Mapping) else list(output_names or ())
    names = names[:count] if len(names) >= count else []
    shown = class_weight if class_weight is not None else {0: 1.0, 1: 2.0}
    value = repr(shown) if len(repr(shown)) <= 40 else "{...}"
    first = repr(names[0]) if names else "'<output name>'"
    fix = f"Pass a map per output name, e.g. `class_weight={{{first}: {value}}}`"
    if names:
        fix += f" (the outputs: {', '.join(repr(n) for n in names)}); outputs left out weigh 1"
    if count == 1:
        fix = f"Pass the target array itself as `y`, not in a {kind}"
    return message(
        caller,
        f"got one `class_weight` map for targets `y` given as a {kind} of {count} target(s)",
        "A map from class index to weight weights a single target array; targets given by "
        "output (a dict or list) take a map per output name",
        fix,
        y=y,
        class_weight=class_weight,
    )


def weighted_dataset(
    dataset: tf.data.Dataset, class_weight: Mapping[Any, Any], parallel: bool
) -> tf.data.Dataset:
    """The batches of ``dataset`` with class weights applied (in parallel if ``parallel``)."""
    table = class_weight_table(class_weight)

    @tf.autograph.experimental.do_not_convert
    def weigh(*batch: Any) -> Any:
        return apply_class_weight(batch, table)

    if not parallel:  # `deterministic` without parallel calls makes TensorFlow warn
        return dataset.map(weigh)
    return dataset.map(weigh, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def weighted_shard(
    shard: Callable[[int, int, int], tuple[tf.data.Dataset, int]],
    class_weight: Mapping[Any, Any],
) -> Callable[[int, int, int], tuple[tf.data.Dataset, int]]:
    """A source's ``shard`` function whose shards have class weights applied."""

    def weighted(index: int, count: int, replicas: int) -> tuple[tf.data.Dataset, int]:
        dataset, steps = shard(index, count, replicas)
        return weighted_dataset(dataset, class_weight, parallel=True), steps

    return weighted
