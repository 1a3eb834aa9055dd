"""Helpers of the reliability suite: tiny compiled models, error checks and leak snapshots."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import multiprocessing
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import FitpipeError

ROWS = 8
FEATURES = 4
CLASSES = 3


@pytest.fixture(autouse=True)
def _fresh_keras_state() -> Iterator[None]:
    keras.backend.clear_session(free_memory=False)  # no gc.collect: ~0.5-2 s a test
    keras.utils.set_random_seed(0)
    yield


def x_data(rows: int = ROWS, width: int = FEATURES) -> np.ndarray:
    return np.linspace(0.0, 1.0, rows * width, dtype="float32").reshape(rows, width)


def y_data(rows: int = ROWS) -> np.ndarray:
    return np.linspace(0.0, 1.0, rows, dtype="float32").reshape(rows, 1)


def one_hot(rows: int = ROWS, classes: int = CLASSES) -> np.ndarray:
    return np.eye(classes, dtype="float32")[np.arange(rows) % classes]


def dense_trainer() -> fitpipe.Trainer:
    """A compiled ``Dense(1)`` regressor on 4 features."""
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def classifier_trainer() -> fitpipe.Trainer:
    """A compiled softmax classifier with 3 classes (one-hot targets)."""
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES, activation="softmax")]
    )
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="categorical_crossentropy")
    return trainer


def two_input_trainer() -> fitpipe.Trainer:
    """A compiled functional model with inputs ``a`` (4 features) and ``b`` (2 features)."""
    a = keras.Input((FEATURES,), name="a")
    b = keras.Input((2,), name="b")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
    trainer = fitpipe.Trainer(keras.Model([a, b], out))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def two_output_trainer() -> fitpipe.Trainer:
    """A compiled functional model with a 3-class softmax output and a regression output."""
    a = keras.Input((FEATURES,))
    first = keras.layers.Dense(CLASSES, activation="softmax", name="classes")(a)
    second = keras.layers.Dense(1, name="value")(a)
    trainer = fitpipe.Trainer(keras.Model(a, [first, second]))
    trainer.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"])
    return trainer


def check_clear_error(
    err: BaseException,
    caller: str,
    names: tuple[str, ...],
    expected: str,
    received: str,
) -> None:
    """Asserts ``err`` is a fitpipe error worded as "`caller` what. expected. fix. Received: ...".

    Args:
        err: The raised exception.
        caller: The public method the message must start with.
        names: Argument names the message must mention (e.g. ``("batch_size",)``).
        expected: A regex the part before ``Received:`` must match (what was expected).
        received: A regex the part after ``Received:`` must match (what was received).

    """
    assert isinstance(err, FitpipeError), f"not a FitpipeError: {type(err).__name__}: {err}"
    assert isinstance(err, (ValueError, TypeError)), type(err).__mro__
    text = str(err)
    assert text.startswith(f"`{caller}` "), text
    assert "Received: " in text, text
    head, _, tail = text.partition("Received: ")
    for name in names:
        assert name in text, f"{name!r} not named in: {text}"
    assert re.search(expected, head, re.S), f"expected-part {expected!r} not in: {head}"
    assert re.search(received, tail, re.S), f"received-part {received!r} not in: {tail}"


# ------------------------------------------------------------------------------ leak checks
def task_count() -> int:
    """Threads of this process as the kernel sees them (Python and native)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # pragma: no cover - not Linux
        return threading.active_count()


def python_threads() -> set[threading.Thread]:
    """Python-started threads; ``_DummyThread`` entries are TF's native pool threads that ran
    Python code (they stay registered forever and are not owned by anyone here).
    """
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and not isinstance(t, threading._DummyThread)
    }


class Snapshot:
    """Threads, native tasks and child processes at one moment, to compare with later."""

    def __init__(self) -> None:
        self.threads = python_threads()
        self.tasks = task_count()
        self.children = set(multiprocessing.active_children())

    def leaks(self, timeout: float = 10.0, task_slack: int = 0) -> dict[str, Any]:
        """Waits up to ``timeout`` s for new threads/processes to end; returns what is left."""
        deadline = time.monotonic() + timeout
        while True:
            threads = python_threads() - self.threads
            children = set(multiprocessing.active_children()) - self.children
            extra_tasks = task_count() - self.tasks - task_slack
            if (not threads and not children and extra_tasks <= 0) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        left: dict[str, Any] = {}
        if threads:
            left["threads"] = sorted(t.name for t in threads)
        if children:
            left["children"] = sorted(str(c) for c in children)
        if extra_tasks > 0:
            left["tasks"] = extra_tasks
        return left


def kill_when_ready(command: list[str], ready: Path, timeout: float = 180.0) -> None:
    """Runs ``command``; once it creates the file ``ready``, kills it with SIGKILL.

    Fails if the process ends on its own first or never gets ready; the file is removed.
    """
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            assert child.poll() is None, child.stderr.read()[-3000:] if child.stderr else ""
            assert time.monotonic() < deadline, "the child never got ready to be killed"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()
    ready.unlink()


_THIS_MODULE = sys.modules[__name__]  # "conftest" names another module once others load


@pytest.fixture(scope="session")
def rel() -> Any:
    """This module: the helpers above, for tests (conftest modules are not importable)."""
    return _THIS_MODULE
