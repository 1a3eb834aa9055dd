"""Faults during training: user exceptions, interrupts and NaN losses end ``fit`` cleanly.

The original exception reaches the caller promptly, and no thread or child process started
for the run outlives it. TF's own thread pools are created by a successful warm-up run of the
same kind before the "before" snapshot is taken.
"""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest

X = np.linspace(0.0, 1.0, 64 * 4, dtype="float32").reshape(64, 4)
Y = np.linspace(0.0, 1.0, 64, dtype="float32").reshape(64, 1)
#: An error must end the call rather than hang it. A hang never ends, so the bound is
#: generous: a loaded 2-core machine (the whole suite beside other work) must not fail it.
PROMPT_SECONDS = 60.0


def batches(count: int = 16, fail_at: int | None = None) -> Iterator[Any]:
    for index in range(count):
        if index == fail_at:
            raise RuntimeError("boom")
        yield X[:4], Y[:4]


class Batches(keras.utils.PyDataset):
    """16 batches of 4 rows; ``__getitem__`` raises ``LookupError`` at ``fail_at``."""

    def __init__(self, fail_at: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_at = fail_at

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index == self.fail_at:
            raise LookupError(f"no batch {index}")
        return X[:4], Y[:4]


def frames(err: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(err.__traceback__)]


# --------------------------------------------------------------------------- generators
@pytest.mark.parametrize("fail_at", [5, 0], ids=["mid-epoch", "first-batch"])
def test_generator_error_reaches_caller_with_its_traceback(rel: Any, fail_at: int) -> None:
    trainer = rel.dense_trainer()
    trainer.fit(batches(), epochs=1, verbose=0)  # warm-up: TF pools, traced step
    before = rel.Snapshot()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^boom$") as info:
        trainer.fit(batches(fail_at=fail_at), epochs=1, verbose=0)
    assert time.monotonic() - start < PROMPT_SECONDS
    assert type(info.value) is RuntimeError
    assert "batches" in frames(info.value), frames(info.value)
    del info  # its traceback holds the failed run's frames
    gc.collect()
    assert before.leaks() == {}


def test_generator_error_in_a_later_epoch(rel: Any) -> None:
    trainer = rel.dense_trainer()
    trainer.fit(batches(), epochs=1, verbose=0)
    before = rel.Snapshot()
    with pytest.raises(RuntimeError, match=r"^boom$") as info:
        trainer.fit(batches(count=100, fail_at=9), steps_per_epoch=4, epochs=5, verbose=0)
    assert "batches" in frames(info.value)
    del info  # its traceback holds the failed run's frames
    gc.collect()
    assert before.leaks() == {}


# ---------------------------------------------------------------------------- PyDataset
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="inline"),
        pytest.param({"workers": 2}, id="threads"),
        pytest.param(
            {"workers": 2, "use_multiprocessing": True},
            id="processes",
            marks=pytest.mark.subprocess,
        ),
    ],
)
def test_pydataset_error_reaches_caller_and_workers_end(rel: Any, options: dict) -> None:
    trainer = rel.dense_trainer()
    trainer.fit(Batches(**options), epochs=1, verbose=0)  # warm-up with the same workers
    before = rel.Snapshot()
    start = time.monotonic()
    with pytest.raises(LookupError, match=r"^no batch 7$") as info:
        trainer.fit(Batches(fail_at=7, **options), epochs=1, verbose=0)
    assert time.monotonic() - start < PROMPT_SECONDS
    assert type(info.value) is LookupError
    if not options.get("use_multiprocessing"):
        assert "__getitem__" in frames(info.value), frames(info.value)
    del info  # its traceback holds the failed run's frames
    gc.collect()
    assert before.leaks() == {}


def test_failed_fit_frees_its_threads_without_gc(rel: Any) -> None:
    trainer = rel.dense_trainer()
    trainer.fit(batches(), epochs=1, verbose=0)
    gc.collect()
    before = rel.Snapshot()
    gc.disable()
    try:
        try:
            trainer.fit(batches(fail_at=5), epochs=1, verbose=0)
        except RuntimeError:
            pass
        left = before.leaks(timeout=3.0)
    finally:
        gc.enable()
    assert left == {}


def test_pydataset_trains_again_after_a_worker_error(rel: Any) -> None:
    trainer = rel.dense_trainer()
    with pytest.raises(LookupError):
        trainer.fit(Batches(fail_at=3, workers=2), epochs=1, verbose=0)
    history = trainer.fit(Batches(workers=2), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


# ---------------------------------------------------------------------- KeyboardInterrupt
class InterruptAt(keras.callbacks.Callback):
    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.seen = 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if batch == self.batch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("source", ["arrays", "generator", "pydataset-threads"])
def test_keyboard_interrupt_from_callback_stops_cleanly(rel: Any, source: str) -> None:
    def data() -> dict[str, Any]:
        if source == "arrays":
            return {"x": X, "y": Y, "batch_size": 4}
        if source == "generator":
            return {"x": batches(count=1000), "steps_per_epoch": 16}
        return {"x": Batches(workers=2)}

    trainer = rel.dense_trainer()
    trainer.fit(epochs=1, verbose=0, **data())
    before = rel.Snapshot()
    interrupt = InterruptAt(batch=2)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(epochs=3, verbose=0, callbacks=[interrupt], **data())
    assert time.monotonic() - start < PROMPT_SECONDS
    assert interrupt.seen == 3  # stopped at once: no further batches, no further epochs
    assert before.leaks() == {}
    weights = [w.copy() for w in trainer.model.get_weights()]
    history = trainer.fit(epochs=2, verbose=0, **data())
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert any(
        not np.array_equal(a, b) for a, b in zip(weights, trainer.model.get_weights(), strict=True)
    )


# --------------------------------------------------------------------------------- NaN
def test_terminate_on_nan_stops_the_run(rel: Any) -> None:
    trainer = rel.dense_trainer()
    x = X.copy()
    x[5] = np.nan
    history = trainer.fit(
        x,
        Y,
        batch_size=4,
        epochs=5,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
        check=False,  # the pre-flight check would warn first (tests/training/test_preflight.py)
    )
    assert len(history.history["loss"]) < 5
    assert trainer.model.stop_training is True
    assert np.isnan(history.history["loss"][-1])


def test_without_terminate_on_nan_all_epochs_run(rel: Any) -> None:
    # The contrast case: the stop above is the callback's doing, not fitpipe's.
    trainer = rel.dense_trainer()
    x = X.copy()
    x[5] = np.nan
    history = trainer.fit(x, Y, batch_size=4, epochs=3, shuffle=False, verbose=0, check=False)
    assert len(history.history["loss"]) == 3
    assert trainer.model.stop_training is False
