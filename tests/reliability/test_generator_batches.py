"""Batches from Python code (generators, ``PyDataset``): every one checked on the host first.

Classes of failure guarded here, each at the one mechanism every such batch passes
(``fitpipe.adapters.batch_checks.BatchSpec`` and the generator feeder):

* a batch of 0 rows (first or mid-epoch) trains on as in Keras, never a crash (it crashed the
  process in TensorFlow's ``unbatch``): run in a child process;
* a later batch unlike the first ones (dtype, rank, structure, an object array holding None,
  x and y of different row counts) is a fitpipe error naming the batch and the part, never a
  silent cast;
* ``KeyboardInterrupt`` and ``SystemExit`` raised by the input reach the caller as themselves;
* read-ahead of a generator never takes more than the trainer uses (training in chunks, a
  live feed that blocks);
* a fuzz test of random batch sequences drifting in all of these ways, run in a child
  process: each run trains correctly or raises a fitpipe error naming the first bad batch.
"""

from __future__ import annotations

import json
import os
import queue
import re
import selectors
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeError
from fitpipe.testing.fixtures import BatchesPyDataset

CHILD = Path(__file__).with_name("batches_child.py")
CASE_SECONDS = 120  # a case (one call) running longer is a hang


# ------------------------------------------------------------------------------ the child
class Child:
    """One child process answering cases (see ``batches_child.py``); restarted after a crash."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = tempfile.TemporaryFile(mode="w+")

    def _start(self) -> subprocess.Popen[str]:
        self.stderr.seek(0)
        self.stderr.truncate()
        return subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    def _failure(self, what: str) -> dict[str, Any]:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.proc = None
        self.stderr.seek(0)
        return {"crash": f"{what} (exit code {code})", "stderr": self.stderr.read()[-3000:]}

    def run(self, case: dict[str, Any]) -> dict[str, Any]:
        """Runs ``case``; a crash or a hang comes back as ``{"crash": ...}``."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                if not selector.select(timeout=CASE_SECONDS):
                    return self._failure(f"no answer within {CASE_SECONDS} s")
                line = self.proc.stdout.readline()
                if not line:
                    return self._failure("the child process died")
                if line.startswith("RESULT "):
                    return dict(json.loads(line[len("RESULT ") :]))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


@pytest.fixture(scope="module")
def child() -> Iterator[Child]:
    worker = Child()
    yield worker
    worker.close()


def desc(rows: int, **changes: Any) -> dict[str, Any]:
    """A batch description for the child: ``(x, y)`` of float32 by default."""
    return {"rows": rows, "x_dtype": "float32", "y_dtype": "float32", "parts": "xy", **changes}


def assert_close(got: list[float], want: list[float]) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- 0-row batches
ZERO_ROW_RUNS = [
    *[("generator", call, jit) for call in ("fit", "evaluate", "predict") for jit in (0, 1)],
    *[("pydataset", call, 0) for call in ("fit", "evaluate", "predict")],  # never grouped
]


@pytest.mark.parametrize(("source", "call", "jit"), ZERO_ROW_RUNS)
def test_zero_row_batches_run_as_in_keras(child: Child, source: str, call: str, jit: int) -> None:
    # 0 rows first and mid-epoch. Keras runs a step on such a batch (a zero gradient, the
    # step counted); fitpipe must do the same, not crash (XLA or not).
    batches = [desc(0), desc(3), desc(0), desc(2, parts="xy"), desc(0)]
    found = child.run(
        {"batches": batches, "call": call, "jit": bool(jit), "source": source, "keras": True}
    )
    assert "crash" not in found, found
    assert "error" not in found, found["error"]
    # fit's results end with the optimizer's step count: fitpipe counts one per batch, 0-row
    # batches included (the NumPy reference); Keras 3 counts one more for any generator.
    end = -1 if call == "fit" else None
    assert_close(found["got"][:end], found["keras"][:end])
    assert_close(found["got"], found["want"])


# -------------------------------------------------------------- batches unlike the first
def dense_trainer() -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=False)
    return trainer


def x_rows(rows: int) -> np.ndarray:
    return np.ones((rows, 4), "float32")


def y_rows(rows: int, dtype: str = "float32") -> np.ndarray:
    return np.ones((rows, 1), dtype)


