"""``validation_split``: the last fraction of the rows, set apart before any shuffling."""

from __future__ import annotations

import math
import numbers
from typing import Any

import tensorflow as tf

from fitpipe.adapters import ArraySource, Source, Splittable
from fitpipe.errors import DataMismatchError, FitpipeValueError, message

__all__ = ["check_validation_split", "split_source"]


def check_validation_split(validation_split: Any, caller: str = "fit") -> float:
    """Validates ``validation_split``: a float in [0, 1).

    Args:
        validation_split: The user's argument.
        caller: The public method being run.

    Returns:
        It, as a float.

    Raises:
        FitpipeValueError: Outside [0, 1) or not a number.

    """
    valid = (
        isinstance(validation_split, numbers.Real)
        and not isinstance(validation_split, bool)
        and 0.0 <= float(validation_split) < 1.0
    )
    if not valid:
        raise FitpipeValueError(
            message(
                caller,
                "got an invalid `validation_split`",
                "`validation_split` is a float in [0, 1): the fraction of the training rows "
                "set apart for validation",
                "Pass e.g. `validation_split=0.2`, or `validation_data=(x_val, y_val)`",
                validation_split=validation_split,
            )
        )
    return float(validation_split)


def _slice(leaf: Any, start: int, stop: int) -> Any:
    if leaf is None:
        return None
    if isinstance(leaf, tf.SparseTensor):
        shape = leaf.dense_shape
        size = tf.concat([[stop - start], shape[1:]], axis=0)
        begin = tf.concat([[start], tf.zeros_like(shape[1:])], axis=0)
        return tf.sparse.slice(leaf, begin, size)
    return leaf[start:stop]


def split_source(
    source: Source,
    validation_split: float,
    caller: str = "fit",
    validation_batch_size: int | None = None,
) -> tuple[Source, Source]:
    """Splits rows into training rows and the last ``validation_split`` of them.

    NumPy leaves are sliced as views (nothing is copied); sources planned from metadata
    (Parquet) split by row counts without reading data.

    Args:
        source: Rows in memory, or a batch source that can split.
        validation_split: A fraction in (0, 1), already checked.
        caller: The public method being run.
        validation_batch_size: Batch size of a split batch source's validation part.

    Returns:
        ``(train, validation)``.

    Raises:
        DataMismatchError: When either part would be empty.
    """
    total = source.num_samples if isinstance(source, ArraySource) else (source.rows or 0)
    split_at = math.floor(total * (1.0 - validation_split))
    if split_at in (0, total):
        raise DataMismatchError(
            message(
                caller,
                f"cannot split {total} samples with `validation_split={validation_split}`",
                "Both the training and the validation part need at least one sample",
                "Provide more data, or another `validation_split`",
                validation_split=validation_split,
            )
        )
    if not isinstance(source, ArraySource):
        if not isinstance(source, Splittable):
            raise DataMismatchError(
                message(
                    caller,
                    "cannot split this input",
                    "`validation_split` needs rows known in advance",
                    "Pass `validation_data` instead",
                    validation_split=validation_split,
                )
            )
        return source.split(split_at, validation_batch_size)

    def part(start: int, stop: int) -> ArraySource:
        sliced = [
            tf.nest.map_structure(lambda leaf: _slice(leaf, start, stop), value)
            for value in (source.x, source.y, source.sample_weight)
        ]
        return ArraySource(sliced[0], sliced[1], sliced[2], stop - start, source.shard_rows)

    return part(0, split_at), part(split_at, total)
