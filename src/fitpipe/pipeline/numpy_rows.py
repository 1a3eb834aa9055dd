"""NumPy arrays too large to hold: their row order, and their rows in blocks for a trainer.

Arrays over :data:`fitpipe.limits.RESIDENT_BYTES_LIMIT` are never copied whole: each pass
draws its row order in NumPy (:class:`NumpyOrder`, 4 bytes a row below 2**32 rows) and
reads the rows it needs from the caller's memory. Through ``tf.data`` that is a
``numpy_function`` per batch (the input of a distributed ``fit``, or one on a ``tf.data``
service); a trainer takes :class:`ArrayBlocks` instead: the rows of many batches gathered at
once with NumPy on its reading thread and cut into batches inside its compiled loop (see
``fitpipe.training.block_cursor``), as streamed Parquet is. The batches and their order are
the same on both paths.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import Check, RowBlocks, Shuffle, checked_chunks
from fitpipe.columnar import take_rows_into
from fitpipe.errors import FitpipeValueError, message, raw

__all__ = ["BLOCK_BYTES", "ArrayBlocks", "NumpyOrder", "index_dtype", "numpy_batches"]

#: Bytes of rows gathered into one block (whole batches, at least one).
BLOCK_BYTES = 16 * 2**20


def index_dtype(num_samples: int) -> tf.DType:
    """int32 row indices where they suffice (half the memory of a permutation), else int64."""
    return tf.int32 if num_samples < 2**31 else tf.int64


def _order_dtype(size: int) -> type[np.integer]:
    """The narrowest dtype of an order of ``size`` indices: 4 bytes each below 2**32."""
    return np.int32 if size < 2**31 else np.uint32 if size < 2**32 else np.int64


#: The share of the machine's memory a pass's row order may take (:class:`NumpyOrder`).
ORDER_MEMORY_SHARE = 0.5


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # (no sysconf, or no such name here)
        return None


class NumpyOrder:
    """The row order of the pass being read, drawn in NumPy and shuffled in place.

    With ``blocks`` (``shuffle="batch"``) only the order of the batch-sized blocks is held
    (4 bytes a block); the rows inside a block come shuffled, the last partial block last.
    A pass's rows are 4 bytes each in the order up to 2**32 rows (8 past it); an order over
    :data:`ORDER_MEMORY_SHARE` of the machine's memory is refused when the order is made
    (3e9 rows took 24 GB before the first step, on a machine of 23 GB), saying to shuffle
    batch-sized blocks instead.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        blocks: bool = False,
        shuffled: bool = True,
    ) -> None:
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.blocks = blocks
        self._pass: int | None = None
        self._order: np.ndarray | None = None
        self._lock = threading.Lock()
        #: The dtype of the indices handed out (the order itself may be unsigned).
        self.dtype = index_dtype(num_samples).as_numpy_dtype
        if shuffled and not blocks:
            _check_order_memory(num_samples)

    def _pass_order(self, pass_index: int) -> np.ndarray:
        """The order of pass ``pass_index`` (rows, or batch-sized blocks), drawn if needed."""
        with self._lock:
            if self._pass != pass_index or self._order is None:
                self._order = None  # the previous pass's order is freed before the next
                size = self.num_samples // self.batch_size if self.blocks else self.num_samples
                order = np.arange(size, dtype=_order_dtype(size))
                np.random.default_rng([self.seed, pass_index]).shuffle(order)
                self._order, self._pass = order, pass_index
            return self._order

    def rows(self, pass_index: np.int64, batch: np.int64) -> np.ndarray:
        """The row indices of batch ``batch`` of pass ``pass_index``."""
        order = self._pass_order(int(pass_index))
        if self.blocks:
            block = int(order[batch]) if int(batch) < len(order) else int(batch)
            start = block * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
            inside = np.random.default_rng([self.seed, int(pass_index), int(batch)])
            return (start + inside.permutation(stop - start)).astype(self.dtype)
        start = int(batch) * self.batch_size
        return order[start : start + self.batch_size].astype(self.dtype, copy=False)

    def span(self, pass_index: int, first: int, count: int) -> np.ndarray:
        """The row indices of batches ``first`` to ``first + count - 1`` of ``pass_index``."""
        if self.blocks:
            last = min(first + count, math.ceil(self.num_samples / self.batch_size))
            index = np.int64(pass_index)
            return np.concatenate([self.rows(index, np.int64(b)) for b in range(first, last)])
        order = self._pass_order(pass_index)
        span = order[first * self.batch_size : (first + count) * self.batch_size]
        return span.astype(self.dtype, copy=False)


def _check_order_memory(num_samples: int) -> None:
    """Refuses a pass's row order that would take over :data:`ORDER_MEMORY_SHARE` of memory."""
    nbytes = num_samples * np.dtype(_order_dtype(num_samples)).itemsize
    memory = _memory_bytes()
    if memory is None or nbytes <= ORDER_MEMORY_SHARE * memory:
        return
    raise FitpipeValueError(
        message(
            "fit",
            f"cannot shuffle the rows of the arrays: a pass's row order of {num_samples:,} "
            f"rows takes {nbytes / 2**30:.1f} GiB, over {ORDER_MEMORY_SHARE:.0%} of this "
            f"machine's memory ({memory / 2**30:.1f} GiB)",
            "`shuffle=True` draws the order of all of a pass's rows at once",
            'Pass `shuffle="batch"` (orders batch-sized blocks of rows, 4 bytes a block) or '
            "`shuffle=False`",
            x=raw(f"{num_samples:,} rows"),
        )
    )