def with_none(rows: int) -> np.ndarray:
    held = y_rows(rows).astype(object)
    held[1, 0] = None
    return held


LATER_BATCHES = {
    # name: (bad batch, the message's distinctive part)
    "int-targets-then-floats": (
        (x_rows(2), np.array([[1.5], [2.5]])),
        r"`y` has dtype float64, unlike the first batches \(int64\)",
    ),
    "float32-then-float64-x": (
        (np.ones((2, 4)), np.array([[1], [2]])),
        r"`x` has dtype float64, unlike the first batches \(float32\)",
    ),
    "rank-change": ((x_rows(2)[..., None], np.array([[1], [2]])), r"`x` has rank 3"),
    "object-holding-none": ((x_rows(2), with_none(2)), r"`y` is an object array holding None"),
    "structure-change": (({"a": x_rows(2)}, np.array([[1], [2]])), "structure unlike the first"),
    "part-dropped": ((x_rows(2),), "structure unlike the first"),
    "weights-appear": (
        (x_rows(2), np.array([[1], [2]]), np.ones(2)),
        r"first ones: \(x: array, y: array\)\. Yield those parts.*in every batch or in none",
    ),
    "x-y-row-counts": (
        (x_rows(3), np.array([[1], [2]])),
        r"parts hold different numbers of rows.*`x`: 3, `y`: 2",
    ),
}


def good_batch(rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return x_rows(rows), np.ones((rows, 1), "int64")


def yielding(bad: Any, at: int) -> Iterator[Any]:
    for index in range(5):
        yield bad if index == at else good_batch()


@pytest.mark.parametrize("at", [1, 3], ids=["peeked", "later"])
@pytest.mark.parametrize("name", sorted(LATER_BATCHES))
def test_a_batch_unlike_the_first_is_an_error_naming_it(name: str, at: int) -> None:
    bad, words = LATER_BATCHES[name]
    with pytest.raises(FitpipeError, match=rf"^`fit` got batch {at} from the generator") as info:
        dense_trainer().fit(yielding(bad, at), verbose=0)
    assert isinstance(info.value, (ValueError, TypeError))
    assert re.search(words, str(info.value)), str(info.value)
    assert f"batch={at} (counted from 0)" in str(info.value)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_a_pydataset_batch_unlike_the_first_is_an_error_naming_it(call: str) -> None:
    batches = [good_batch() for _ in range(5)]
    batches[3] = LATER_BATCHES["int-targets-then-floats"][0]
    with pytest.raises(FitpipeError, match=rf"^`{call}` got batch 3 from the PyDataset whose `y`"):
        getattr(dense_trainer(), call)(BatchesPyDataset(batches), verbose=0)


def test_a_first_batch_with_x_and_y_of_different_rows_is_an_error_naming_it() -> None:
    def gen() -> Iterator[Any]:
        yield x_rows(3), y_rows(2)

    with pytest.raises(FitpipeError, match=r"^`evaluate` got batch 0 from the generator whose"):
        dense_trainer().evaluate(gen(), verbose=0)


# ------------------------------------------------------------------ KeyboardInterrupt
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("at", [0, 3], ids=["first", "mid-epoch"])
def test_interrupts_in_a_generator_reach_the_caller_as_themselves(
    exc: type[BaseException], at: int
) -> None:
    def gen() -> Iterator[Any]:
        for index in range(6):
            if index == at:
                raise exc("stop here")
            yield good_batch()

    with pytest.raises(exc, match="stop here"):
        dense_trainer().fit(gen(), verbose=0)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("workers", [1, 2])
def test_interrupts_in_a_pydataset_reach_the_caller_as_themselves(
    exc: type[BaseException], workers: int
) -> None:
    class Interrupted(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=workers)

        def __len__(self) -> int:
            return 6

        def __getitem__(self, index: int) -> Any:
            if index == 4:
                raise exc("stop here")
            return good_batch()

    with pytest.raises(exc, match="stop here"):
        dense_trainer().evaluate(Interrupted(), verbose=0)


# ------------------------------------------------------------------------- read-ahead
def numbered(read: list[int]) -> Iterator[Any]:
    """Endless batches whose x holds the batch's number; ``read`` lists those taken."""
    index = 0
    while True:
        read.append(index)
        yield np.full((2, 4), index, "float32"), np.full((2, 1), index, "float32")
        index += 1


def test_training_in_chunks_trains_consecutive_batches() -> None:
    read: list[int] = []
    batches = numbered(read)
    keras.utils.set_random_seed(0)
    chunked = dense_trainer()
    start = [w.copy() for w in chunked.model.get_weights()]
    chunked.fit(batches, steps_per_epoch=5, verbose=0)
    assert len(read) == 5  # no batch read ahead past the 5 used
    chunked.fit(batches, steps_per_epoch=5, verbose=0)
    assert len(read) == 10
    # The same 10 batches in one call, from arrays, give the same weights: the second call
    # trained batches 5-9.
    whole = dense_trainer()
    whole.model.set_weights(start)
    x = np.repeat(np.arange(10, dtype="float32"), 2)[:, None] * np.ones((1, 4), "float32")
    whole.fit(x, x[:, :1], batch_size=2, shuffle=False, verbose=0)
    for got, want in zip(chunked.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 3])
