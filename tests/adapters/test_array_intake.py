"""Arrays taken as they are, or refused with a fix that works on the input given.

* long doubles (``np.longdouble``) are refused in words, the fix a cast to float64;
* a structured array's fix stacks its fields; an object array of row arrays' fix stacks
  its rows; each fix is run here on the input refused;
* a DataFrame or Series whose columns all hold numbers is one array of their common dtype,
  even where ``to_numpy()`` gives objects (nullable, Arrow-backed, booleans beside floats,
  categoricals of numbers); a missing value there is refused with a fill that works;
* a masked array with masked values is refused (its fixes run here); one with none is its
  data. For ``x``, ``y``, ``sample_weight`` and ``validation_data`` alike.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.recfunctions import structured_to_unstructured

import fitpipe
from fitpipe.errors import FitpipeTypeError, FitpipeValueError
from fitpipe.testing import epoch_batches

ROWS = 6


def _fix(error: BaseException) -> str:
    """The code of the error's first suggested fix (its first backquoted text after `e.g.`)."""
    text = str(error)
    return text.split("e.g. `", 1)[1].split("`", 1)[0]


def _run_fix(error: BaseException, **names: Any) -> Any:
    return eval(_fix(error), {"np": np, "pd": pd, **names})


@settings(max_examples=8, deadline=None)
@given(role=st.sampled_from(["x", "y", "sample_weight"]), cols=st.integers(1, 3))
def test_long_doubles_are_refused_with_a_float64_cast(role: str, cols: int) -> None:
    parts: dict[str, Any] = {
        "x": np.ones((ROWS, cols), "float32"),
        "y": np.zeros(ROWS, "float32"),
        "sample_weight": np.ones(ROWS, "float32"),
    }
    parts[role] = parts[role].astype(np.longdouble)
    with pytest.raises(
        FitpipeTypeError, match=rf"cannot use `{role}` of dtype float128.*`{role}.astype"
    ) as info:
        fitpipe.adapt(**parts)
    parts[role] = _run_fix(info.value, **{role: parts[role]})
    assert parts[role].dtype == np.float64
    assert len(epoch_batches(fitpipe.adapt(**parts))[0]) == 3


def test_predict_refuses_long_doubles_in_words() -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(FitpipeTypeError, match=r"`predict` cannot use `x` of dtype float128"):
        trainer.predict(np.ones((ROWS, 2), np.longdouble), verbose=0)


@settings(max_examples=8, deadline=None)
@given(
    fields=st.lists(st.sampled_from(["f4", "f8", "i4", "i8"]), min_size=1, max_size=4),
    record=st.booleans(),
)
def test_structured_arrays_suggest_stacking_their_fields(fields: list[str], record: bool) -> None:
    dtype = [(f"f{i}", kind) for i, kind in enumerate(fields)]
    x = np.zeros(ROWS, dtype=dtype)
    x = x.view(np.recarray) if record else x
    with pytest.raises(FitpipeTypeError, match=r"of dtype .*Pass its fields as one array") as info:
        fitpipe.adapt(x, np.zeros(ROWS))
    assert "datetime" not in str(info.value)
    fixed = _run_fix(info.value, x=x)
    assert fixed.shape == (ROWS, len(fields))
    assert fitpipe.adapt(fixed, np.zeros(ROWS)).adapter == "numpy"


@settings(max_examples=8, deadline=None)
@given(width=st.integers(1, 4), rows_kind=st.sampled_from(["ndarray", "list"]))
def test_object_arrays_of_rows_suggest_a_stack_that_works(width: int, rows_kind: str) -> None:
    x = np.empty(ROWS, dtype=object)
    for i in range(ROWS):
        row = np.full(width, float(i), "float32")
        x[i] = row if rows_kind == "ndarray" else row.tolist()
    with pytest.raises(FitpipeTypeError, match=r"Stack its rows into one array") as info:
        fitpipe.adapt(x, np.zeros(ROWS))
    fixed = _run_fix(info.value, x=x)
    assert fitpipe.adapt(fixed, np.zeros(ROWS)).element_spec[0].shape.as_list() == [None, width]


_NUMERIC_COLUMNS = {
    "Int64": lambda v: pd.array(v.astype("int64"), dtype="Int64"),
    "Float64": lambda v: pd.array(v, dtype="Float64"),
    "boolean": lambda v: pd.array(v > 2, dtype="boolean"),
    "int64[pyarrow]": lambda v: pd.array(v.astype("int64"), dtype="int64[pyarrow]"),
    "float32[pyarrow]": lambda v: pd.array(v.astype("float32"), dtype="float32[pyarrow]"),
    "bool": lambda v: v > 2,
    "float64": lambda v: v,
    "int32": lambda v: v.astype("int32"),
    "category of floats": lambda v: pd.Categorical(v * 10.0),
    "category of ints": lambda v: pd.Categorical(v.astype("int64")),
}


def _numbers(dtypes: list[str]) -> pd.DataFrame:
    values = np.arange(ROWS, dtype="float64")
    return pd.DataFrame({f"c{i}": _NUMERIC_COLUMNS[d](values) for i, d in enumerate(dtypes)})


