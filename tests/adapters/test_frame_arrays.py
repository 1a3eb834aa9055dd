"""pandas objects read as one array: the fixes offered where a frame is not one array.

The ``*_on_batch`` methods take no schema: their refusals of a frame never advise one (as
the Arrow path's do not), while ``fit`` and its kin still offer ``schema=``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeError

ON_BATCH = ["train_on_batch", "test_on_batch", "predict_on_batch"]

#: Columns that keep a frame from being one array of numbers, each with its NumPy twin.
BAD_COLUMNS: dict[str, Any] = {
    "text beside numbers": lambda n: [f"s{i}" for i in range(n)],
    "dates beside numbers": lambda n: pd.date_range("2024-01-01", periods=n),
    "nullable integers with NA": lambda n: pd.array([None, *range(1, n)], dtype="Int64"),
    "nullable booleans with NA": lambda n: pd.array([None] + [True] * (n - 1), dtype="boolean"),
    "Arrow-backed floats with NA": lambda n: pd.array(
        [None] + [0.5] * (n - 1), dtype="float64[pyarrow]"
    ),
    "objects of mixed types": lambda n: pd.Series([1.0, "x", None, object()] * n)[:n],
}


@st.composite
def frames(draw: st.DrawFn, bad: str) -> pd.DataFrame:
    """A frame of 1-3 float columns and the column ``bad`` of :data:`BAD_COLUMNS` among them."""
    rows, width = draw(st.integers(4, 8)), draw(st.integers(1, 3))
    columns: dict[str, Any] = {f"f{i}": np.linspace(0, 1, rows) for i in range(width)}
    frame = pd.DataFrame(columns)
    frame.insert(draw(st.integers(0, width)), "bad", BAD_COLUMNS[bad](rows))
    if bad == "objects of mixed types":  # every column objects: no numeric one beside it
        frame = frame.astype(object)
    return frame


def _trainer(width: int) -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((width,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def _args(call: str, frame: pd.DataFrame, where: str) -> tuple[Any, ...]:
    rows = len(frame)
    if call == "predict_on_batch":
        return (frame,)
    if where == "y":  # the frame as the targets
        return (np.zeros((rows, 2), "float32"), frame)
    return (frame, np.zeros(rows, "float32"))


@pytest.mark.parametrize("bad", sorted(BAD_COLUMNS))
@pytest.mark.parametrize("call", ON_BATCH)
@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_on_batch_refusals_of_a_frame_say_they_take_no_schema(
    bad: str, call: str, data: st.DataObject
) -> None:
    frame = data.draw(frames(bad))
    with pytest.raises(FitpipeError, match=f"^`{call}` .*`{call}` takes no schema") as info:
        getattr(_trainer(frame.shape[1]), call)(*_args(call, frame, "x"))
    assert "schema=" not in str(info.value)


@pytest.mark.parametrize("bad", sorted(BAD_COLUMNS))
@pytest.mark.parametrize("call", ON_BATCH[:2])
def test_on_batch_refusals_of_frame_targets_never_advise_a_schema(bad: str, call: str) -> None:
    frame = pd.DataFrame({"f0": np.linspace(0, 1, 4), "bad": BAD_COLUMNS[bad](4)})
    if bad == "objects of mixed types":
        frame = frame.astype(object)
    with pytest.raises(FitpipeError, match=f"^`{call}` cannot (use|read) `y`") as info:
        getattr(_trainer(2), call)(*_args(call, frame, "y"))
    assert "schema=" not in str(info.value)


@pytest.mark.parametrize("bad", sorted(BAD_COLUMNS))
@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_fit_and_evaluate_still_offer_a_schema(bad: str, call: str) -> None:
    frame = pd.DataFrame({"f0": np.linspace(0, 1, 4), "bad": BAD_COLUMNS[bad](4)})
    if bad == "objects of mixed types":
        frame = frame.astype(object)
    with pytest.raises(FitpipeError, match=f"^`{call}` .*pass (a DataFrame with )?`schema=`"):
        getattr(_trainer(2), call)(frame, np.zeros(4, "float32"), verbose=0)
