"""The workers of a ``keras.utils.PyDataset``: threads or processes that fetch ``dataset[i]``.

Ending the workers never waits for a ``__getitem__`` that is running, as Keras does not: worker
processes are terminated, and a worker thread inside ``__getitem__`` (which Python cannot stop)
is a daemon that ends when the call returns, taking no other item; an item not yet started is
cancelled. So an exception or ``KeyboardInterrupt`` raised during ``fit`` reaches the caller at
once, however slow the dataset's items are.

Worker processes hold a copy of the dataset made when they started, so ``on_epoch_end``
restarts them (:meth:`Workers.restart`) for the next epoch to see what it changed. A pass that
goes on into the next epoch (``steps_per_epoch``) keeps the batches already fetched, and fetches
again, from the new processes, the ones the old processes had not delivered.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import multiprocessing
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from fitpipe.adapters.input_threads import in_input_code, join_unless_in_input
from fitpipe.adapters.stages import StageClock
from fitpipe.errors import FitpipeTypeError, message

__all__ = ["Workers"]

_JOIN_SECONDS = 5.0  # idle worker threads and terminated processes end well within it
_MARK = "fitpipe_raised_by_getitem"  # set on an error `__getitem__` raised in a process
_WORKER_DATASET: Any = None


def _init_worker(dataset: Any) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _worker_get(index: int) -> Any:
    """``dataset[index]`` in a worker process; an error it raises is marked as the item's."""
    try:
        return _WORKER_DATASET[index]
    except BaseException as err:
        with contextlib.suppress(AttributeError, TypeError):  # (a class without a __dict__)
            setattr(err, _MARK, True)
        raise


def _settle(
    future: concurrent.futures.Future[Any], result: Any, error: BaseException | None
) -> None:
    """Sets a future's outcome unless it was settled already (failed by a shutdown)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _Pool(Protocol):
    def submit(self, index: int) -> concurrent.futures.Future[Any]: ...

    def shutdown(self) -> None: ...


class _Threads:
    """Daemon threads running ``get(index)``; :meth:`shutdown` waits for none that is busy.

    Args:
        count: The number of threads.
        get: The dataset's ``__getitem__``.
    """

    def __init__(self, count: int, get: Callable[[int], Any]) -> None:
        self._get = get
        self._tasks: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], int] | None]
        self._tasks = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        tasks = self._tasks

        def wake(_: Any) -> None:  # the pool dropped unclosed (a dropped pipeline): threads end
            for _ in range(count):
                tasks.put(None)

        ref = weakref.ref(self, wake)
        self._threads = [
            threading.Thread(
                target=_serve, args=(ref, tasks), name=f"fitpipe-pydataset_{i}", daemon=True
            )
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, index: int) -> concurrent.futures.Future[Any]:
        """Queues ``get(index)``; its future."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                future.cancel()
            else:
                self._tasks.put((future, index))
        return future

    def run(self, future: concurrent.futures.Future[Any], index: int) -> None:
        """Runs one queued item on the calling worker thread (unless cancelled or closed)."""
        with self._lock:
            if self._closed or not future.set_running_or_notify_cancel():
                return
            self._running.add(future)
        try:
            with in_input_code():
                batch = self._get(index)
        except BaseException as err:
            _settle(future, None, err)
        else:
            _settle(future, batch, None)
        finally:
            with self._lock:
                self._running.discard(future)

    def shutdown(self) -> None:
        """Cancels the queued items, fails the running ones' futures, ends the idle threads."""
        with self._lock:
            self._closed = True
            running, self._running = list(self._running), set()
            with contextlib.suppress(queue.Empty):
                while (task := self._tasks.get_nowait()) is not None:
                    task[0].cancel()
            for _ in self._threads:
                self._tasks.put(None)
        for future in running:
            _settle(future, None, concurrent.futures.CancelledError())
        deadline = time.monotonic() + _JOIN_SECONDS
        for thread in self._threads:
            join_unless_in_input(thread, max(0.0, deadline - time.monotonic()))


def _serve(ref: weakref.ref[_Threads], tasks: queue.SimpleQueue[Any]) -> None:
    """A worker thread: holds its pool only while it runs an item (a dropped one lets go)."""
    while (task := tasks.get()) is not None:
        pool = ref()
        if pool is None:
            return
        pool.run(*task)
        del pool, task


class _Processes:
    """Worker processes (forked where the platform can) that hold a copy of the dataset.

    Args:
        count: The number of processes.
        dataset: The ``PyDataset``, copied into each process as it starts.
    """

    def __init__(self, count: int, dataset: Any) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        self._executor = concurrent.futures.ProcessPoolExecutor(
            count,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_worker,
            initargs=(dataset,),
        )

    def submit(self, index: int) -> concurrent.futures.Future[Any]:
        """Queues ``dataset[index]`` for a process; its future."""
        return self._executor.submit(_worker_get, index)

    def shutdown(self) -> None:
        """Cancels the queued items and terminates the processes, busy or not."""
        executor = self._executor
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):  # (one that ended already)
                process.terminate()
        deadline = time.monotonic() + _JOIN_SECONDS
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(max(0.0, deadline - time.monotonic()))
            # The executor's own thread joins them too: when it reaped a process first,
            # `join` returned early and the exit code is set by that thread a moment later.
            while process.exitcode is None and time.monotonic() < deadline:
                time.sleep(0.005)


