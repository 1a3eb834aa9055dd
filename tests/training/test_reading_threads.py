"""A call ends with no reading thread of its own, whatever waits inside its input.

Every input read in blocks (streamed Parquet, NumPy over the in-memory limit, generators,
``PyDataset``) is read on a ``fitpipe-blocks`` thread. When a call takes fewer batches than
the input holds (``steps_per_epoch``, ``steps``), the trainer stops the thread, and waits for
it before the call returns. A thread waiting inside the source (a generator's reader waiting for the
trainer to want another batch) once slept through that close: every such ``fit`` waited a
second for it and returned with the thread still alive, ended only later by the source's
close. Each close must find its thread ended (:attr:`RowBlocks.stop` wakes such waits).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from block_paths import FEATURES, BlockSpy, classifier, classifier_data

import fitpipe
from fitpipe import limits
from fitpipe.training import block_cursor

ROWS, BATCH, STEPS = 96, 4, 3


class _Batches(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x) // BATCH

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(index * BATCH, (index + 1) * BATCH)
        return self.x[rows], self.y[rows]


def _generator(x: np.ndarray, y: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for lo in range(0, len(x), BATCH):
        yield x[lo : lo + BATCH], y[lo : lo + BATCH]


def _live(x: np.ndarray, y: np.ndarray, batches: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A feed holding exactly ``batches`` batches; asking for one more blocks for ever."""
    feed: queue.Queue[int] = queue.Queue()
    for index in range(batches):
        feed.put(index % (len(x) // BATCH))
    while True:
        lo = feed.get() * BATCH
        yield x[lo : lo + BATCH], y[lo : lo + BATCH]


def _parquet(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> tuple[Path, fitpipe.Schema]:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "rows.parquet"
    columns = {f"f{i}": x[:, i] for i in range(FEATURES)} | {"label": y}
    pq.write_table(pa.table(columns), path, row_group_size=16)
    features = [f"f{i}" for i in range(FEATURES)]
    schema = fitpipe.Schema(features=features, targets="label")
    return path, schema


def _inputs(kind: str, tmp_path: Path, batches: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of a call on the input of ``kind``, ``batches`` batches taken."""
    x, y = classifier_data(ROWS)
    if kind == "numpy":
        return (x, y), {"batch_size": BATCH}
    if kind == "parquet":
        path, schema = _parquet(tmp_path, x, y)
        return (path,), {"schema": schema, "batch_size": BATCH}
    if kind == "pydataset":
        return (_Batches(x, y),), {}
    if kind == "generator":
        return (_generator(x, y),), {}
    return (_live(x, y, batches),), {}


def _trainer() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(classifier())
    trainer.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    return trainer


def _call(
    trainer: fitpipe.Trainer, call: str, steps: int | None, args: Any, kw: Any, val: Any
) -> Any:
    if call.startswith("fit"):
        epochs = 2 if steps else 1  # a generator read whole has one pass
        if call == "fit+validation":  # a validation pass dropped after `steps`, each epoch
            kw = {**kw, "validation_data": val, "validation_steps": steps}
        return trainer.fit(*args, epochs=epochs, steps_per_epoch=steps, **kw)
    if call == "evaluate":
        return trainer.evaluate(*args, steps=steps, **kw)
    return trainer.predict(args[0], steps=steps, **kw)  # x alone


CASES = [
    (kind, steps)
    for kind in ["numpy", "parquet", "pydataset", "generator", "live"]
    for steps in [STEPS, None]
    # A PyDataset read with `steps` goes through tf.data (a pass may span epochs); a live
    # feed is never read to its end.
    if not (kind == "pydataset" and steps) and not (kind == "live" and not steps)
]


@pytest.mark.parametrize("call", ["fit", "fit+validation", "evaluate", "predict"])
@pytest.mark.parametrize(("kind", "steps"), CASES)
def test_a_call_ends_with_its_reading_threads_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, steps: int | None, call: str
) -> None:
    """Each cursor closed finds its thread ended; none is left when the call returns."""
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # arrays and Parquet streamed
    taken = (2 if call.startswith("fit") else 1) * STEPS
    args, kwargs = _inputs(kind, tmp_path, taken)
    val = None
    if call == "fit+validation":
        val_args, _ = _inputs(kind, tmp_path / "val", taken)
        val = val_args if len(val_args) > 1 else val_args[0]
    alive_after_close: list[bool] = []
    original = block_cursor.BlockCursor.close

    def close(cursor: block_cursor.BlockCursor) -> None:
        original(cursor)
        alive_after_close.append(cursor._thread.is_alive())

    monkeypatch.setattr(block_cursor.BlockCursor, "close", close)
    before = set(threading.enumerate())  # other tests' pipelines may still hold theirs
    with BlockSpy() as spy:
        _call(_trainer(), call, steps, args, {"verbose": 0, **kwargs}, val)
    mine = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("fitpipe")]
    assert spy.made >= 1, "the block path was not taken"
    assert alive_after_close and not any(alive_after_close), "a close left its thread running"
    assert not mine, f"reading threads alive after {call} returned: {mine}"


class _Interrupt(keras.callbacks.Callback):
    """Raises ``KeyboardInterrupt`` after batch 1 and notes when."""

    raised = 0.0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == 1:
            self.raised = time.perf_counter()
            raise KeyboardInterrupt


class _Hanging(keras.utils.PyDataset):
    """Item 4 on waits for ``release`` (read inline, on the blocks thread)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, release: threading.Event) -> None:
        super().__init__()
        self.x, self.y, self.release, self.asked = x, y, release, 0

    def __len__(self) -> int:
        return len(self.x) // BATCH

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.asked += 1
        if index >= 4:
            self.release.wait(20)
        return self.x[index * BATCH : (index + 1) * BATCH], self.y[
            index * BATCH : (index + 1) * BATCH
        ]


class _HangingFeed:
    """A generator's batches; ``next()`` from batch 4 on waits for ``release``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, release: threading.Event) -> None:
        self.x, self.y, self.release, self.asked = x, y, release, 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            index = self.asked % (len(self.x) // BATCH)
            self.asked += 1
            if self.asked > 4:
                self.release.wait(20)
            yield (
                self.x[index * BATCH : (index + 1) * BATCH],
                self.y[index * BATCH : (index + 1) * BATCH],
            )


@pytest.mark.parametrize("kind", ["generator", "pydataset"])
def test_an_interrupt_does_not_wait_for_a_read_blocked_in_the_input(kind: str) -> None:
    """Raised at once (it waited 10 s, 1 s); the thread left ends on return, reading no more."""
    x, y = classifier_data(ROWS)
    release = threading.Event()
    source: Any = _HangingFeed(x, y, release) if kind == "generator" else _Hanging(x, y, release)
    data = iter(source) if kind == "generator" else source
    steps = {"steps_per_epoch": 20} if kind == "generator" else {}
    before = set(threading.enumerate())
    callback = _Interrupt()
    try:
        with pytest.raises(KeyboardInterrupt):
            _trainer().fit(data, epochs=1, callbacks=[callback], verbose=0, shuffle=False, **steps)
        assert time.perf_counter() - callback.raised < 0.5
        asked = source.asked
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [t.name for t in set(threading.enumerate()) - before if t.name.startswith("fitpipe")]
    assert source.asked == asked, "the input was read after the call was interrupted"
