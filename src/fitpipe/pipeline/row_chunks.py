"""The rows of several batches gathered at once by a compiled loop over rows in memory.

:class:`~fitpipe.pipeline.ResidentRows` hands a trainer's loop its held leaves, the epoch's
row order and the batch size (its ``loop_arguments``). Gathering each batch's rows from the
held leaves on its own costs a ``Gather`` per leaf per step and, when shuffled, a cache miss
per row; the loop built from :class:`Chunks` gathers the rows of a chunk of batches (about
:data:`CHUNK_BYTES`) at once and slices each batch from them. A chunk whose rows are
consecutive (a pass in order: ``evaluate``, ``predict``, a block of streamed rows) is sliced
from the held leaves instead, without a copy. The batches and their order are the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["CHUNK_BYTES", "Chunks", "batch_rows", "chunk_functions", "consecutive"]

#: Bytes of rows gathered at once. 640,000 x 32 float32 rows at batch 256, the MLP's train
#: step in a loop (``benchmarks/gather_chunks.py``, samples per CPU second): a gather per
#: batch 563k shuffled, 614k not; chunks of 1 MiB 711k, 4 MiB 748k, 16 MiB 754k, 64 MiB 731k.
CHUNK_BYTES = 16 * 2**20

#: Bytes counted for an element of a string or variant leaf (its dtype has no size).
UNSIZED_BYTES = 64


@dataclasses.dataclass(frozen=True)
class Chunks:
    """Graph functions of a loop that gathers several batches' rows at once.

    Attributes:
        batches: ``(loop arguments) -> int32``: batches per chunk.
        gather: ``(loop arguments, first batch, batches) -> chunk``: their rows of each held
            leaf, as held (narrow leaves side by side, see ``leaf_packing``).
        pick: ``(chunk, loop arguments, i) -> batch``: the ``i``-th batch of a chunk.
    """

    batches: Callable[[Any], tf.Tensor]
    gather: Callable[[Any, tf.Tensor, tf.Tensor], Any]
    pick: Callable[[Any, Any, tf.Tensor], Any]


def batch_rows(arguments: Any, first: tf.Tensor, count: Any = 1) -> tf.Tensor:
    """Graph function: the rows of batches ``first`` to ``first + count - 1``, in order.

    ``arguments`` are a loop's ``(tensors, order, batch size)``; the last batch may be short.
    """
    _, order, size = arguments
    start = tf.cast(first, tf.int64) * size
    stop = tf.minimum(start + tf.cast(count, tf.int64) * size, tf.size(order, tf.int64))
    return order[start:stop]


def chunk_functions(
    take: Callable[[Any, tf.Tensor], Any],
    cut: Callable[[Any, tf.Tensor, tf.Tensor], Any],
    finish: Callable[[Any, Any], Any],
) -> Chunks:
    """The :class:`Chunks` of rows whose ``take(tensors, rows)`` gives the held leaves' ``rows``.

    ``cut(tensors, start, stop)`` gives their rows ``start`` to ``stop - 1``, sliced (for
    64-byte rows and wider, TensorFlow's slice of the first axis shares the tensors'
    memory): a chunk whose rows are consecutive in the order (an unshuffled pass, a block of
    rows read in order) is cut, not gathered. ``finish(picked, tensors)`` makes a batch of
    one batch's rows of each held leaf (split into the batch's leaves, class weights
    applied): a chunk stays as held, so a batch of 50 narrow inputs held side by side is one
    slice, not 50. All capture only the batch's nesting (the held tensors are the loop's
    arguments), so a loop built from these serves any rows of the same nesting and dtypes;
    the chunk size is computed from the arguments.
    """

    def gather(arguments: Any, first: tf.Tensor, count: tf.Tensor) -> Any:
        rows = batch_rows(arguments, first, count)
        return tf.cond(
            consecutive(rows),
            lambda: cut(arguments[0], rows[0], rows[0] + tf.size(rows, rows.dtype)),
            lambda: take(arguments[0], rows),
        )

    def pick(chunk: Any, arguments: Any, index: tf.Tensor) -> Any:
        """Graph function: batch ``index`` of a chunk (the last one may be shorter)."""
        size = arguments[2]
        start = tf.cast(index, tf.int64) * size
        return finish([leaf[start : start + size] for leaf in chunk], arguments[0])

    return Chunks(_chunk_batches, gather, pick)


def consecutive(rows: tf.Tensor) -> tf.Tensor:
    """Graph function: whether ``rows`` are one or more consecutive rows, ascending.

    A shuffled order fails the first test (its last row is not its first plus its length
    less one) without a pass over it.
    """
    size = tf.size(rows, rows.dtype)
    ends = tf.concat([rows[:1], rows[-1:]], 0)  # the first and the last row; none when empty
    spans = tf.reduce_any(tf.equal(ends[1:] - ends[:1], size - 1))
    return tf.cond(
        spans,
        lambda: tf.reduce_all(tf.equal(rows[1:] - rows[:-1], 1)),
        lambda: tf.constant(False),
    )


def _chunk_batches(arguments: Any) -> tf.Tensor:
    """Graph function: batches per chunk of about :data:`CHUNK_BYTES` (at least 1)."""
    (leaves, _), _, size = arguments
    row = sum(
        tf.reduce_prod(tf.shape(leaf, tf.int64)[1:]) * (leaf.dtype.size or UNSIZED_BYTES)
        for leaf in leaves
    )
    return tf.cast(tf.maximum(CHUNK_BYTES // tf.maximum(row * size, 1), 1), tf.int32)
