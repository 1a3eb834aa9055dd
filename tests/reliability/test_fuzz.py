"""Fuzzing ``adapt`` and ``fit`` with random nested structures of arrays, scalars and None.

Property: every call either succeeds or raises a ``FitpipeError`` that is also a
``ValueError`` or ``TypeError``; no other exception type escapes and no call hangs.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import signal
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeError, FitpipeWarning

EXAMPLE_SECONDS = 30  # per example: a hang fails the example
HARD_SECONDS = 120  # backstop for hangs in native code the alarm cannot interrupt

DTYPES = ["float32", "float16", "float64", "int64", "int32", "uint8", "bool", "object", "str"]


class Hang(Exception):
    """Raised by the alarm when one call runs longer than ``EXAMPLE_SECONDS``."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"call did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(HARD_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    rows = draw(st.sampled_from([0, 1, 3, 3]))
    tail = draw(st.lists(st.sampled_from([1, 2, 4]), max_size=2))
    shape = (rows, *tail)
    if dtype == "object":
        value = draw(st.sampled_from([None, 1, 2.5, "a", b"b", (1,)]))
        array = np.empty(shape, dtype=object)
        array.fill(value)
        return array
    if dtype == "str":
        return np.full(shape, draw(st.sampled_from(["", "a", "1.5"])))
    value = draw(st.sampled_from([0, 1, 7]))
    return np.full(shape, value).astype(dtype)


leaves = st.one_of(
    arrays(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)


def nested(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return leaves
    child = nested(depth - 1)
    return st.one_of(
        leaves,
        st.lists(child, max_size=3),
        st.lists(child, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "x"]), child, max_size=3),
    )


structures = nested(3)
# Inputs the tiny model accepts, so that fuzzed targets reach the training step too.
model_inputs = st.sampled_from(["float32", "float16", "int64", "bool"]).map(
    lambda dtype: np.ones((3, 4), dtype=dtype)
)


@functools.lru_cache(maxsize=1)
def tiny_trainer() -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=False)
    return trainer


def assert_only_fitpipe_errors(call: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitpipeWarning)  # warnings are allowed, not errors
        warnings.simplefilter("ignore", UserWarning)
        try:
            with time_limit(EXAMPLE_SECONDS):
                call()
        except FitpipeError as err:
            assert isinstance(err, (ValueError, TypeError)), type(err).__mro__
            assert str(err).startswith("`"), str(err)


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


@FUZZ
@given(x=structures, y=st.one_of(st.none(), structures))
@example(x=np.array([[1.5, 2.0]], dtype="float16"), y=None)
@example(x={"a": np.zeros((0, 2)), "b": [np.ones((1,), dtype=bool)]}, y="s")
@example(x=[np.full((3, 2), "a"), None], y=(np.empty((3,), dtype=object),))
def test_adapt_raises_only_fitpipe_errors(x: Any, y: Any) -> None:
    assert_only_fitpipe_errors(lambda: fitpipe.adapt(x, y))


@FUZZ
@given(x=st.one_of(structures, model_inputs), y=st.one_of(st.none(), structures))
@example(x=np.ones((3, 4), "float32"), y=np.ones((3, 1), "int64"))
@example(x=np.ones((3, 4), "bool"), y=np.ones((3,), "float16"))
@example(x=[np.ones((3, 4), "float32")], y={"a": np.ones((2, 1))})
def test_fit_raises_only_fitpipe_errors(x: Any, y: Any) -> None:
    trainer = tiny_trainer()
    assert_only_fitpipe_errors(lambda: trainer.fit(x, y, epochs=1, verbose=0))


def test_fuzz_alarm_catches_a_hang() -> None:
    # The per-example limit itself must work, or "never a hang" is untested.
    import time

    with pytest.raises(Hang), time_limit(1):
        time.sleep(5)
