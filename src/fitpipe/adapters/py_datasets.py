"""``keras.utils.PyDataset`` inputs, honouring its workers, processes and queue size.

The length is asked again at the start of every epoch, so a ``PyDataset`` whose
``on_epoch_end`` changes its batch size runs exactly ``len()`` batches of that epoch.

With ``shuffle=True`` (``fit``'s default) the batches of a finite ``PyDataset`` are read in a
new order every epoch, as Keras does; each pass's order is drawn from a seed (taken from
NumPy's generator, so ``keras.utils.set_random_seed`` makes it reproducible) and the pass
index, so a run resumed mid-epoch reads the order of the pass it stopped in.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import ErrorBox, normalize_batch, signature_of
from fitpipe.adapters.python_batches import PythonBatches
from fitpipe.adapters.stages import StageClock, timing
from fitpipe.errors import DataMismatchError, message
from fitpipe.seeds import shuffle_seed

_SOURCE = "PyDataset"
_WORKER_DATASET: Any = None


def _init_worker(dataset: Any) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _worker_get(index: int) -> Any:
    return _WORKER_DATASET[index]


class _Workers:
    """A pool of threads or processes that fetch ``dataset[i]`` in order, a bounded queue ahead.

    Args:
        dataset: The ``PyDataset``.
        clock: Times ``dataset[i]`` inline, or the wait for a worker's batch (stage
            ``python``), or None.

    """

    def __init__(self, dataset: Any, clock: StageClock | None = None) -> None:
        self.dataset = dataset
        self.clock = clock
        self.count = max(1, int(getattr(dataset, "workers", 1) or 1))
        self.processes = bool(getattr(dataset, "use_multiprocessing", False))
        self.queue_size = max(1, int(getattr(dataset, "max_queue_size", 10) or 10))
        self._executor: concurrent.futures.Executor | None = None
        self._lock = threading.Lock()

    @property
    def parallel(self) -> bool:
        """True when batches are fetched by workers rather than inline."""
        return self.count > 1 or self.processes

    def _get_executor(self) -> concurrent.futures.Executor:
        with self._lock:
            if self._executor is None:
                if self.processes:
                    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
                    context = multiprocessing.get_context(method)
                    self._executor = concurrent.futures.ProcessPoolExecutor(
                        self.count,
                        mp_context=context,
                        initializer=_init_worker,
                        initargs=(self.dataset,),
                    )
                else:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        self.count, thread_name_prefix="fitpipe-pydataset"
                    )
            return self._executor

    def fetch(self, indices: Iterator[int]) -> Iterator[Any]:
        """Yields ``dataset[i]`` for each index, in order."""
        clock = self.clock
        if not self.parallel:
            for index in indices:
                if clock is None:
                    yield self.dataset[index]
                    continue
                start = time.perf_counter()
                batch = self.dataset[index]
                clock.add("python", time.perf_counter() - start)
                yield batch
            return
        executor = self._get_executor()
        get = _worker_get if self.processes else self.dataset.__getitem__
        queue: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
        try:
            for index in indices:
                queue.append(executor.submit(get, index))
                if len(queue) >= self.queue_size:
                    yield self._result(queue.popleft())
            while queue:
                yield self._result(queue.popleft())
        finally:
            for future in queue:
                future.cancel()

    def _result(self, future: concurrent.futures.Future[Any]) -> Any:
        """A worker's batch; the time waited for it is the ``python`` stage's."""
        if self.clock is None:
            return future.result()
        start = time.perf_counter()
        batch = future.result()
        self.clock.add("python", time.perf_counter() - start)
        return batch

    def close(self) -> None:
        """Stops the workers (threads joined, processes ended)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _count(dataset: Any) -> int | None:
    count = dataset.num_batches
    return None if count is None else int(count)


def _indices(dataset: Any) -> Iterator[int]:
    count = _count(dataset)
    index = 0
    while count is None or index < count:
        yield index
        index += 1


