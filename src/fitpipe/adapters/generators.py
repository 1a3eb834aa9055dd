"""Python generators and iterators that yield batches.

A generator is read once: the first epoch starts it and later epochs go on where the last one
stopped (an infinite generator with ``steps_per_epoch`` is the usual pattern). Batches are read
ahead on one background thread into a bounded queue owned by the source, not by ``tf.data``:
when an epoch ends early its iterator is dropped, but the batches read ahead stay queued for
the next epoch, so none is lost or repeated.
"""

from __future__ import annotations

import math
import queue
import threading
import types
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from fitpipe.adapters.arrays import is_array_like
from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import (
    GROUP,
    ErrorBox,
    check_batch,
    crossing,
    normalize_batch,
    same_shapes,
    signature_of,
    stack,
    stackable,
)
from fitpipe.errors import DataMismatchError, message

_PEEK = 2
_QUEUE_SIZE = 10
_SOURCE = "generator"
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Feeder:
    """Reads the user's iterator on a background thread into a bounded queue.

    Args:
        iterator: The user's iterator (already advanced past the peeked batches).
        peeked: Normalized batches taken while inferring the signature; delivered first.
        signature: The element signature every batch is checked against.
        caller: The public method being run.
    """

    def __init__(
        self, iterator: Iterator[Any], peeked: list[Any], signature: Any, caller: str, source: str
    ) -> None:
        self._source = source
        self._iterator = iterator
        self._signature = signature
        self._caller = caller
        self._index = len(peeked)
        self._queue: queue.Queue[Any] = queue.Queue(_QUEUE_SIZE)
        self._pending = list(peeked)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._finished = False

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for element in self._iterator:
                batch = normalize_batch(element, self._caller, self._source)
                check_batch(batch, self._signature, self._index, self._caller, self._source)
                self._index += 1
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as err:  # delivered to the consumer, raised there
            self._put(_Failure(err))

    def _take(self, block: bool) -> Any:
        if self._pending:
            return self._pending.pop(0)
        with self._lock:
            if self._finished:
                return _END
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fitpipe-generator", daemon=True
                )
                self._thread.start()
        try:
            item = self._queue.get(block=block)
        except queue.Empty:
            return None
        if item is _END:
            self._finished = True
        elif isinstance(item, _Failure):
            self._finished = True
            raise item.error
        return item

    def get(self) -> Any:
        """Returns the next batch, ``_END`` when the generator is exhausted, or raises."""
        return self._take(block=True)

    def get_ready(self) -> Any:
        """Like :meth:`get`, but returns None at once when no batch is ready yet."""
        return self._take(block=False)

    def close(self) -> None:
        """Stops the reading thread (batches read ahead are dropped)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)


def one_pass_source(iterator: Iterator[Any], x: Any, caller: str, source: str) -> BatchSource:
    """A source read once from ``iterator`` of batches, with read-ahead that survives epochs.

    Args:
        iterator: Yields batches in any documented form.
        x: The user's input, for messages.
        caller: The public method being run.
        source: What yields the batches, in words.

    Returns:
        The batch source (its number of batches is unknown).
    """
    peeked = []
    for _ in range(_PEEK):
        try:
            peeked.append(normalize_batch(next(iterator), caller, source))
        except StopIteration:
            break
    if not peeked:
        raise DataMismatchError(
            message(
                caller,
                f"got a {source} that yields nothing",
                f"A {source} input yields at least one batch",
                "Check that it was not already consumed",
                x=x,
            )
        )
    signature = signature_of(peeked, caller, source)
    feeder = _Feeder(iterator, peeked, signature, caller, source)
    errors = ErrorBox()
    budget = _Budget()
    grouped = stackable(signature)

    def generate() -> Iterator[Any]:
        try:
            if grouped:
                yield from _groups(feeder, budget)
            else:
                while (item := feeder.get()) is not _END:
                    yield item
        except Exception as err:
            errors.put(err)
            raise

    dataset = crossing(generate, signature, grouped)
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    dataset = dataset.with_options(options)
    return BatchSource(
        make_dataset=lambda: dataset,
        count_batches=lambda: None,
        close=feeder.close,
        take_error=errors.take,
        read_ahead=False,
        expect=budget.expect,
    )


class _Budget:
    """How many more batches the trainer takes from the current iteration.

    Until told (by ``Pipeline.expect``), batches cross one at a time, as a caller iterating
    the dataset itself may drop its iterator at any batch.
    """

    def __init__(self) -> None:
        self.left: float = 0

    def expect(self, batches: int | None) -> None:
        """Sets the batches the trainer will still take (None: until the input ends)."""
        self.left = math.inf if batches is None else batches

    def allow(self, most: int) -> int:
        """Batches the next group may hold: at most ``most``, and never past the budget."""
        return int(max(1, min(most, self.left)))

    def spend(self, batches: int) -> None:
        """Counts batches handed over."""
        self.left = max(0, self.left - batches)


def _groups(feeder: _Feeder, budget: _Budget) -> Iterator[Any]:
    """Yields the batches ready on the feeder stacked in groups of equal shapes.

    Crossing from Python into ``tf.data`` costs about as much for a group as for one batch,
    so each call hands over what is ready (the first batch is waited for, the others are
    not), up to ``GROUP`` batches and never more than the trainer will take from this
    iteration: a group is never split by an iterator that is dropped.
    """
    while (first := feeder.get()) is not _END:
        group = [first]
        most = budget.allow(GROUP)
        while len(group) < most:
            item = feeder.get_ready()
            if item is None or item is _END:
                break
            if not same_shapes(item, first):
                budget.spend(len(group))
                yield stack(group)
                group, first, most = [item], item, budget.allow(GROUP)
                continue
            group.append(item)
        budget.spend(len(group))
        yield stack(group)


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
        return one_pass_source(iter(request.x), request.x, request.caller, _SOURCE)
