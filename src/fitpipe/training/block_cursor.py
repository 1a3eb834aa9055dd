"""Streamed rows a block at a time: batches cut inside the compiled loop, read ahead on a thread.

A :class:`~fitpipe.adapters.Blocked` source (streamed Parquet) converts its rows a row group
or a shuffle buffer at a time. Instead of cutting each block into batches in ``tf.data``
(``rebatch``: a copy and tens of microseconds per batch, on the cores the step runs on), the
trainer holds one block as tensors (without a copy when its arrays are aligned) and runs the
loop it runs over rows in memory on it: the batches are slices of the block inside the
compiled loop. The next block is read and converted on a thread meanwhile (pyarrow and most
NumPy copies release the GIL), so an epoch's first block is read while the step is traced.

:func:`segments` cuts the blocks into runs of whole batches (a batch that begins in one block
and ends in the next is joined: its rows only); :class:`BlockCursor` is what the epoch loop
iterates, a :class:`~fitpipe.training.step_loops.RowCursor` whose rows change block by block.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from fitpipe.adapters import (
    RowBlocks,
    block_order,
    concat_rows,
    join_unless_in_input,
    num_rows,
    rows_of,
    take_rows,
)
from fitpipe.columnar import as_tensor
from fitpipe.pipeline import Packing, ResidentRows, held_specs, pack, plan_specs
from fitpipe.training.step_loops import LastTrace, RowCursor, merge

__all__ = ["BlockCursor", "batched_segments", "segments"]

#: ``(block, order, first, batches, batch_rows)``: ``batches`` batches of ``batch_rows`` rows
#: (the last may be short) of a block's rows from position ``first`` of ``order``, the
#: block's row order (None: in order; a shuffle buffer's mix otherwise).
Segment = tuple[tuple[Any, ...], Any, int, int, int]


def _rows(block: tuple[Any, ...], order: Any, lo: int, hi: int) -> tuple[Any, ...]:
    """Positions ``lo`` to ``hi`` of a block's row order, as rows of their own."""
    return rows_of(block, lo, hi) if order is None else take_rows(block, order[lo:hi])


def segments(blocks: Iterator[Any], batch_size: int) -> Iterator[Segment]:
    """Cuts consecutive blocks into runs of whole batches of ``batch_size`` rows.

    Every batch but the last has ``batch_size`` rows; the rows of the batches, in order, are
    the rows of the blocks, in order (a :class:`~fitpipe.adapters.Reordered` block's in its
    order, which the segment carries: its rows are not gathered). A batch that spans
    blocks is a segment of its own (its rows joined into a new block); the last batch may
    be short.

    Args:
        blocks: Blocks of rows (tuples of arrays nested as a batch, or ``Reordered`` ones),
            any number of rows each.
        batch_size: Rows per batch.

    Yields:
        ``(block, order, first, batches, batch_size)``.
    """
    carry: tuple[Any, ...] | None = None  # the start of a batch that goes on in later blocks
    for block in blocks:
        block, order = block_order(block)
        rows, first = num_rows(block), 0
        if rows == 0:
            continue
        if carry is not None:
            need = batch_size - num_rows(carry)
            if rows < need:
                carry = concat_rows([carry, _rows(block, order, 0, rows)])
                continue
            yield concat_rows([carry, _rows(block, order, 0, need)]), None, 0, 1, batch_size
            carry, first = None, need
        full = (rows - first) // batch_size
        if full:
            yield block, order, first, full, batch_size
        if first + full * batch_size < rows:
            carry = _rows(block, order, first + full * batch_size, rows)
    if carry is not None:
        yield carry, None, 0, 1, batch_size


def batched_segments(blocks: Iterator[tuple[tuple[Any, ...], int]]) -> Iterator[Segment]:
    """The segments of blocks of whole batches (:attr:`~fitpipe.adapters.RowBlocks.batched`).

    Each ``(block, batches)`` is one segment: ``batches`` batches of equal rows, empty
    batches included (they are steps too, as the source made them).
    """
    for block, batches in blocks:
        if batches > 0:
            yield block, None, 0, batches, num_rows(block) // batches


def _arguments(segment: Segment, class_weights: Any, packing: Packing | None) -> tuple[Any, int]:
    """A segment as the arguments of the loop over rows in memory, and its batches.

    Narrow leaves are held side by side as ``packing`` says (``fitpipe.pipeline.leaf_packing``).
    """
    block, order, first, batches, batch_size = segment
    flat = tf.nest.flatten(block)
    held = flat if packing is None else pack(flat, packing)
    leaves = tuple(as_tensor(leaf) for leaf in held)
    stop = min(first + batches * batch_size, num_rows(block))
    if order is None:
        rows = tf.range(first, stop, dtype=tf.int32)
    else:  # the loop gathers its batches' rows by index anyway: in this order, not in turn
        rows = tf.constant(order[first:stop], tf.int32)
    size = tf.constant(batch_size, tf.int64)
    return ((leaves, class_weights), rows, size), batches


