"""``keras.utils.PyDataset`` inputs: workers, processes, queue size, changing lengths."""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.testing import epoch_batches
from fitpipe.testing.fixtures import ArrayPyDataset

WORKER_SETTINGS = [
    pytest.param({"workers": 1}, id="inline"),
    pytest.param({"workers": 2}, id="threads"),
    pytest.param(
        {"workers": 2, "use_multiprocessing": True}, id="processes", marks=pytest.mark.subprocess
    ),
]


class DoublingDataset(keras.utils.PyDataset):
    """96 rows; the batch size starts at 8 and doubles at the end of every epoch."""

    ROWS = 96

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.x = np.arange(self.ROWS, dtype="float32").reshape(self.ROWS, 1)
        self.batch_size = 8

    def __len__(self) -> int:
        return math.ceil(self.ROWS / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.x[index * self.batch_size : (index + 1) * self.batch_size]
        return rows, rows[:, 0].astype("int64")

    def on_epoch_end(self) -> None:
        self.batch_size *= 2


@pytest.mark.parametrize("settings", WORKER_SETTINGS)
def test_length_changing_between_epochs(settings: dict[str, Any]) -> None:
    dataset = DoublingDataset(**settings)
    with fitpipe.adapt(dataset) as pipeline:
        assert pipeline.adapter == "pydataset"
        for expected in (12, 6, 3):
            assert pipeline.num_batches == expected
            found = epoch_batches(pipeline)
            assert len(found) == expected
            assert {len(b[0]) for b in found} == {96 // expected}
            rows = np.concatenate([b[1] for b in found])
            np.testing.assert_array_equal(np.sort(rows), np.arange(96))
            pipeline.on_epoch_end()
        assert pipeline.num_batches == 2


@pytest.mark.parametrize("settings", WORKER_SETTINGS)
def test_batches_come_in_order(settings: dict[str, Any]) -> None:
    x = np.arange(30, dtype="float32").reshape(15, 2)
    y = np.arange(15)
    dataset = ArrayPyDataset(x, y, np.ones(15, "float32"), 4, **settings)
    with fitpipe.adapt(dataset) as pipeline:
        for _ in range(2):
            found = epoch_batches(pipeline)
            assert [len(b) for b in found] == [3] * 4
            np.testing.assert_array_equal(np.concatenate([b[0] for b in found]), x)
            np.testing.assert_array_equal(np.concatenate([b[1] for b in found]), y)
            pipeline.on_epoch_end()


class RecordingDataset(keras.utils.PyDataset):
    """Records the thread each item is fetched on; the batch holds the fetching process id."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threads: list[str] = []

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.threads.append(threading.current_thread().name)
        return np.full((2, 1), os.getpid(), "int64"), np.full((2,), index)


def fetching_pids(pipeline: Any) -> set[int]:
    return {int(v) for b in epoch_batches(pipeline) for v in b[0].ravel()}


@pytest.mark.parametrize(
    "settings",
    [{"workers": 1}, {"workers": 0, "use_multiprocessing": True}, {"workers": 0}],
    ids=["1", "0-processes", "0"],
)
def test_no_more_than_one_worker_thread_fetches_inline(settings: dict[str, Any]) -> None:
    # As Keras: workers=0 with use_multiprocessing reads inline (it started a process).
    dataset = RecordingDataset(**settings)
    with fitpipe.adapt(dataset) as pipeline:
        dataset.threads.clear()
        assert fetching_pids(pipeline) == {os.getpid()}
    assert len(dataset.threads) == 6
    assert not any(name.startswith("fitpipe-pydataset") for name in dataset.threads)


def test_workers_threads_fetch_on_a_pool_and_close_stops_it() -> None:
    dataset = RecordingDataset(workers=3)
    pipeline = fitpipe.adapt(dataset)
    dataset.threads.clear()
    assert fetching_pids(pipeline) == {os.getpid()}
    assert len(dataset.threads) == 6
    assert all(name.startswith("fitpipe-pydataset") for name in dataset.threads)
    assert len(set(dataset.threads)) <= 3
    pipeline.close()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("fitpipe-pydataset")]
    assert alive == []


@pytest.mark.subprocess
def test_use_multiprocessing_fetches_in_other_processes() -> None:
    dataset = RecordingDataset(workers=2, use_multiprocessing=True)
    with fitpipe.adapt(dataset) as pipeline:
        pids = fetching_pids(pipeline)
        assert pids
        assert os.getpid() not in pids
        pipeline.on_epoch_end()
        assert os.getpid() not in fetching_pids(pipeline)


class SlowFirstDataset(keras.utils.PyDataset):
    """Item 0 runs until ``ahead`` other items have started (or 30 s), then 0.3 s more.

    Records which items were started while it ran. Waiting for the expected items, rather
    than sleeping a fixed time, keeps a loaded machine (slow worker threads) from failing
    the test; the 0.3 s after that is when a fetch beyond the bound would show.
    """

    def __init__(self, ahead: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recording = False
        self.started_during_first: set[int] = set()
        self._first_running = False
        self._lock = threading.Lock()
        self._ahead = ahead
        self._started = threading.Condition(self._lock)

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> tuple[np.ndarray]:
        if self.recording:
            with self._lock:
                if index == 0:
                    self._first_running = True
                elif self._first_running:
                    self.started_during_first.add(index)
                    self._started.notify_all()
            if index == 0:
                with self._started:
                    self._started.wait_for(
                        lambda: len(self.started_during_first) >= self._ahead, timeout=30
                    )
                time.sleep(0.3)
                with self._lock:
                    self._first_running = False
        return (np.full((1, 1), index, "float32"),)


@pytest.mark.parametrize("queue_size", [2, 5])
def test_max_queue_size_bounds_the_items_fetched_ahead(queue_size: int) -> None:
    dataset = SlowFirstDataset(ahead=queue_size - 1, workers=4, max_queue_size=queue_size)
    with fitpipe.adapt(dataset) as pipeline:
        dataset.recording = True
        found = epoch_batches(pipeline)
    assert [int(b[0][0, 0]) for b in found] == list(range(12))
    # While item 0 runs, the other workers take every item already queued: queue_size - 1 of
    # them, and no more.
    assert dataset.started_during_first == set(range(1, queue_size))


def test_max_queue_size_0_bounds_nothing_as_keras_queue() -> None:
    # Keras' enqueuer queues its futures in `queue.Queue(max_queue_size)`: 0 is unbounded, so
    # every other item of the epoch is fetched while item 0 runs (10 of them were, read as
    # the default).
    dataset = SlowFirstDataset(ahead=11, workers=4, max_queue_size=0)
    with fitpipe.adapt(dataset) as pipeline:
        dataset.recording = True
        found = epoch_batches(pipeline)
    assert [int(b[0][0, 0]) for b in found] == list(range(12))
    assert dataset.started_during_first == set(range(1, 12))


def test_pydataset_error_is_kept_for_take_error() -> None:
    class Failing(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, index: int) -> tuple[np.ndarray]:
            if index == 3:
                raise KeyError("item 3 is missing")
            return (np.zeros((2, 1), "float32"),)

    pipeline = fitpipe.adapt(Failing())
    with pytest.raises(tf.errors.OpError, match="item 3 is missing"):
        epoch_batches(pipeline)
    error = pipeline.take_error()
    assert isinstance(error, KeyError)
    assert error.args == ("item 3 is missing",)


def test_pydataset_of_length_zero_is_an_error() -> None:
    class Empty(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 0

        def __getitem__(self, index: int) -> Any:  # pragma: no cover
            raise IndexError(index)

    with pytest.raises(ValueError, match=r"^`adapt` got a PyDataset of length 0"):
        fitpipe.adapt(Empty())


def test_pydataset_single_batch() -> None:
    dataset = ArrayPyDataset(np.ones((3, 2), "float32"), np.zeros(3), None, 8)
    pipeline = fitpipe.adapt(dataset)
    assert pipeline.num_batches == 1
    assert len(epoch_batches(pipeline)) == 1


def test_pydataset_epoch_hooks_are_called() -> None:
    calls: list[str] = []

    class Hooked(ArrayPyDataset):
        def on_epoch_begin(self) -> None:
            calls.append("begin")

        def on_epoch_end(self) -> None:
            calls.append("end")

    pipeline = fitpipe.adapt(Hooked(np.ones((4, 1)), None, None, 2))
    calls.clear()
    epoch_batches(pipeline)
    pipeline.on_epoch_end()
    epoch_batches(pipeline)
    assert calls == ["begin", "end", "begin"]


def batch_order(pipeline: Any) -> list[int]:
    return [int(b[1][0]) // 8 for b in epoch_batches(pipeline)]


@pytest.mark.parametrize("settings", WORKER_SETTINGS[:2])
def test_shuffle_reorders_batches_every_epoch_reproducibly(settings: dict[str, Any]) -> None:
    def three_epochs(seed: int) -> list[list[int]]:
        keras.utils.set_random_seed(seed)
        dataset = DoublingDataset(**settings)
        dataset.on_epoch_end = lambda: None  # type: ignore[method-assign]  # 12 batches of 8
        with fitpipe.adapt(dataset, shuffle=True) as pipeline:
            return [batch_order(pipeline) for _ in range(3)]

    orders = three_epochs(4)
    assert all(sorted(order) == list(range(12)) for order in orders)
    assert len({tuple(order) for order in orders}) == 3  # 12! orders: alike by chance ~1e-9
    assert orders == three_epochs(4)
    assert orders != three_epochs(5)


def test_shuffle_seek_replays_a_pass_and_length_changes_are_followed() -> None:
    keras.utils.set_random_seed(2)
    with fitpipe.adapt(DoublingDataset(), shuffle=True) as pipeline:
        first = [int(b[1][0]) for b in epoch_batches(pipeline)]
        pipeline.on_epoch_end()  # 6 batches of 16 now
        second = [int(b[1][0]) for b in epoch_batches(pipeline)]
        assert sorted(second) == list(range(0, 96, 16)) and len(first) == 12
        pipeline.seek(1)
        assert [int(b[1][0]) for b in epoch_batches(pipeline)] == second


def test_endless_pydataset_is_read_in_order_with_shuffle() -> None:
    class Endless(keras.utils.PyDataset):
        @property
        def num_batches(self) -> None:
            return None

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            return np.full((2, 1), float(index), "float32"), np.full(2, index)

    with fitpipe.adapt(Endless(), shuffle=True) as pipeline:
        assert [int(b[1][0]) for b in pipeline.dataset.take(5)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_every_method_ends_its_pass_with_on_epoch_end(method: str) -> None:
    """``predict`` called ``on_epoch_begin`` but never ``on_epoch_end`` (Keras calls both)."""
    import fitpipe

    class Logged(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[str] = []

        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> Any:
            rows = slice(index * 3, (index + 1) * 3)
            return np.ones((12, 2), "float32")[rows], np.ones((12, 1), "float32")[rows]

        def on_epoch_begin(self) -> None:
            self.log.append("begin")

        def on_epoch_end(self) -> None:
            self.log.append("end")

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    dataset = Logged()
    getattr(trainer, method)(dataset, verbose=0)
    assert dataset.log == ["begin", "end"]
