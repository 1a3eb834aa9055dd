"""pandas objects with ``schema=``: what the schema reads, and what it refuses beside it.

A DataFrame read by a schema takes an Arrow table's arguments (its targets and weights are
named in the schema: a ``y`` or ``sample_weight`` beside it is refused, never dropped); a
Series is one array, which no schema selects columns of. Its columns convert as Arrow takes
them: big-endian columns byte-swapped, unconvertible ones named with a cast that works.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import SchemaError, UnsupportedArgumentError
from fitpipe.testing import epoch_batches

ROWS = 8


def _frame() -> pd.DataFrame:
    x = np.arange(ROWS * 2, dtype="float32").reshape(ROWS, 2) / 10
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": np.zeros(ROWS, "float32")})


_SCHEMAS = {
    "features only": fitpipe.Schema(features=["a", "b"]),
    "with targets": fitpipe.Schema(features=["a", "b"], targets="label"),
    "as a mapping": {"features": ["a", "b"], "targets": "label"},
}


@settings(max_examples=12, deadline=None)
@given(
    schema=st.sampled_from(sorted(_SCHEMAS)),
    passed=st.sampled_from(["y", "sample_weight", "both"]),
    table=st.booleans(),
)
def test_y_or_weights_beside_a_schema_are_refused_as_for_an_arrow_table(
    schema: str, passed: str, table: bool
) -> None:
    frame = _frame()
    x: Any = pa.Table.from_pandas(frame, preserve_index=False) if table else frame
    kwargs: dict[str, Any] = {}
    if passed in ("y", "both"):
        kwargs["y"] = np.full(ROWS, 100.0, "float32")
    if passed in ("sample_weight", "both"):
        kwargs["sample_weight"] = np.zeros(ROWS, "float32")
    first = "y" if "y" in kwargs else "sample_weight"
    role = "targets" if first == "y" else "sample_weight"
    with pytest.raises(
        UnsupportedArgumentError,
        match=rf"does not support `{first}` when `x` is .*columnar data names its target and "
        rf"weight columns in the schema. Name the column in the schema, e.g. "
        rf"`fitpipe.Schema\(\.\.\., {role}=\.\.\.\)`",
    ):
        fitpipe.adapt(x, schema=_SCHEMAS[schema], **kwargs)


def test_a_frame_without_schema_still_takes_y_and_weights() -> None:
    frame = _frame()[["a", "b"]]
    (batch,) = epoch_batches(fitpipe.adapt(frame, np.ones(ROWS), np.ones(ROWS), batch_size=ROWS))
    assert len(batch) == 3


def _trainer() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def test_fit_and_its_validation_frame_refuse_y_beside_a_schema() -> None:
    frame, schema = _frame(), fitpipe.Schema(features=["a", "b"], targets="label")
    with pytest.raises(UnsupportedArgumentError, match="does not support `y` when `x` is a pandas"):
        _trainer().fit(frame, np.ones(ROWS), schema=schema, verbose=0)
    with pytest.raises(UnsupportedArgumentError, match="does not support `y` when `x` is a pandas"):
        _trainer().fit(
            frame, schema=schema, validation_data=(frame, np.ones(ROWS)), verbose=0, epochs=1
        )


@settings(max_examples=8, deadline=None)
@given(
    dtype=st.sampled_from(["float32", "float64", "int64"]),
    schema=st.sampled_from(
        [
            fitpipe.Schema(features="zzz", targets="nothere"),
            fitpipe.Schema(features="a"),
            {"features": ["a"]},
        ]
    ),
    with_y=st.booleans(),
)
def test_a_series_with_a_schema_is_refused_not_read_as_an_array(
    dtype: str, schema: Any, with_y: bool
) -> None:
    series = pd.Series(np.arange(ROWS).astype(dtype), name="a")
    y = np.zeros(ROWS) if with_y else None
    with pytest.raises(
        UnsupportedArgumentError,
        match=r"does not support `schema` when `x` is a pandas DataFrame or Series.*"
        r"a pandas DataFrame \(a Series: `x.to_frame\(\)`\)",
    ):
        fitpipe.adapt(series, y, schema=schema)
    fixed = fitpipe.adapt(series.to_frame(), schema=schema) if "zzz" not in str(schema) else None
    assert fixed is None or fixed.adapter == "pandas"


@settings(max_examples=10, deadline=None)
@given(
    dtype=st.sampled_from([">f8", ">f4", ">i4", ">i8", ">u2", ">i2"]),
    values=st.lists(st.integers(0, 1000), min_size=3, max_size=12),
)
def test_big_endian_columns_read_by_schema_as_without_one(dtype: str, values: list[int]) -> None:
    column = np.asarray(values).astype(dtype)
    frame = pd.DataFrame({"a": column, "y": np.arange(len(values), dtype=">f8")})
    schema = fitpipe.Schema(features="a", targets="y")
    (by_schema,) = epoch_batches(fitpipe.adapt(frame, schema=schema, batch_size=len(values)))
    (plain,) = epoch_batches(fitpipe.adapt(frame[["a"]], frame["y"], batch_size=len(values)))
    np.testing.assert_allclose(np.ravel(by_schema[0]), np.ravel(plain[0]), rtol=1e-6)
    np.testing.assert_allclose(np.ravel(by_schema[1]), np.ravel(plain[1]), rtol=1e-6)


@settings(max_examples=10, deadline=None)
@given(
    big=st.one_of(st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63) - 1)),
    name=st.sampled_from(["h", "user id", "x0"]),
    at=st.integers(0, 3),
)
def test_object_ints_beyond_int64_are_a_schema_error_naming_the_column(
    big: int, name: str, at: int
) -> None:
    column = np.array([1, 2, 3, 4], dtype=object)
    column[at] = big
    frame = pd.DataFrame({name: column, "y": np.zeros(4, "float32")})
    schema = fitpipe.Schema(features=name, targets="y")
    with pytest.raises(SchemaError, match=rf"column '{name}' to Arrow") as info:
        fitpipe.adapt(frame, schema=schema)
    fix = f"df[{name!r}].astype('float32')"
    assert f"`{fix}`" in str(info.value)
    df = frame  # the name the fix uses
    df[name] = eval(fix)  # the suggested fix works
    assert fitpipe.adapt(df, schema=schema).adapter == "pandas"


@pytest.mark.parametrize("output", [False, True], ids=["returned", "to-parquet"])
def test_predict_refuses_a_schema_beside_a_series(output: bool, tmp_path: Any) -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    series = pd.Series(np.arange(ROWS, dtype="float32"), name="a")
    kwargs = {"output": str(tmp_path / "p.parquet")} if output else {}
    with pytest.raises(UnsupportedArgumentError, match="`predict` does not support `schema`"):
        trainer.predict(series, schema=fitpipe.Schema(features="zzz"), verbose=0, **kwargs)
    assert not (tmp_path / "p.parquet").exists()