def numpy_batches(order: NumpyOrder, epoch: tf.Tensor) -> tf.data.Dataset:
    """The row indices of each batch of pass ``epoch`` of ``order``, drawn in NumPy."""
    dtype = index_dtype(order.num_samples)

    @tf.autograph.experimental.do_not_convert
    def rows(batch: tf.Tensor) -> tf.Tensor:
        picked = tf.numpy_function(order.rows, [epoch, batch], dtype, stateful=False)
        picked.set_shape([None])
        return picked

    return tf.data.Dataset.range(math.ceil(order.num_samples / order.batch_size)).map(rows)


class ArrayBlocks:
    """The rows of NumPy arrays streamed to a trainer in blocks (a ``Blocked`` source's part).

    Each block is the rows of whole batches, about :data:`BLOCK_BYTES`, in the pass's order:
    slices of the caller's arrays when not shuffled (converted by the trainer's reading
    thread), else gathered with ``np.take`` into aligned buffers. A pass's index is read
    from ``passes`` when its blocks are asked for, as the dataset's iteration reads it, so
    ``seek`` (a resumed run) and the passes read ahead select the same orders on both paths.

    Args:
        parts: The rows, nested as a batch: ``(x,)``, ``(x, y)`` or ``(x, y, sw)``; every
            leaf a NumPy array of numbers or bools.
        num_samples: Rows.
        batch_size: Rows per batch.
        shuffle: Whether (and how) each pass is shuffled, as ``fit``'s ``shuffle``.
        seed: Seed of the passes' orders.
        passes: The pipeline's pass counter (``fitpipe.pipeline.arrays.pass_counter``).
    """

    def __init__(
        self,
        parts: tuple[Any, ...],
        num_samples: int,
        batch_size: int,
        shuffle: Shuffle,
        seed: int,
        passes: tf.Variable,
    ) -> None:
        self._parts, self._passes = parts, passes
        self.num_samples, self.batch_size = num_samples, batch_size
        self._order = NumpyOrder(
            num_samples, batch_size, seed, shuffle == "batch", shuffled=bool(shuffle)
        )
        #: The passes' shuffle and seed, as given (rows copied to a device reuse them).
        self.shuffle, self.seed = shuffle, seed
        row = sum(leaf[:1].nbytes for leaf in tf.nest.flatten(parts))
        self.block_batches = max(1, BLOCK_BYTES // max(1, row * batch_size))
        self._check: Check | None = None

    @staticmethod
    def takes(parts: tuple[Any, ...]) -> bool:
        """Whether every leaf of ``parts`` can be streamed in blocks (NumPy numbers, bools)."""
        return all(
            isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biuf" and leaf.ndim >= 1
            for leaf in tf.nest.flatten(parts)
        )

    def dataset_spec(self) -> Any:
        """The element spec of the dataset of these rows (``array_dataset``), unbuilt.

        Each leaf's dtype and inner shape, any number of rows (the batches are gathered
        from NumPy, their size unknown to ``tf.data``).
        """
        return tf.nest.map_structure(
            lambda leaf: tf.TensorSpec([None, *leaf.shape[1:]], leaf.dtype), self._parts
        )

    @property
    def parts(self) -> tuple[Any, ...]:
        """The caller's arrays, nested as a batch (never copied here)."""
        return self._parts

    def check_batches(self, check: Check | None) -> None:
        """Runs ``check(index, batch)`` on each batch of the passes asked for from now on."""
        self._check = check

    def row_blocks(self) -> RowBlocks:
        """The blocks of the coming pass (its index read now, its rows read lazily)."""
        pass_index = int(self._passes.assign_add(1).numpy()) - 1
        blocks = self._blocks(pass_index)
        if self._check is not None:
            blocks = checked_chunks(blocks, self._check, self.batch_size)
        return RowBlocks(self.batch_size, blocks)

    def _blocks(self, pass_index: int) -> Iterator[tuple[Any, ...]]:
        batches = math.ceil(self.num_samples / self.batch_size)
        for first in range(0, batches, self.block_batches):
            if self.shuffle:
                yield _take(self._parts, self._order.span(pass_index, first, self.block_batches))
            else:
                start = first * self.batch_size
                yield _slice(self._parts, start, start + self.block_batches * self.batch_size)


def _take(parts: tuple[Any, ...], rows: np.ndarray) -> tuple[Any, ...]:
    """``leaf[rows]`` of every leaf, into aligned buffers (a trainer takes them as they are).

    Not ``fitpipe.adapters.row_blocks.take_rows`` (a shuffle buffer's reorder): it gathers
    wide leaves with TensorFlow, which would convert the whole caller's array (gigabytes)
    for each block.
    """
    return tf.nest.map_structure(lambda leaf: take_rows_into(leaf, rows), parts)


def _slice(parts: tuple[Any, ...], start: int, stop: int) -> tuple[Any, ...]:
    """Rows ``start`` to ``stop`` of every leaf: views of the caller's arrays."""
    return tf.nest.map_structure(lambda leaf: leaf[start:stop], parts)
