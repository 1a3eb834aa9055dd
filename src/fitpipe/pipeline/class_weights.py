"""``class_weight``: a map from class index to weight, turned into per-sample weights.

Targets of rank 1, or of rank >= 2 with a final dimension of 1, are sparse class labels;
targets of rank >= 2 with a wider final dimension are one-hot (the class is the ``argmax``),
as the Keras documentation states. Classes missing from the map weigh 1. When sample weights
are given as well, the two are multiplied.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import ArraySource, Source
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message

__all__ = [
    "apply_class_weight",
    "check_class_weight",
    "check_single_target",
    "class_weight_table",
    "one_hot_width",
    "source_class_weight",
    "weigh_batch",
    "weighted_dataset",
    "weighted_shard",
]


def _class_index(key: Any, class_weight: Any, caller: str) -> Any:
    """An integer key as it is; a string of ASCII digits (JSON/TOML configs) as its int."""
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    if isinstance(key, bool) or not isinstance(key, numbers.Integral):
        raise FitpipeTypeError(
            message(
                caller,
                f"got the non-integer `class_weight` key {key!r}",
                "Keys of `class_weight` are class indices: ints, or strings of digits such "
                'as `"1"` (as JSON and TOML configs give them)',
                "Map class indices, not names, e.g. `{0: 1.0, 1: 5.0}`",
                class_weight=class_weight,
            )
        )
    return key


def check_class_weight(
    class_weight: Any, caller: str, num_classes: int | None = None
) -> dict[int, float]:
    """Validates ``class_weight`` and returns it with plain int keys and float values.

    Keys are class indices: ints, or strings of ASCII digits (``"1"``, as JSON and TOML
    configs give them; Keras 3.16 takes them too). Other strings stay an error.

    Args:
        class_weight: The user's argument.
        caller: The public method being run.
        num_classes: The width of one-hot targets or model outputs, when known: keys must be
            below it.

    Raises:
        FitpipeTypeError: When it is not a dict of integer (or digit-string) keys and numeric
            values.
        FitpipeValueError: For negative keys, keys outside the output width, a class given
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
        if not isinstance(weight, numbers.Real) or not np.isfinite(float(weight)) or weight < 0:
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
        if index < 0 or (num_classes is not None and index >= num_classes):
            width = f"between 0 and {num_classes - 1}" if num_classes else "non-negative"
            raise FitpipeValueError(
                message(
                    caller,
                    f"got class {key} in `class_weight`, outside the classes of the targets",
                    f"Class indices are {width}",
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
        table[index] = float(weight)
    return table


def class_weight_table(class_weight: Mapping[int, float]) -> tf.Tensor:
    """Returns a float32 lookup vector: entry ``c`` is the weight of class ``c`` (default 1)."""
    size = max(class_weight) + 1 if class_weight else 0
    return tf.constant([class_weight.get(c, 1.0) for c in range(size)], dtype=tf.float32)


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


def apply_class_weight(batch: tuple[Any, ...], table: tf.Tensor) -> tuple[Any, ...]:
    """Graph function: adds (or multiplies into) the sample weights of one batch.

    Args:
        batch: ``(x, y)`` or ``(x, y, sample_weight)`` with a single target tensor.
        table: From :func:`class_weight_table`.

    Returns:
        ``(x, y, sample_weight)``.

    """
    x, y = batch[0], batch[1]
    ids = _class_ids(y)
    if table.shape[0] == 0:  # no class listed: every sample weighs 1
        return (x, y, batch[2]) if len(batch) == 3 else (x, y, tf.ones(tf.shape(ids), tf.float32))
    size = tf.cast(tf.shape(table)[0], tf.int64)
    known = tf.logical_and(ids >= 0, ids < size)
    weights = tf.where(known, tf.gather(table, tf.clip_by_value(ids, 0, size - 1)), 1.0)
    if len(batch) == 3 and batch[2] is not None:
        given = tf.cast(batch[2], tf.float32)
        while weights.shape.rank is not None and weights.shape.rank < given.shape.rank:
            weights = tf.expand_dims(weights, -1)
        weights = given * weights
    return (x, y, weights)


def one_hot_width(y: Any) -> int | None:
    """The width of one-hot targets (a last dimension over 1), or None for class labels."""
    shape = getattr(y, "shape", None)
    if shape is None or len(shape) < 2:
        return None
    width = shape[-1]
    return int(width) if width is not None and int(width) > 1 else None


def check_single_target(y: Any, caller: str) -> None:
    """Refuses ``class_weight`` without targets, or with several."""
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
        raise FitpipeValueError(
            message(
                caller,
                "got `class_weight` for several targets",
                "`class_weight` is only supported for models with a single output",
                "Pass per-sample weights for each output as `sample_weight` instead",
                y=y,
            )
        )


def weighted_dataset(
    dataset: tf.data.Dataset, class_weight: dict[int, float], parallel: bool
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
    class_weight: dict[int, float],
) -> Callable[[int, int, int], tuple[tf.data.Dataset, int]]:
    """A source's ``shard`` function whose shards have class weights applied."""

    def weighted(index: int, count: int, replicas: int) -> tuple[tf.data.Dataset, int]:
        dataset, steps = shard(index, count, replicas)
        return weighted_dataset(dataset, class_weight, parallel=True), steps

    return weighted


def source_class_weight(
    class_weight: Mapping[int, float] | None, source: Source, caller: str
) -> dict[int, float] | None:
    """Checks ``class_weight`` against the source's targets (one target; one-hot width).

    Args:
        class_weight: The map given, or None.
        source: Rows or batches.
        caller: The public method, for messages.

    Returns:
        The checked map (int keys), or None when none was given.
    """
    if class_weight is None:
        return None
    if isinstance(source, ArraySource):
        check_single_target(source.y, caller)
        width = one_hot_width(source.y)
    else:
        spec = source.make_dataset().element_spec
        check_single_target(spec[1] if len(spec) > 1 else None, caller)
        width = one_hot_width(spec[1])
    return check_class_weight(class_weight, caller, width)


def weigh_batch(
    batch: tuple[Any, ...], class_weight: Mapping[int, float], caller: str
) -> tuple[Any, ...]:
    """One batch of tensors ``(x, y)`` or ``(x, y, sw)`` with ``class_weight`` applied.

    Args:
        batch: The batch (``train_on_batch``'s).
        class_weight: The map given.
        caller: The public method, for messages.

    Returns:
        ``(x, y, sw)``, the weights multiplied by the class weights.
    """
    table = check_class_weight(class_weight, caller, one_hot_width(batch[1]))
    return tuple(apply_class_weight(batch, class_weight_table(table)))
