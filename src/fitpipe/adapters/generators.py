"""Python generators and iterators that yield batches.

A generator is read once: the first epoch starts it and later epochs go on where the last one
stopped (an infinite generator with ``steps_per_epoch`` is the usual pattern). Batches are read
ahead on one background thread into a buffer owned by the source, not by ``tf.data``: when an
epoch ends early its iterator is dropped, but the batches read ahead stay for the next epoch.

Read-ahead never takes more from the generator than the trainer will use: the trainer says how
many batches it takes from each iteration (``Pipeline.expect``), and the thread reads at most
that many; told nothing, it reads a batch only when one is asked for. So ``fit(gen,
steps_per_epoch=5)`` called twice trains batches 0-4, then 5-9, and a generator that blocks (a
live feed) is never left being read after ``fit`` returns. Batches no step has used yet, waiting
or handed out in blocks, share one budget of ``_BUFFER`` (and, past 2 waiting, ``_BUFFER_BYTES``
waiting): a run stopped early (an exception in a callback) took at most ``_BUFFER`` batches
beyond the last one it used (the README says so). Once full, it is read again when half is
free (a wake of the thread each step cost a generator with a per-batch callback ~20% more CPU).

The trainer's value checks of streamed batches (NaN and infinity under ``fit(check=...)``,
sparse labels in range, finite sample weights) run here, in Python on the normalized arrays,
as each batch is taken (the source is :class:`~fitpipe.adapters.Checkable`): a ``tf.data``
stage per batch would be the input's only one, and cost more than the check.

Batches of dense numbers also reach the trainer without ``tf.data`` (the source is
:class:`~fitpipe.adapters.Blocked`, ``RowBlocks.batched``): a thread joins each group of
equal batches ready on the feeder (up to ``_GATHER``) into one block, the trainer holds
it as tensors and slices the same batches again inside its compiled loop. Crossing into
``tf.data`` cost about 250 us of CPU a batch (640,000 rows of 32 features, batch 256: an
MLP's whole step costs 330 us); joining a group costs about 4 us a batch. That thread takes
a batch only once the trainer wants one more (:meth:`_Feeder.get` with a reader), so it never
reads past the batches the trainer will take (``steps``); a newer reader (the next
validation's) takes over from a dropped cursor's. It waits for a block of ``_GATHER`` while
the steps have others to run (:meth:`_Feeder.gather`).
"""

from __future__ import annotations

import collections
import functools
import math
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from fitpipe.adapters.arrays import is_array_like
from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import (
    GROUP,
    BatchSpec,
    Check,
    ErrorBox,
    crossing,
    keeping_errors,
    normalize_batch,
    peek_batches,
    read_when_asked,
    reporting,
    same_shapes,
    signature_of,
    stack,
    stackable,
)
from fitpipe.adapters.capabilities import RowBlocks
from fitpipe.adapters.input_threads import in_input_code, join_unless_in_input
from fitpipe.adapters.python_batches import BLOCK_BATCHES, GROUP_BYTES, dense_numbers, nbytes
from fitpipe.adapters.row_blocks import concat_rows
from fitpipe.adapters.stages import StageClock, timing