_END = object()


class _Handoff:
    """What a reading thread and its cursor tell each other; every wait ends on a stop at once.

    The thread hands over one segment at a time (:meth:`put`, :meth:`take`). A pass read ahead
    waits for the pass before it to be read (``after``) and for its epoch to take its first
    segment. A stop (the cursor closed or dropped) wakes every wait of the thread.

    Args:
        after: The handoff of the pass before, whose :attr:`done` starts this one's reading;
            None: reading starts at once.
    """

    def __init__(self, after: _Handoff | None = None) -> None:
        self._cond = threading.Condition()
        self._item: Any = None  # the segment handed over and not yet taken (never None)
        self._stopped = False
        self._taken = False
        self._next: _Handoff | None = None  # the pass after, woken when this one is read
        #: Set once the thread handed over its end (or error), or stopped.
        self.done = threading.Event()
        self.after = after
        if after is not None:
            after._next = self

    def stop(self) -> None:
        """Ends the thread's waits (it returns); a segment handed over and not taken is let go."""
        with self._cond:
            self._stopped, self._item = True, None
            self._cond.notify_all()

    def finish(self) -> None:
        """Called by the thread last: :attr:`done` set, the pass after woken."""
        self.done.set()
        after, self._next = self._next, None  # (no chain of passes kept alive)
        if after is not None:
            with after._cond:
                after._cond.notify_all()

    def ready_to_read(self) -> bool:
        """Waits for the pass before to be read; False when stopped first."""
        after = self.after
        with self._cond:
            while after is not None and not after.done.is_set() and not self._stopped:
                self._cond.wait()
            self.after = None  # (no chain of passes kept alive)
            return not self._stopped

    def wait_taken(self) -> bool:
        """Waits for the cursor to take its first segment; False when stopped first."""
        with self._cond:
            while not self._taken and not self._stopped:
                self._cond.wait()
            return not self._stopped

    def put(self, item: Any) -> bool:
        """Hands ``item`` over once the one before it was taken; False when stopped first."""
        with self._cond:
            while self._item is not None and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return False
            self._item = item
            self._cond.notify_all()
            return True

    def take(self) -> Any:
        """Waits for the next item handed over and takes it."""
        with self._cond:
            while self._item is None:
                self._cond.wait()
            item, self._item, self._taken = self._item, None, True
            self._cond.notify_all()
            return item


def _stop(handoff: _Handoff, wake: Callable[[], None] | None) -> None:
    """Stops a reading thread: its waits end, and so does a wait inside its source."""
    handoff.stop()
    if wake is not None:
        wake()


def _read(blocks: RowBlocks, handoff: _Handoff, packing: Packing | None) -> None:
    """The reading thread: converted segments handed over, then the end or the error.

    A pass read ahead (``handoff.after``) starts once the pass before it is read, and holds
    its first segment until its epoch takes it: one block more than within an epoch.
    """
    ahead = handoff.after is not None
    try:
        if not handoff.ready_to_read():
            return
        cut = batched_segments if blocks.batched else lambda b: segments(b, blocks.batch_size)
        for segment in cut(blocks.blocks):
            arguments = _arguments(segment, blocks.class_weights, packing)
            if not handoff.put((arguments, None)):
                return
            if ahead and not handoff.wait_taken():
                return
            ahead = False
        handoff.put((_END, None))
    except BaseException as err:  # handed to the trainer's thread, raised there
        handoff.put((None, err))
    finally:
        try:
            close = getattr(blocks.blocks, "close", None)
            if close is not None:
                close()  # a generator: its files closed now, not when collected
        finally:
            handoff.finish()


