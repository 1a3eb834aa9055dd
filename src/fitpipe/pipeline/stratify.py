"""``stratify=True``: each class split off for validation in the same proportion.

The number of validation rows is Keras' (``rows - floor(rows * (1 - validation_split))``);
it is shared among the classes in proportion to their rows (largest remainders first, ties
to the lower class), and each class gives its *last* rows in row order, as Keras' plain
split takes the last rows of the data. Deterministic: no seed, the same split every run.

Targets are class labels: integers or booleans (or floats holding whole numbers, such as
``0.0``/``1.0``), of shape ``(rows,)`` or ``(rows, 1)``, or one-hot rows ``(rows, classes)``
(the class is the ``argmax``). Only rows in memory can be stratified: a streamed input's
classes are not known before it is read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import ArraySource, Source
from fitpipe.columnar import take_rows_into
from fitpipe.errors import DataMismatchError, FitpipeValueError, message

__all__ = ["class_labels", "stratified_split", "take_rows_where"]

_EXPECTED = (
    "`stratify=True` splits each class of one classification target in the same proportion: "
    "integer labels, or one-hot rows"
)
_FIX = "Pass `stratify=False` (the last rows are set apart), or `validation_data`"


def _refuse(
    caller: str, what: str, expected: str = _EXPECTED, fix: str = _FIX, **received: Any
) -> FitpipeValueError:
    return FitpipeValueError(message(caller, f"cannot stratify {what}", expected, fix, **received))


def _gather(leaf: Any, rows: np.ndarray) -> Any:
    if leaf is None:
        return None
    if isinstance(leaf, tf.SparseTensor):
        keep = np.zeros(int(leaf.dense_shape[0]), dtype=bool)
        keep[rows] = True
        new_row = np.cumsum(keep) - 1
        first = leaf.indices[:, 0]
        kept = tf.sparse.retain(leaf, tf.gather(keep, first))
        indices = tf.concat(
            [tf.gather(new_row, kept.indices[:, 0])[:, None], kept.indices[:, 1:]], axis=1
        )
        shape = tf.concat([[len(rows)], leaf.dense_shape[1:]], axis=0)
        return tf.SparseTensor(indices, kept.values, shape)
    if isinstance(leaf, (tf.Tensor, tf.RaggedTensor)):
        return tf.gather(leaf, rows)
    return take_rows_into(np.asarray(leaf), rows)


def take_rows_where(source: ArraySource, mask: np.ndarray) -> ArraySource:
    """The rows of ``source`` where ``mask`` is True, in order (copied, not views).

    Args:
        source: Rows in memory.
        mask: One bool per row.
    """
    rows = np.flatnonzero(mask)
    taken = [
        tf.nest.map_structure(lambda leaf: _gather(leaf, rows), value)
        for value in (source.x, source.y, source.sample_weight)
    ]
    return ArraySource(taken[0], taken[1], taken[2], len(rows), source.shard_rows)


def class_labels(y: Any, caller: str = "fit") -> np.ndarray:
    """The class of each row of a single classification target.

    Raises:
        FitpipeValueError: No target, several targets, or targets that are not classes
            (non-whole floats: a regression target; or of rank above 2).
    """
    leaves = [leaf for leaf in tf.nest.flatten(y) if leaf is not None] if y is not None else []
    if len(leaves) != 1:
        what = "without targets" if not leaves else f"{len(leaves)} targets"
        raise _refuse(caller, what, y=y)
    leaf = leaves[0]
    if isinstance(leaf, (tf.SparseTensor, tf.RaggedTensor)):
        raise _refuse(caller, "sparse or ragged targets", y=leaf)
    values = np.asarray(leaf)
    if values.ndim == 2:
        values = values[:, 0] if values.shape[1] == 1 else values.argmax(axis=1)
    elif values.ndim != 1:
        raise _refuse(caller, f"targets of shape {values.shape}", y=leaf)
    if values.dtype.kind == "f":
        if not (np.all(np.isfinite(values)) and np.all(values == np.round(values))):
            raise _refuse(caller, "a regression target (floats that are not whole numbers)", y=leaf)
    elif values.dtype.kind not in "biu":
        raise _refuse(caller, f"targets of dtype {values.dtype}", y=leaf)
    return values.astype(np.int64)


def _validation_rows(counts: np.ndarray, total: int, fraction: float) -> np.ndarray:
    """Validation rows per class: Keras' total, shared by largest remainders."""
    wanted = total - math.floor(total * (1.0 - fraction))
    quota = counts * wanted / total
    share = np.floor(quota).astype(np.int64)
    left = wanted - int(share.sum())
    order = np.argsort(-(quota - share), kind="stable")
    share[order[:left]] += 1
    return share


def stratified_split(
    source: Source, fraction: float, caller: str = "fit"
) -> tuple[ArraySource, ArraySource, dict[int, tuple[int, int]]]:
    """Splits rows in memory class by class (see the module's description).

    Args:
        source: The adapted source; must be rows in memory.
        fraction: ``validation_split``, in (0, 1).
        caller: The public method being run.

    Returns:
        ``(train, validation, {class: (training rows, validation rows)})``.

    Raises:
        FitpipeValueError: For a streamed input or targets that are not classes.
        DataMismatchError: When either side would be empty.
    """
    if not isinstance(source, ArraySource):
        raise _refuse(
            caller,
            "an input that is not held in memory",
            "`stratify=True` needs every row's class before the split: rows in memory "
            "(arrays, DataFrames, Arrow tables, Parquet up to the resident limit)",
            "Pass `stratify=False` (the last rows are set apart), `split_by`, or `validation_data`",
            stratify=True,
        )
    labels = class_labels(source.y, caller)
    total = source.num_samples
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = _validation_rows(counts, total, fraction)
    if share.sum() in (0, total):
        raise DataMismatchError(
            message(
                caller,
                f"cannot split {total} samples with `validation_split={fraction}`",
                "Both the training and the validation part need at least one sample",
                "Provide more data, or another `validation_split`",
                validation_split=fraction,
            )
        )
    by_class = np.argsort(inverse, kind="stable")  # rows grouped by class, in row order
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    from_end = np.repeat(counts, counts) - (np.arange(total) - starts)  # 1 = class's last
    mask = np.zeros(total, dtype=bool)
    mask[by_class[from_end <= np.repeat(share, counts)]] = True
    table = {int(c): (int(n - v), int(v)) for c, n, v in zip(classes, counts, share, strict=True)}
    return take_rows_where(source, ~mask), take_rows_where(source, mask), table