_BUFFER = BLOCK_BATCHES  # batches read ahead and not used by a step yet, at most
#: Most batches of a block (half the budget: the next is read while one trains; a block of 64
#: held it all, and nothing was read while it trained), and freed to read again.
_GATHER = _BUFFER // 2
_BUFFER_BYTES = 2 * GROUP_BYTES  # ... and bytes, past the first 2 batches (large batches)
_SOURCE = "generator"
_END = object()
_JOIN_SECONDS = 10.0
_IDLE_SECONDS = 1.0  # a waiting reading thread looks whether its feeder is still wanted


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Feeder:
    """Reads the user's iterator on a background thread, never past what will be used.

    Args:
        iterator: The user's iterator (already advanced past the peeked batches).
        peeked: Normalized batches taken while inferring the signature; delivered first.
        spec: The spec every later batch is checked against.
        clock: Times ``next()`` (stage ``python``) and the checks (``convert``), or None.
    """

    def __init__(
        self,
        iterator: Iterator[Any],
        peeked: list[Any],
        spec: BatchSpec,
        clock: StageClock | None = None,
    ) -> None:
        self._iterator = iterator
        self._clock = clock
        self._spec = spec
        self._index = len(peeked)
        self._buffer: collections.deque[Any] = collections.deque(peeked)
        self._bytes = sum(nbytes(batch) for batch in peeked)  # of the batches buffered
        self._cond = threading.Condition()
        self._wanted: float = 0  # batches the trainer will still take from this iteration
        self._waiting = 0  # consumers waiting for a batch (not block readers)
        self._out = 0  # batches handed to the current block reader that no step used yet
        self._full = False  # the budget was full: reading resumes once ``_GATHER`` are free
        #: A block reader's gather (see :meth:`gather`): its batches, and what it waits for.
        self._gathering: tuple[int, int, int] | None = None
        self._reader = 0  # the current block reader (see ``new_reader``)
        self._done = False  # the iterator ended or failed (the last buffer item says which)
        self._stop = False
        self._finished = False  # the consumer took the end or the failure
        self._thread: threading.Thread | None = None

    def expect(self, batches: int | None) -> None:
        """Sets the batches the trainer will still take (None: until the input ends)."""
        with self._cond:
            self._wanted = math.inf if batches is None else batches
            self._start()
            self._cond.notify_all()

    def allow(self, most: int) -> int:
        """Batches (at most ``most``) the trainer is known to take after the current one."""
        with self._cond:
            return int(min(most, self._wanted))

    def _start(self) -> None:
        if self._thread is None and not self._done:
            self._thread = threading.Thread(
                target=_read_for, args=(weakref.ref(self),), name="fitpipe-generator", daemon=True
            )
            self._thread.start()

    def _should_read(self) -> bool:
        """Whether to read a batch: one budget of ``_BUFFER`` for those waiting and handed out."""
        ahead = len(self._buffer)
        room = ahead < 2 or self._bytes < _BUFFER_BYTES
        budget = _BUFFER - ahead - self._out >= (_GATHER if self._full else 1)
        return (room and budget and ahead < self._wanted) or (self._waiting > 0 and ahead == 0)

    def _step(self) -> bool:
        """Reads one batch when one is wanted, else waits a while; False once done."""
        with self._cond:
            if not (self._stop or self._done or self._should_read()):
                self._cond.wait(_IDLE_SECONDS)
            if self._stop or self._done:
                return False
            if not self._should_read():
                return True  # (the thread lets go of the feeder, then looks again)
        item = self._read()
        with self._cond:
            self._buffer.append(item)
            self._bytes += 0 if self._last(item) else nbytes(item)
            self._done = self._last(item)
            self._full = len(self._buffer) + self._out >= _BUFFER
            if len(self._buffer) == 1 or self._done or self._gathered():  # (few wakes)
                self._cond.notify_all()
        return True

    def _read(self) -> Any:
        clock = self._clock
        start = time.perf_counter() if clock is not None else 0.0
        try:
            with in_input_code():
                element = next(self._iterator)
        except StopIteration:
            return _END
        except BaseException as err:  # delivered to the consumer, raised there
            return _Failure(err)
        if clock is not None:
            now = time.perf_counter()
            clock.add("python", now - start)
            start = now
        try:
            batch = normalize_batch(element, self._spec.caller, self._spec.source)
            self._spec.check(batch, self._index)
        except Exception as err:
            return _Failure(err)
        if clock is not None:
            clock.add("convert", time.perf_counter() - start)
        self._index += 1
        return batch

    @staticmethod
    def _last(item: Any) -> bool:
        return item is _END or isinstance(item, _Failure)

    def _take(self, block: bool, reader: int | None = None) -> Any:
        with self._cond:
            if self._stop:
                return _END  # closed: nothing more is handed on
            if reader is not None:  # a block reader: only a batch the trainer wants
                while block and self._current(reader) and not (self._wanted or self._finished):
                    self._cond.wait()
                if not self._current(reader):
                    return _END
                if not (self._wanted or self._finished):
                    return None  # not blocking, and not wanted
            if self._finished:
                return _END
            if not block and (not self._buffer or self._last(self._buffer[0])):
                return None  # an end or a failure is taken by a blocking call, after the group
            if not self._buffer:
                self._await_batch(reader)
                if not self._buffer or (reader is not None and reader != self._reader):
                    return _END
            item = self._buffer.popleft()
            if self._last(item):
                self._finished = True
            else:
                self._bytes -= nbytes(item)
                self._wanted = max(0, self._wanted - 1)
                self._out += int(reader is not None)
                if self._should_read():  # (a reader's batch leaves the budget as it was)
                    self._cond.notify_all()
        if isinstance(item, _Failure):
            raise item.error
        return item

    def gather(self, reader: int, have: int, most: int, size: int) -> None:
        """Waits for ``most`` batches (``have`` taken, of ``size`` bytes) while steps run others.

        Blocks grow to half the budget (or ``GROUP_BYTES``): the one in training and the next
        fill it, and the batches used are read again while the next one trains.
        """
        with self._cond:
            self._gathering = (have, most - have, GROUP_BYTES - size)
            while self._out > have and not self._done and self._current(reader):
                if self._gathered():
                    break
                self._cond.wait()
            self._gathering = None

    def _gathered(self) -> bool:
        """Whether a block reader gathers, and has the batches (or bytes) it waits for."""
        need = self._gathering
        return need is not None and (len(self._buffer) >= need[1] or self._bytes >= need[2])

    def ended(self) -> bool:
        """True when the input has no batch left; waits for the next one to be read (kept)."""
        with self._cond:
            if not (self._buffer or self._finished or self._stop):
                self._await_batch()
            return self._finished or self._stop or not self._buffer or self._buffer[0] is _END

    def _await_batch(self, reader: int | None = None) -> None:
        """Waits, the lock held, for a batch (or the end, or a failure) to be buffered.

        The reading thread reads one for a waiting consumer; the wait ends early when the
        feeder is closed or ``reader`` is replaced by a newer one.
        """
        self._start()
        counted = int(reader is None)  # (a reader's batch is read within the budget)
        self._waiting += counted
        self._cond.notify_all()
        while not self._buffer and self._current(reader):
            self._cond.wait()
        self._waiting -= counted

    def _current(self, reader: int | None) -> bool:
        """Not stopped, and ``reader`` (if any) not replaced by a newer one."""
        return not self._stop and (reader is None or reader == self._reader)

    def get(self, reader: int | None = None) -> Any:
        """Returns the next batch, ``_END`` when the generator is exhausted, or raises.

        With ``reader`` (see :meth:`new_reader`), waits until the trainer wants another
        batch of this iteration (:meth:`expect`), and gives ``_END`` once a newer reader
        exists: a thread reading ahead of the trainer never takes a batch no step trains
        on, nor one that the reader of the trainer's next iteration should have.
        """
        return self._take(block=True, reader=reader)

    def get_ready(self, reader: int | None = None) -> Any:
        """Like :meth:`get`, but returns None at once when no batch is ready yet."""
        return self._take(block=False, reader=reader)

    def new_reader(self) -> int:
        """Makes a new block reader current (the older one gets ``_END``); returns it."""
        with self._cond:
            self._reader += 1
            self._out = 0  # (the older reader's batches are gone: a retired one's stay counted)
            self._cond.notify_all()
            return self._reader

    def used(self, reader: int, batches: int) -> None:
        """Steps ran ``batches`` more of those handed to ``reader``: as many may be read."""
        with self._cond:
            if reader == self._reader:
                self._out = max(0, self._out - batches)
                free = _BUFFER - len(self._buffer) - self._out
                alone = self._gathering is not None and self._out <= self._gathering[0]
                if free >= _GATHER or alone:  # (few wakes: one a step cost CPU)
                    self._cond.notify_all()

    def retire(self, reader: int) -> None:
        """Makes ``reader`` take no more batches: a wait of its for one ends (``_END``)."""
        with self._cond:
            if reader == self._reader:
                self._reader += 1
                self._cond.notify_all()

    def close(self) -> None:
        """Stops the reading thread (batches read ahead are dropped).

        Waits for it to end, but not while it is inside the generator's ``next()``, which
        Python cannot interrupt: the thread (a daemon) then ends when that call returns,
        handing its batch to no one.
        """
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            join_unless_in_input(thread, _JOIN_SECONDS)