@settings(max_examples=20, deadline=None)
@given(
    dtypes=st.lists(st.sampled_from(sorted(_NUMERIC_COLUMNS)), min_size=1, max_size=4),
    series=st.booleans(),
)
def test_frames_of_numbers_are_one_array_of_their_values(dtypes: list[str], series: bool) -> None:
    frame = _numbers(dtypes)
    x: Any = frame.iloc[:, 0] if series else frame
    want = np.asarray(x.astype("float64").to_numpy(), "float64")
    (batch,) = epoch_batches(fitpipe.adapt(x, np.zeros(ROWS), batch_size=ROWS))
    got = np.asarray(batch[0], "float64")
    np.testing.assert_allclose(got.reshape(want.shape), want)


@settings(max_examples=12, deadline=None)
@given(
    dtype=st.sampled_from(
        ["Int64", "Float64", "boolean", "int64[pyarrow]", "float32[pyarrow]", "category of floats"]
    ),
    at=st.integers(0, ROWS - 1),
    series=st.booleans(),
)
def test_missing_values_in_frames_of_numbers_are_refused_with_a_fill_that_works(
    dtype: str, at: int, series: bool
) -> None:
    frame = _numbers([dtype, "float64"])
    frame.iloc[at, 0] = None
    x: Any = frame["c0"] if series else frame
    where = "it holds" if series else "its column 'c0' holds"
    with pytest.raises(
        FitpipeValueError, match=rf"cannot read `x` as one array of numbers: {where} missing"
    ) as info:
        fitpipe.adapt(x, np.zeros(ROWS))
    fixed = _run_fix(info.value, x=x)
    assert len(epoch_batches(fitpipe.adapt(fixed, np.zeros(ROWS)))[0]) == 2


def _masked(rows: int, masked: list[int], ndim: int | str) -> np.ma.MaskedArray:
    data = np.arange(rows * 2, dtype="float32").reshape(rows, 2)[:, : 1 if ndim == 1 else 2]
    data = data[:, 0] if ndim == 1 else data
    if ndim == "record":  # a record array's mask has a flag per field
        records = np.rec.fromarrays([data[:, 0], data[:, 1]], names="a,b")
        value = np.ma.masked_array(records)
        for row in masked:
            value.mask[row] = (True, False)
        return value
    mask = np.zeros(data.shape, bool)
    mask[masked] = True
    return np.ma.masked_array(data, mask=mask)


def _masked_count(value: np.ma.MaskedArray) -> int:
    flags = np.ma.getmaskarray(value)
    return int((structured_to_unstructured(flags) if flags.dtype.names else flags).sum())


@settings(max_examples=20, deadline=None)
@given(
    role=st.sampled_from(["x", "y", "sample_weight", "validation x", "validation y"]),
    data=st.data(),
    ndim=st.sampled_from([1, 2, "record"]),
)
def test_masked_values_are_refused_in_every_argument(role: str, data: Any, ndim: int | str) -> None:
    masked = data.draw(st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=3))
    value = _masked(ROWS, masked, ndim)
    path = role.removeprefix("validation ")
    count = _masked_count(value)
    parts: dict[str, Any] = {"x": np.ones((ROWS, 1)), "y": np.zeros(ROWS)}
    with pytest.raises(
        FitpipeValueError,
        match=rf"cannot use `{path}`, a masked array with {count} masked value",
    ) as info:
        if role.startswith("validation"):
            trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
            trainer.compile(optimizer="sgd", loss="mse")
            validation = dict(parts, **{path: value})
            validation_data = (validation["x"], validation["y"])
            trainer.fit(**parts, validation_data=validation_data, verbose=0)
        else:
            fitpipe.adapt(**dict(parts, **{role: value}))
    assert np.ma.is_masked(_run_fix(info.value, **{path: value})) is False
    keep_code = str(info.value).split("e.g. `")[2].split("`", 1)[0]
    names = {"np": np, path: value, "structured_to_unstructured": structured_to_unstructured}
    exec(keep_code, names)
    assert _masked_count(value[names["keep"]]) == 0


@settings(max_examples=8, deadline=None)
@given(role=st.sampled_from(["x", "y", "sample_weight"]), empty_mask=st.booleans())
def test_masked_arrays_without_masked_values_are_their_data(role: str, empty_mask: bool) -> None:
    parts: dict[str, Any] = {
        "x": np.arange(ROWS * 2, dtype="float32").reshape(ROWS, 2),
        "y": np.arange(ROWS, dtype="float32"),
        "sample_weight": np.linspace(0.5, 1, ROWS).astype("float32"),
    }
    plain = epoch_batches(fitpipe.adapt(**parts, batch_size=ROWS))
    mask = np.zeros(parts[role].shape, bool) if empty_mask else np.ma.nomask
    parts[role] = np.ma.masked_array(parts[role], mask=mask)
    got = epoch_batches(fitpipe.adapt(**parts, batch_size=ROWS))
    for want, found in zip(plain[0], got[0], strict=True):
        np.testing.assert_array_equal(np.asarray(found), np.asarray(want))