def test_predict_and_evaluate_with_steps_take_no_more_than_they_use(steps: int) -> None:
    read: list[int] = []
    batches = numbered(read)
    trainer = dense_trainer()
    first = trainer.predict(batches, steps=steps, verbose=0)
    assert len(read) == steps
    trainer.evaluate(batches, steps=steps, verbose=0)
    assert len(read) == 2 * steps
    second = trainer.predict(batches, steps=steps, verbose=0)
    assert len(read) == 3 * steps
    weights, bias = trainer.model.get_weights()
    want = [np.full((2, 4), i, "float32") @ weights + bias for i in range(3 * steps)]
    np.testing.assert_allclose(first, np.concatenate(want[:steps]), rtol=1e-5)
    np.testing.assert_allclose(second, np.concatenate(want[2 * steps :]), rtol=1e-5)


#: The most batches a run stopped early has taken beyond the last one it used (README: one
#: budget for the batches waiting and those handed out in blocks no step used yet).
READ_AHEAD_BOUND = 64


def settled(read: list[int]) -> None:
    """Waits until the reading threads took no batch for 0.2 s (up to 5 s): read-ahead full."""
    taken, still = -1, 0
    for _ in range(250):
        taken, still = len(read), still + 1 if len(read) == taken else 0
        if still == 10:
            return
        threading.Event().wait(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("call", ["fit", "predict"])
# (blocks join up to 32 batches, 64 before: stops on either side of a block's first batch)
@pytest.mark.parametrize("stop", [0, 4, 31, 32, 64, 70, 128, 300])
def test_a_run_stopped_in_a_callback_took_at_most_the_documented_batches_beyond(
    call: str, stop: int
) -> None:
    read: list[int] = []
    batches = numbered(read)
    used: list[int] = []

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            used.append(batch)
            if batch == stop:
                settled(read)  # the worst case: every stage of the read-ahead as full as it gets
                raise RuntimeError("stop here")

        on_predict_batch_end = on_train_batch_end

    trainer = dense_trainer()
    with pytest.raises(RuntimeError, match="stop here"):
        if call == "fit":
            trainer.fit(batches, steps_per_epoch=2000, verbose=0, callbacks=[Stop()])
        else:
            trainer.predict(batches, steps=2000, verbose=0, callbacks=[Stop()])
    taken = len(read)
    assert used[-1] == stop
    assert stop + 1 <= taken <= stop + 1 + READ_AHEAD_BOUND
    threading.Event().wait(0.3)
    assert len(read) == taken  # nothing read after the call returned


def test_a_live_feed_is_not_read_after_fit_returns() -> None:
    feed: queue.Queue[int] = queue.Queue()
    for index in range(5):
        feed.put(index)

    def live() -> Iterator[Any]:
        while True:
            index = feed.get()  # blocks when the feed is empty
            yield np.full((2, 4), index, "float32"), np.full((2, 1), index, "float32")

    batches = live()
    before = set(threading.enumerate())  # (other tests' threads are not this fit's)
    dense_trainer().fit(batches, steps_per_epoch=5, verbose=0)
    assert not [t.name for t in set(threading.enumerate()) - before if t.name.startswith("fitpipe")]
    feed.put(99)
    x, _ = next(batches)  # the next item on the feed reaches its reader, not a stale thread
    assert x[0, 0] == 99


# ------------------------------------------------------------------------------ fuzz
X_DTYPES = ["float32", "float64", "int64", "int32"]
Y_DTYPES = ["float32", "float64", "int64"]
SHAPE_KEYS = ("parts", "x_dtype", "y_dtype", "x_rank", "y_rank")


@st.composite
def batch_sequences(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Batch descriptions: a first batch, then later ones that may drift from it."""
    first = {
        "rows": draw(st.integers(0, 3)),
        "x_dtype": draw(st.sampled_from(X_DTYPES)),
        "y_dtype": draw(st.sampled_from(Y_DTYPES)),
        "parts": draw(st.sampled_from(["xy", "xysw"])),
        "x_rank": 2,
        "y_rank": draw(st.sampled_from([1, 2])),
    }
    sequence = [first]
    for _ in range(draw(st.integers(0, 5))):
        sequence.append({**first, "rows": draw(st.integers(0, 3))})
    every = ["x_dtype", "y_dtype", "x_rank", "y_rank", "parts", "none", "y_rows", "nan"]
    # The first batch sets the spec: it may hold a bad value, but its structure and ranks
    # fit the model (an x of rank 1 there is the model's error, naming no batch).
    at_first = ["x_dtype", "y_dtype", "none", "y_rows", "nan"]
    for index, batch in enumerate(sequence):
        drift = draw(st.sampled_from([None] * 8 + (every if index else at_first)))
        if drift == "x_dtype":
            batch["x_dtype"] = draw(st.sampled_from(X_DTYPES))
        elif drift == "y_dtype":
            batch["y_dtype"] = draw(st.sampled_from(Y_DTYPES))
        elif drift == "x_rank":
            batch["x_rank"] = draw(st.sampled_from([1, 3]))
        elif drift == "y_rank":
            batch["y_rank"] = 3 - batch["y_rank"]
        elif drift == "parts":
            batch["parts"] = draw(st.sampled_from(["x", "xy", "xysw", "dict", "list"]))
        elif drift == "none":
            batch["none"] = draw(st.sampled_from(["x", "y"]))
        elif drift == "y_rows":
            batch["y_rows"] = draw(st.sampled_from([r for r in range(4) if r != batch["rows"]]))
        elif drift == "nan":
            batch["nan"] = True
    return sequence


def first_bad(sequence: list[dict[str, Any]]) -> int | None:
    """The index of the first batch fitpipe must refuse, or None when all must train."""
    first = sequence[0]
    for index, batch in enumerate(sequence):
        if batch.get("none") or batch.get("y_rows", batch["rows"]) != batch["rows"]:
            return index
        if any(batch[key] != first[key] for key in SHAPE_KEYS):
            return index
    return None


def check_run(case: dict[str, Any], found: dict[str, Any]) -> None:
    assert "crash" not in found, found
    assert "child_error" not in found, found["child_error"]
    bad = first_bad(case["batches"])
    error = found.get("error")
    if bad is None:
        assert error is None, f"a run that must train raised: {error}"
        assert_close(found["got"], found["want"])
        return
    assert error is not None, f"batch {bad} must be refused, but the call returned"
    assert error["fitpipe"] and error["builtin"], error
    source = "PyDataset" if case["source"] == "pydataset" else "generator"
    assert f"got batch {bad} from the {source}" in error["message"], error["message"]


@settings(
    max_examples=min(settings.default.max_examples, 25),
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
    database=None,
)
@given(
    sequence=batch_sequences(),
    call=st.sampled_from(["fit", "evaluate", "predict"]),
    jit=st.booleans(),
    source=st.sampled_from(["generator", "pydataset"]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_batch_sequences_train_correctly_or_name_the_bad_batch(
    child: Child, sequence: list[dict[str, Any]], call: str, jit: bool, source: str, seed: int
) -> None:
    case = {"batches": sequence, "call": call, "jit": jit, "source": source, "seed": seed}
    check_run(case, child.run(case))


def test_the_child_reports_a_crash_instead_of_dying_with_the_test_run(child: Child) -> None:
    # "never a crash" is only tested if a crash in the child fails the test rather than
    # passing unnoticed or killing pytest.
    assert child.proc is None or child.proc.poll() is None
    crashed = child.run({"crash": True, "batches": [], "call": "fit", "jit": False})
    assert "crash" in crashed