def _read_for(ref: weakref.ref[_Feeder]) -> None:
    """The reading thread: holds its feeder only while it reads or waits a while.

    A pipeline dropped unclosed (``fitpipe.adapt`` without ``close()``) lets its feeder go:
    the thread ends within :data:`_IDLE_SECONDS`, and the user's generator is collected
    (its ``finally`` runs), where a thread holding the feeder kept both for the process' life.
    """
    while (feeder := ref()) is not None and feeder._step():
        del feeder


def one_pass_source(
    iterator: Iterator[Any], x: Any, caller: str, source: str, steps: int | None = None
) -> BatchSource:
    """A source read once from ``iterator`` of batches, with read-ahead that survives epochs.

    Batches of dense numbers are also :class:`~fitpipe.adapters.Blocked`: the trainer may
    take them joined, a group of equal batches at a time, and slice them again inside its
    compiled loop (no ``tf.data`` crossing per batch: about 250 us of CPU each).

    Args:
        iterator: Yields batches in any documented form.
        x: The user's input, for messages.
        caller: The public method being run.
        source: What yields the batches, in words.
        steps: Batches per epoch the caller asked for, if any: no more are peeked.

    Returns:
        The batch source (its number of batches is unknown).
    """
    peeked = peek_batches(iterator, x, caller, source, steps)
    signature = signature_of(peeked, caller, source)
    clock = StageClock() if timing() else None
    feeder = _Feeder(iterator, peeked, BatchSpec(signature, caller, source), clock)
    errors = ErrorBox()
    grouped = stackable(signature)
    checking: list[Check | None] = [None]  # the trainer's value check (``Checkable``)

    def check_batches(check: Check | None) -> None:
        checking[0] = check

    def blocks(check: Check | None, reader: int) -> Iterator[tuple[Any, int]]:
        for group in _groups(feeder, check, reader, _GATHER):
            yield concat_rows(group), len(group)

    def row_blocks() -> RowBlocks:
        reader = feeder.new_reader()  # a dropped cursor's reader takes no more batches
        stop, used = (functools.partial(f, reader) for f in (feeder.retire, feeder.used))
        read = reporting(blocks(checking[0], reader), errors)
        return RowBlocks(0, read, batched=True, stop=stop, used=used)

    @functools.cache
    def make_dataset() -> Any:  # not built when the trainer takes the blocks
        generate = _passes(weakref.ref(feeder), checking, errors, grouped)
        return read_when_asked(crossing(generate, signature, grouped))

    dense = dense_numbers(signature)  # blocks of dense numbers only
    return BatchSource(
        make_dataset=make_dataset,
        count_batches=lambda: None,
        close=feeder.close,
        take_error=errors.take,
        read_ahead=False,
        expect=feeder.expect,
        ended=feeder.ended,
        stage_seconds=None if clock is None else clock.seconds,
        check_batches=check_batches,
        row_blocks=row_blocks if dense else None,
        element_spec=signature if dense else None,
    )


