"""``PyDataset`` workers across epochs and interruptions, against Keras.

* Worker processes are restarted after ``on_epoch_end``; a pass that goes on into the next
  epoch (``steps_per_epoch``) once crashed there with ``cannot schedule new futures after
  shutdown``: it goes on, on the new processes, and trains as Keras does.
* ``on_epoch_begin`` runs once per epoch, also when a pass spans epochs (it ran once a pass).
* An exception or ``KeyboardInterrupt`` raised in a callback reaches the caller at once, not
  after every busy worker's ``__getitem__`` returned; no thread or process is left behind.
* A batch a worker process cannot pickle is named in a fitpipe error with its fix.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import FitpipeTypeError

ROWS, BATCH = 96, 8


def _rows(index: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.arange(index * BATCH, (index + 1) * BATCH) % ROWS
    x = np.stack([np.sin(ids), np.cos(ids), ids % 5 / 5.0], 1).astype("float32")
    return x, (ids % 2).astype("float32")[:, None]


class Rows(keras.utils.PyDataset):
    """12 batches (or endless); records its epoch hooks; item ``slow_from`` on waits."""

    def __init__(
        self, endless: bool = False, slow_from: int | None = None, wait: float = 0, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.endless, self.slow_from, self.wait = endless, slow_from, wait
        self.events: list[str] = []
        self.started: list[int] = []
        self.release = threading.Event()

    @property
    def num_batches(self) -> int | None:
        return None if self.endless else ROWS // BATCH

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.started.append(index)
        if self.slow_from is not None and index >= self.slow_from:
            self.release.wait(self.wait)  # (a process sleeps: its copy is never released)
        return _rows(index)

    def on_epoch_begin(self) -> None:
        self.events.append("begin")

    def on_epoch_end(self) -> None:
        self.events.append("end")


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    return model


def _fit(use: str, dataset: Any, **kw: Any) -> tuple[keras.Model, Any]:
    model = _model()
    if use == "keras":
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
        return model, model.fit(dataset, shuffle=False, verbose=0, **kw)
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    return model, trainer.fit(dataset, shuffle=False, verbose=0, **kw)


@pytest.mark.subprocess
@pytest.mark.parametrize("endless", [False, True], ids=["finite", "endless"])
def test_processes_go_on_into_the_next_epoch_with_steps_per_epoch(endless: bool) -> None:
    """A pass spanning epochs goes on after the processes' restart, as Keras trains it."""
    kw: dict[str, Any] = {"steps_per_epoch": 3, "epochs": 3}
    _, keras_history = _fit("keras", Rows(endless), **kw)  # (inline: the same batches)
    dataset = Rows(endless, workers=2, use_multiprocessing=True, max_queue_size=2)
    _, history = _fit("fitpipe", dataset, **kw)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], 1e-5)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("workers", [1, 2])
def test_on_epoch_begin_runs_every_epoch_with_steps_per_epoch(workers: int) -> None:
    """Once per epoch, before its end, as Keras (less its extra first ``on_epoch_end``)."""
    theirs, ours = Rows(workers=workers), Rows(workers=workers)
    _fit("keras", theirs, steps_per_epoch=4, epochs=3)
    _fit("fitpipe", ours, steps_per_epoch=4, epochs=3)
    assert ours.events == ["begin", "end"] * 3
    assert theirs.events == ["end", *ours.events]  # Keras' documented extra call


class Callback(keras.callbacks.Callback):
    """Raises ``error`` after batch 1 and notes when."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error, self.raised = error, 0.0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == 1:
            self.raised = time.perf_counter()
            raise self.error


def _ours(names: tuple[str, ...]) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(names)]


SETTINGS = [
    pytest.param({"workers": 3}, id="threads"),
    pytest.param({"workers": 3, "use_multiprocessing": True}, id="processes"),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("stop")], ids=repr)
def test_an_interrupt_does_not_wait_for_busy_workers(
    settings: dict[str, Any], error: BaseException
) -> None:
    """Raised at once while items 3- hang; the next fits work and leave nothing running."""
    names = ("fitpipe-pydataset", "fitpipe-blocks")
    before, children = set(_ours(names)), set(multiprocessing.active_children())
    dataset = Rows(slow_from=3, wait=20, **settings)
    callback = Callback(error)
    try:
        with pytest.raises(type(error)):
            _fit("fitpipe", dataset, epochs=1, callbacks=[callback])
        assert time.perf_counter() - callback.raised < 3.0  # (it waited 20 s)
        assert not set(multiprocessing.active_children()) - children  # terminated
        started = len(dataset.started)
        time.sleep(0.2)
        assert len(dataset.started) == started, "a worker took an item after the interrupt"
    finally:
        dataset.release.set()  # the threads still inside `__getitem__` return now
    for _ in range(2):
        _, history = _fit("fitpipe", Rows(**settings), epochs=1)
        assert len(history.history["loss"]) == 1
    deadline = time.monotonic() + 5
    while set(_ours(names)) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_ours(names)) - before
    assert not set(multiprocessing.active_children()) - children


class Unpicklable(Rows):
    """Batch 3 holds a lock: a worker process cannot send it back."""

    def __getitem__(self, index: int) -> Any:
        x, y = super().__getitem__(index)
        return (x, y, threading.Lock()) if index == 3 else (x, y)


@pytest.mark.subprocess
def test_an_unpicklable_batch_is_named_with_its_fix() -> None:
    dataset = Unpicklable(workers=2, use_multiprocessing=True)
    with pytest.raises(FitpipeTypeError) as caught:
        _fit("fitpipe", dataset, epochs=1)
    text = str(caught.value)
    assert "batch 3" in text and "PyDataset" in text and "worker process" in text
    assert "pickled" in text and "use_multiprocessing=False" in text
    assert isinstance(caught.value.__cause__, TypeError)
    assert "pickle" in str(caught.value.__cause__)