class _Closed(Exception):
    """The workers were closed while a pass waited for an item: the pass ends."""


class Workers:
    """Fetches ``dataset[i]`` in order, inline or on workers, a bounded queue ahead.

    Args:
        dataset: The ``PyDataset``.
        caller: The public method being run (for messages).
        clock: Times ``dataset[i]`` inline, or the wait for a worker's batch (stage
            ``python``), or None.
    """

    def __init__(self, dataset: Any, caller: str, clock: StageClock | None = None) -> None:
        self.dataset = dataset
        self.caller = caller
        self.clock = clock
        workers = int(getattr(dataset, "workers", 1) or 0)
        self.count = max(1, workers)
        self.processes = bool(getattr(dataset, "use_multiprocessing", False))
        # As Keras: several workers, or one process; no worker (0) reads inline.
        self._parallel = workers > 1 or (workers > 0 and self.processes)
        size = getattr(dataset, "max_queue_size", 10)
        # As Keras' `queue.Queue(max_queue_size)`: 0 (or less) bounds nothing
        self.queue_size: int | None = 10 if size is None else (int(size) if size > 0 else None)
        self._pool: _Pool | None = None
        self._lock = threading.Lock()
        self._generation = 0  # pools ended so far (restarted or closed)
        self._closes = 0  # times closed: a pass begun before a close ends

    @property
    def parallel(self) -> bool:
        """True when batches are fetched by workers rather than inline."""
        return self._parallel

    def _submit(self, index: int, closes: int) -> tuple[int, concurrent.futures.Future[Any]]:
        """``dataset[index]`` queued on the current pool (started if need be): its generation.

        Raises ``_Closed`` when the workers were closed since the pass began (``closes``).
        """
        with self._lock:
            if self._closes != closes:
                raise _Closed
            if self._pool is None:
                if self.processes:
                    self._pool = _Processes(self.count, self.dataset)
                else:
                    self._pool = _Threads(self.count, self.dataset.__getitem__)
            return self._generation, self._pool.submit(index)

    def fetch(self, indices: Iterator[int]) -> Iterator[Any]:
        """Yields ``dataset[i]`` for each index, in order; ends when the workers are closed."""
        if not self.parallel:
            yield from self._inline(indices)
            return
        closes = self._closes
        pending: collections.deque[tuple[int, int, concurrent.futures.Future[Any]]]
        pending = collections.deque()
        try:
            for index in indices:
                pending.append((index, *self._submit(index, closes)))
                if self.queue_size is not None and len(pending) >= self.queue_size:
                    yield self._result(*pending.popleft(), closes)
            while pending:
                yield self._result(*pending.popleft(), closes)
        except _Closed:
            return
        finally:
            for _, _, future in pending:
                future.cancel()

    def _inline(self, indices: Iterator[int]) -> Iterator[Any]:
        clock = self.clock
        for index in indices:
            start = time.perf_counter() if clock is not None else 0.0
            with in_input_code():
                batch = self.dataset[index]
            if clock is not None:
                clock.add("python", time.perf_counter() - start)
            yield batch

    def _result(
        self, index: int, generation: int, future: concurrent.futures.Future[Any], closes: int
    ) -> Any:
        """Item ``index``'s batch, fetched again when a restart lost it; waits are ``python``."""
        start = time.perf_counter()
        while True:
            try:
                with in_input_code():  # (a closing pipeline does not wait for this thread)
                    batch = future.result()
                break
            except (concurrent.futures.CancelledError, BrokenProcessPool):
                if self._closes == closes and generation == self._generation:
                    raise
                generation, future = self._submit(index, closes)  # lost to a restart: again
            except Exception as err:
                if self.processes and not getattr(err, _MARK, False):
                    raise self._unsent(index, err) from err
                raise
        if self.clock is not None:
            self.clock.add("python", time.perf_counter() - start)
        return batch

    def _unsent(self, index: int, error: Exception) -> FitpipeTypeError:
        """The error for batch ``index`` that a worker process made but could not send back."""
        return FitpipeTypeError(
            message(
                self.caller,
                f"could not send batch {index} (counted from 0) of the PyDataset back from its "
                f"worker process ({type(error).__name__}: {error})",
                "With `use_multiprocessing=True`, `__getitem__` runs in worker processes and "
                "each batch is pickled there to be sent back",
                "Return NumPy arrays (or other values that pickle) from `__getitem__`, or use "
                "worker threads (`use_multiprocessing=False`)",
                x=self.dataset,
            )
        )

    def restart(self) -> None:
        """Ends the workers; a pass that goes on fetches its next items on new ones."""
        self._end(closing=False)

    def close(self) -> None:
        """Ends the workers without waiting for a running item; a pass begun before ends."""
        self._end(closing=True)

    def _end(self, closing: bool) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._generation += 1
            self._closes += int(closing)
        if pool is not None:
            pool.shutdown()