def _passes(
    held: weakref.ref[_Feeder], checking: list[Check | None], errors: ErrorBox, grouped: bool
) -> Callable[[], Iterator[Any]]:
    """A pass's batches (groups stacked when ``grouped``), checked by ``checking[0]``.

    ``tf.data`` keeps the function for the process' life: it holds the feeder weakly.
    """

    def generate() -> Iterator[Any]:
        check, feeder = checking[0], held()
        if feeder is None:  # (never: a dataset iterated keeps its pipeline's source)
            raise RuntimeError("the generator's pipeline was dropped")
        with keeping_errors(errors):
            if grouped:
                yield from map(stack, _groups(feeder, check))
            else:
                index = 0
                while (item := feeder.get()) is not _END:
                    if check is not None:
                        check(index, item)
                    index += 1
                    yield item

    return generate


def _groups(
    feeder: _Feeder, check: Check | None = None, reader: int | None = None, largest: int = GROUP
) -> Iterator[list[Any]]:
    """Yields the batches ready on the feeder in groups of equal shapes.

    Crossing from Python into ``tf.data`` (or into the compiled loop) costs about as much
    for a group as for one batch, so each group is what is ready (the first batch is waited
    for, as :meth:`_Feeder.get` for ``reader``; the others are not), up to ``largest``
    batches or ``GROUP_BYTES`` and never more than the trainer will take from this
    iteration: a group is never split by an iterator that is dropped. ``check(index,
    batch)`` runs on each batch taken; when it raises, the batches before it go first.
    """
    index = 0
    while (first := feeder.get(reader)) is not _END:
        if check is not None:
            check(index, first)
        index += 1
        group, size, most = [first], nbytes(first), 1 + feeder.allow(largest - 1)
        if reader is not None:
            feeder.gather(reader, 1, most, size)
        while len(group) < most and size < GROUP_BYTES:
            item = feeder.get_ready(reader)
            if item is None or item is _END:
                break
            if check is not None:
                try:
                    check(index, item)
                except BaseException:
                    yield group  # the good batches before the bad one
                    raise
            index += 1
            if not same_shapes(item, first):
                yield group
                group, first, most = [item], item, 1 + feeder.allow(largest - 1)
                size = nbytes(item)
                continue
            group.append(item)
            size += nbytes(item)
        yield group


class GeneratorAdapter:
    """Takes a Python generator or iterator yielding ``(x,)``, ``(x, y)`` or ``(x, y, sw)``."""

    name = "generator"
    accepts = "a Python generator or iterator yielding batches"
    supports = frozenset({"class_weight", "steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for generators and iterator objects (not arrays that are iterable)."""
        if isinstance(x, types.GeneratorType):
            return True
        return isinstance(x, Iterator) and not is_array_like(x)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Peeks the first batches for the signature and streams the rest.

        Args:
            request: The request.

        Returns:
            The batch source.
        """
        return one_pass_source(iter(request.x), request.x, request.caller, _SOURCE, request.steps)