class BlockCursor(RowCursor):
    """Where an epoch over a :class:`~fitpipe.adapters.Blocked` source stands.

    The loop over rows in memory runs on one segment at a time (:attr:`arguments`): its
    batches are :attr:`remaining`; :meth:`run` calls it segment after segment, up to ``n``
    steps, and waits (timed in :attr:`waited`) for the next segment from the reading thread.

    Args:
        blocks: The iteration's blocks, batch size and class weights.
        element_spec: The spec of one batch the step takes (class weights applied).
        block_spec: The spec of one batch as the blocks hold it (every leaf dense).
        after: The cursor of the pass before: reading starts once its blocks are all read,
            so the next epoch's first block is read while this one's last trains; it then
            waits for its epoch (one block held ahead). None: at once.
    """

    in_memory = False
    _handoff: _Handoff

    def __init__(
        self,
        blocks: RowBlocks,
        element_spec: Any,
        block_spec: Any,
        after: BlockCursor | None = None,
    ) -> None:
        packing = plan_specs(tf.nest.flatten(block_spec))
        flat = held_specs(tf.nest.flatten(block_spec), packing)
        empty = [tf.zeros([0, *(d or 0 for d in s.shape[1:])], s.dtype) for s in flat]
        structure = tf.nest.map_structure(lambda _: None, block_spec)
        size, table = blocks.batch_size, blocks.class_weights
        self.rows = ResidentRows(tuple(empty), structure, 0, size, False, 0, table, packing)
        self.element_spec = element_spec
        #: The blocks are a source's own batches (``RowBlocks.batched``): no pass read ahead.
        self.batched = blocks.batched
        self.arguments: Any = None
        self._last = LastTrace(weak=False)
        self.position = 0
        self.batches = 0
        self.waited = 0.0
        self._specs = [tf.TensorSpec([None, *s.shape[1:]], s.dtype) for s in flat]
        self._table = None
        if table is not None:  # one table, or a dict of tables by target key
            self._table = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), table)
        self._ended = False
        self._handoff = _Handoff(after=None if after is None else after._handoff)
        self._wake = blocks.stop
        self._used = blocks.used  # told the batches run: a source's read-ahead budget
        self._thread = thread = threading.Thread(
            target=_read,
            args=(blocks, self._handoff, packing),
            name="fitpipe-blocks",
            daemon=True,
        )
        weakref.finalize(self, _stop, self._handoff, blocks.stop)  # dropped: the thread stops
        thread.start()

    @property
    def remaining(self) -> int:
        """Batches of the current segment not yet run."""
        return self.batches - self.position

    def ready(self) -> bool:
        """Makes a segment with batches left current; False when the blocks ended."""
        while self.remaining <= 0:
            if self._ended:
                return False
            begin = time.perf_counter()
            arguments, failure = self._handoff.take()
            self.waited += time.perf_counter() - begin
            if failure is not None:
                self._ended = True
                raise failure
            if arguments is _END:
                self._ended, self.arguments, self.batches, self.position = True, None, 0, 0
                return False
            (self.arguments, self.batches), self.position = arguments, 0
            self._last = LastTrace(weak=False)  # holds no block but this one (its memory)
        return True

    def skip(self, batches: int) -> None:
        """Passes over the next ``batches`` batches (a run resumed mid-epoch)."""
        while batches > 0 and self.ready():
            step = min(batches, self.remaining)
            self.position += step
            batches -= step
            if self._used is not None:
                self._used(step)

    def run(
        self,
        call: Callable[[RowCursor, int], Any],
        n: int,
        collect: bool,
        held: list[int] | None = None,
    ) -> Any:
        """Runs up to ``n`` steps, ``call(self, m)`` on each segment in turn.

        ``held``: the step function's held ranks, raised in place when the segments'
        outputs differ in their sizes (see ``step_loops.merge``).

        Returns:
            ``(steps_run, outputs)`` as :meth:`RowCursor.run`; fewer than ``n`` steps only
            when the blocks ended.
        """
        count, outputs = 0, []
        while count < n and self.ready():
            done, out = call(self, min(n - count, self.remaining))
            count += done
            if self._used is not None:
                self._used(done)
            outputs.append(out)
        return count, merge(outputs, collect, held) if outputs else None

    def trace(self, loop: Any) -> None:
        """Traces ``loop`` once for segments of any size (not once per block size)."""
        arguments = ((tuple(self._specs), self._table), tf.TensorSpec([None], tf.int32))
        scalar = tf.TensorSpec([], tf.int32)
        loop.get_concrete_function((*arguments, tf.TensorSpec([], tf.int64)), scalar, scalar)

    def stop(self) -> None:
        """Stops the reading thread without waiting for it, and lets go of the segment held.

        The thread sees the stop at once, and a wait inside the source for a batch no step
        will take ends too (:attr:`~fitpipe.adapters.RowBlocks.stop`); a block being
        converted is finished first.
        """
        _stop(self._handoff, self._wake)
        self.arguments, self.batches, self.position, self._ended = None, 0, 0, True

    @property
    def reading(self) -> bool:
        """Whether the reading thread is still running."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Stops the reading thread (:meth:`stop`) and waits for it, up to a second.

        Not while it is inside the input's own code (a ``PyDataset`` item or a generator's
        batch being read, or waited for): the call returns at once, and the thread ends
        when that code returns, reading nothing more (see ``adapters.input_threads``). A
        large block being converted is waited for, up to the second.
        """
        self.stop()
        join_unless_in_input(self._thread, 1.0)
