"""Blocks of converted rows (tuples of role arrays, NumPy or ragged): join, reorder, check.

Streamed Parquet converts a row group at a time; these helpers work on such blocks whatever
their nesting. :func:`checked_chunks` runs the trainer's value check on the batches the
blocks make, a clean block in one pass. A shuffle buffer's mix may be handed on as a
:class:`Reordered` block (the rows and their order, not gathered) to a reader that takes
rows by index anyway (a trainer's compiled loop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters.batches import Check
from fitpipe.columnar import (
    ALIGNMENT,
    aligned_empty,
    as_tensor,
    join_rows,
    take_rows_into,
    tensor_array,
)

__all__ = [
    "Reordered",
    "aligned_rows",
    "block_order",
    "checked_chunks",
    "concat_rows",
    "gathered",
    "mixed_rows",
    "num_rows",
    "rows_of",
    "take_rows",
]


def concat_rows(chunks: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The rows of ``chunks`` (of one nesting) as one block, in order.

    NumPy leaves are written into buffers aligned as :func:`~fitpipe.columnar.convert.aligned_empty`
    makes them, which ``tf.data`` takes without a copy.
    """

    def join(*leaves: Any) -> Any:
        if isinstance(leaves[0], tf.RaggedTensor):
            return tf.concat(leaves, axis=0)
        return join_rows(leaves)

    return tf.nest.map_structure(join, *chunks)


#: The fewest bytes a row and a block must have for :func:`take_rows` to gather with
#: TensorFlow (measured, 65,536 rows of float32: 512 columns 41 -> 19 ms, or 10 ms from a
#: block stacked by TensorFlow; 32 columns 5.1 -> 2.1 ms; 8 columns 0.3 -> 0.6 ms).
GATHER_ROW_BYTES = 64
GATHER_BYTES = 1 << 20


def _gathered(leaf: np.ndarray, order: np.ndarray) -> np.ndarray | None:
    """``leaf[order]`` gathered by TensorFlow (its threads, no GIL), or None if not worth it."""
    if leaf.dtype.kind not in "biuf" or leaf.nbytes < GATHER_BYTES or not len(leaf):
        return None
    if leaf[0].nbytes < GATHER_ROW_BYTES:
        return None
    return tensor_array(tf.gather(as_tensor(leaf), order))


def take_rows(chunk: tuple[Any, ...], order: np.ndarray) -> tuple[Any, ...]:
    """The rows of ``chunk`` at the indices ``order`` (a shuffle buffer's mix), aligned.

    Wide numeric leaves are gathered by TensorFlow (:func:`_gathered`): read-only arrays
    over the tensors' memory, which a trainer takes without a copy.
    """

    def take(leaf: Any) -> Any:
        if isinstance(leaf, tf.RaggedTensor):
            return tf.gather(leaf, order)
        gathered = _gathered(leaf, order)
        if gathered is not None:
            return gathered
        return take_rows_into(leaf, order)

    return tf.nest.map_structure(take, chunk)


@dataclasses.dataclass(frozen=True, eq=False)
class Reordered:
    """The rows of ``block`` in the order ``rows`` (a permutation of them), not gathered.

    Gathering a shuffle buffer's 65,536 rows of 512 float32 columns writes a second block of
    128 MiB (38 ms of CPU, and fresh pages for TensorFlow's allocator); a trainer that slices
    its batches by row index in its compiled loop takes the order instead. Anything else
    takes :func:`gathered` rows.
    """

    block: tuple[Any, ...]
    rows: np.ndarray


def mixed_rows(chunks: list[tuple[Any, ...]], order: np.ndarray, reordered: bool) -> Any:
    """The rows of ``chunks`` (joined, a single one as it is) in ``order``: a shuffle's mix.

    ``reordered``: as a :class:`Reordered` block (not gathered), else gathered.
    """
    joined = chunks[0] if len(chunks) == 1 else concat_rows(chunks)
    return Reordered(joined, order) if reordered else take_rows(joined, order)


def block_order(chunk: Any) -> tuple[tuple[Any, ...], np.ndarray | None]:
    """A block's rows and the order they are taken in (None: as they are)."""
    return (chunk.block, chunk.rows) if isinstance(chunk, Reordered) else (chunk, None)


def gathered(chunk: Any) -> tuple[Any, ...]:
    """A block's rows in their order: a :class:`Reordered` block's gathered, any other as is."""
    block, order = block_order(chunk)
    return block if order is None else take_rows(block, order)


def aligned_rows(chunk: tuple[Any, ...]) -> tuple[Any, ...]:
    """``chunk`` with each NumPy leaf in a contiguous buffer aligned to :data:`ALIGNMENT`.

    ``Dataset.from_generator`` copies any other leaf it is handed; a leaf already aligned
    (stacked, joined or reordered here) is passed as it is, any other (a single column read
    at an offset, a slice of a block) is copied here instead of there.
    """

    def align(leaf: Any) -> Any:
        if not isinstance(leaf, np.ndarray) or leaf.dtype.hasobject or leaf.size == 0:
            return leaf
        if leaf.flags.c_contiguous and leaf.ctypes.data % ALIGNMENT == 0:
            return leaf
        out = aligned_empty(leaf.shape, leaf.dtype)
        np.copyto(out, leaf)
        return out

    return tf.nest.map_structure(align, chunk)


def num_rows(chunk: Any) -> int:
    """The rows of a block (of a :class:`Reordered` one too)."""
    if isinstance(chunk, Reordered):
        return len(chunk.rows)
    leaf = tf.nest.flatten(chunk, expand_composites=False)[0]
    return int(leaf.nrows()) if isinstance(leaf, tf.RaggedTensor) else len(leaf)


def rows_of(chunk: tuple[Any, ...], lo: int, hi: int) -> tuple[Any, ...]:
    """Rows ``lo`` to ``hi`` of a block (views of its arrays)."""
    return tf.nest.map_structure(lambda leaf: leaf[lo:hi], chunk)


def checked_chunks(chunks: Iterator[Any], check: Check, size: int) -> Iterator[Any]:
    """``chunks`` with the trainer's check run on the batches of ``size`` rows they make.

    A block that ``check.clean`` passes is yielded whole (one NumPy pass over its values);
    any other is cut at the batch boundaries, each batch checked whole (a batch begun in one
    block and ended in the next is joined first) and yielded before the next is checked, so
    a raising check stops the pass after the batches before the bad one. A clean
    :class:`Reordered` block is yielded as it is (the check judges values, not their order);
    one cut into batches is gathered first.
    """
    clean = getattr(check, "clean", None)
    row, carry = 0, None  # rows yielded; the start of a batch that goes on in the next block
    for chunk in chunks:
        if carry is None and clean is not None and clean(block_order(chunk)[0]):
            yield chunk
            row += num_rows(chunk)
            continue
        chunk = gathered(chunk)
        chunk, carry = (chunk, None) if carry is None else (concat_rows([carry, chunk]), None)
        rows, lo = num_rows(chunk), 0
        while lo < rows:
            hi = min(rows, lo + size - (row + lo) % size)
            if hi == rows and (row + hi) % size:
                carry = rows_of(chunk, lo, hi)
                break
            batch = rows_of(chunk, lo, hi)
            check((row + lo) // size, batch)
            yield batch
            lo = hi
        row += lo
    if carry is not None:  # the last batch, short
        check(row // size, carry)
        yield carry