def _peeked_signature(dataset: Any, count: int | None, caller: str) -> Any:
    """The element signature of a ``PyDataset``, from its first two batches (one if it has one).

    Args:
        dataset: The ``PyDataset``.
        count: Its number of batches (None: endless).
        caller: The public method being run.

    Returns:
        The ``tf.data`` element signature.

    Raises:
        DataMismatchError: When the dataset has no batches.

    """
    if count == 0:
        raise DataMismatchError(
            message(
                caller,
                "got a PyDataset of length 0",
                "A PyDataset input has at least one batch",
                "Check its `__len__`",
                x=dataset,
            )
        )
    peek = 1 if count == 1 else 2
    peeked = [normalize_batch(dataset[i], caller, _SOURCE) for i in range(peek)]
    return signature_of(peeked, caller, _SOURCE)


class _PassOrder:
    """The batch indices of each pass: in order, or a permutation keyed by (seed, pass).

    Args:
        shuffle: Shuffle the batches of a finite dataset every pass.

    """

    def __init__(self, shuffle: bool) -> None:
        self.seed = shuffle_seed() if shuffle else None
        self.next_pass = 0

    def seek(self, pass_index: int) -> None:
        """Makes the next pass read the order of pass ``pass_index``."""
        self.next_pass = pass_index

    def indices(self, dataset: Any) -> Iterator[int] | list[int]:
        """The indices of the pass starting now (the length is read now).

        A list when shuffled, else an iterator in order (which may never end).
        """
        pass_index, self.next_pass = self.next_pass, self.next_pass + 1
        seed = self.seed
        count = _count(dataset) if seed is not None else None
        if seed is None or count is None:  # in order (endless: never shuffled, as in Keras)
            return _indices(dataset)
        order = np.random.default_rng([seed, pass_index]).permutation(count)
        return list(order.tolist())


class PyDatasetAdapter:
    """Takes a ``keras.utils.PyDataset``."""

    name = "pydataset"
    accepts = "a keras.utils.PyDataset"
    supports = frozenset({"class_weight", "steps", "shuffle"})

    def can_adapt(self, x: Any) -> bool:
        """True for ``keras.utils.PyDataset`` instances."""
        return isinstance(x, keras.utils.PyDataset)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Reads the first batches for the signature; each epoch re-measures ``len()``.

        Args:
            request: The request.

        Returns:
            The batch source.

        """
        dataset = request.x
        count = _count(dataset)
        signature = _peeked_signature(dataset, count, request.caller)
        clock = StageClock() if timing() else None
        workers = _Workers(dataset, clock)
        errors = ErrorBox()
        order = _PassOrder(bool(request.shuffle))
        read: list[int] = []  # this pass's indices in reading order, for error messages

        def epoch() -> Iterator[Any]:
            dataset.on_epoch_begin()
            indices = order.indices(dataset)
            # A shuffled pass is finite (a list); one in order needs no record.
            read[:] = indices if isinstance(indices, list) else []
            yield from workers.fetch(iter(read) if read else iter(indices))

        def on_epoch_end() -> None:
            dataset.on_epoch_end()
            if workers.processes:
                # Processes hold a copy made when they started: restart them so the next
                # epoch sees what `on_epoch_end` changed.
                workers.close()

        batches = PythonBatches(
            epoch,
            signature,
            errors,
            request.caller,
            _SOURCE,
            label=lambda at: read[at] if read else at,
            clock=clock,
        )
        return BatchSource(
            make_dataset=lambda: batches.dataset,
            count_batches=lambda: _count(dataset),
            on_epoch_end=on_epoch_end,
            close=workers.close,
            finite=count is not None,
            take_error=errors.take,
            seek=order.seek,
            stage_seconds=None if clock is None else clock.seconds,
            check_batches=batches.check_batches,
            # In blocks only when every epoch is one whole pass: a pass that goes on into the
            # next epoch must see what `on_epoch_end` changes, and blocks read passes ahead.
            row_blocks=batches.row_blocks if request.steps is None else None,
            element_spec=batches.element_spec,
        )
