"""One Arrow column as an array: ``pyarrow.Array``, ``ChunkedArray``, a Polars Series.

Before: a ``ChunkedArray`` or a Polars Series given as ``x`` went to the table adapter (it
exports ``__arrow_c_stream__``) and was refused with a misleading error about the types of
its columns, though both were taken as ``y`` and a ``pyarrow.Array`` as ``x``. And a null in
any of them, as ``x`` or ``y``, became NaN through NumPy (integers floats), silently.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import keras
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.adapters import ArrowTableAdapter
from fitpipe.errors import FitpipeError, FitpipeValueError
from fitpipe.testing import assert_matches_keras

X = np.linspace(0, 1, 8, dtype="float32")
Y = (X * 2).astype("float32")

COLUMNS = {
    "Array": lambda v: pa.array(v),
    "ChunkedArray": lambda v: pa.chunked_array([v[:3], v[3:]]),
    "polars.Series": lambda v: pl.Series("s", v),
}


def _dense() -> keras.Model:
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


@pytest.mark.parametrize("kind", COLUMNS)
def test_a_column_as_x_trains_and_predicts_as_keras_on_its_values(kind: str) -> None:
    # Keras 3.15 reads a pyarrow array as `x` only (no `.shape` for its checks of `y`).
    column, y = COLUMNS[kind](X), COLUMNS[kind](Y)
    assert_matches_keras(_dense, column, y, keras_x=X, keras_y=Y, batch_size=3, epochs=2)


@pytest.mark.parametrize("kind", ["ChunkedArray", "polars.Series"])
def test_one_column_exporters_are_left_to_the_array_adapter(kind: str) -> None:
    assert not ArrowTableAdapter().can_adapt(COLUMNS[kind](X))
    assert fitpipe.adapters.registry.find(COLUMNS[kind](X), "fit").name == "numpy"


class _Relation:
    """A DuckDB relation's surface: a stream whose export would run its query."""

    shape = (3, 2)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        raise AssertionError("the stream was read to choose an adapter")


def test_choosing_an_adapter_reads_no_stream() -> None:
    assert ArrowTableAdapter().can_adapt(_Relation())


NULLS: dict[str, Any] = {
    "Array of ints": pa.array([1, 2, None, 4]),
    "ChunkedArray of floats": pa.chunked_array([[1.0, 2.0], [None, 4.0]]),
    "polars.Series": pl.Series("s", [1, 2, None, 4]),
    "dictionary with a null value": pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 0, 1]), pa.array([1.0, None])
    ),
}


@pytest.mark.parametrize("role", ["x", "y"])
@pytest.mark.parametrize("kind", NULLS)
def test_a_null_in_a_column_is_refused_naming_its_row(kind: str, role: str) -> None:
    trainer = fitpipe.Trainer(_dense())
    trainer.compile(optimizer="sgd", loss="mse")
    column, array = NULLS[kind], np.arange(4, dtype="float32")
    x, y = (column, array) if role == "x" else (array, column)
    row = 1 if kind.startswith("dictionary") else 2
    with pytest.raises(
        FitpipeValueError, match=f"cannot read `{role}` as an array: it holds a null at row {row}"
    ):
        trainer.fit(x, y, verbose=0)


def test_a_null_in_a_table_in_a_dict_is_refused_naming_its_column() -> None:
    inputs = keras.Input((2,), name="t")
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    table = pa.table({"a": [1.0, 2.0, 3.0], "b": [1.0, None, 3.0]})
    with pytest.raises(
        FitpipeValueError, match=r"`x\['t'\]`.*its column 'b' holds a null at row 1"
    ):
        trainer.fit({"t": table}, np.zeros(3), verbose=0)


@settings(max_examples=20, deadline=None)
@given(
    rows=st.integers(1, 6),
    width=st.integers(1, 3),
    depth=st.integers(1, 2),
    at=st.integers(0, 100),
    offset=st.integers(0, 2),
    polars=st.booleans(),
)
def test_a_null_inside_a_row_of_fixed_size_lists_is_refused_naming_its_row(
    rows: int, width: int, depth: int, at: int, offset: int, polars: bool
) -> None:
    # A Polars `Array` column (fixed-size lists, at any depth) whose null is inside a row,
    # not the row itself: NumPy made it NaN and the batch trained on it
    per_row = width**depth
    values: list[Any] = [float(v) for v in range((rows + offset) * per_row)]
    hole = offset * per_row + at % (rows * per_row)
    values[hole] = None
    array: pa.Array = pa.array(values, pa.float64())
    for _ in range(depth):
        array = pa.FixedSizeListArray.from_arrays(array, width)
    array = array.slice(offset)  # a view past its first rows: the row counts from the view
    x = pl.from_arrow(array) if polars else pa.chunked_array([array])
    row = (hole - offset * per_row) // per_row
    with pytest.raises(FitpipeValueError, match=rf"holds a null at row {row}\b"):
        fitpipe.adapt(x, np.zeros(rows, "float32"))


FILLED: dict[str, Any] = {
    "string": pa.array(["a", None, "b"]),
    "large_string": pa.array(["a", None, "b"], pa.large_string()),
    "binary": pa.array([b"a", None, b"b"]),
    "dictionary of strings": pa.array(["a", None, "a"]).dictionary_encode(),
    "bool": pa.array([True, None, False]),
    "int": pa.array([1, None, 3]),
    "float": pa.chunked_array([[1.0], [None, 3.0]]),
    "polars strings": pl.Series("s", ["a", None, "b"]),
    "polars bools": pl.Series("s", [True, None, False]),
}


def _fill_hint(text: str, polars: bool) -> str:
    """The value the refusal's fix fills the nulls with (Polars' form for a Series)."""
    pattern = r"Polars' `\.fill_null\((.+?)\)`" if polars else r"fill_null\(column, (.+?)\)`"
    found = re.search(pattern, text)
    assert found is not None, text
    return found.group(1)


@pytest.mark.parametrize("role", ["x", "y"])
@pytest.mark.parametrize("kind", FILLED)
def test_the_fix_of_a_null_fills_it_with_a_value_of_the_columns_type(kind: str, role: str) -> None:
    # Before, every null was to be filled with `0`, which Arrow and Polars refuse for
    # strings and bytes (and Polars makes booleans integers with).
    column, rows = FILLED[kind], np.zeros(3, "float32")
    x, y = (column, rows) if role == "x" else (rows, column)
    with pytest.raises(FitpipeValueError, match="holds a null at row 1") as info:
        fitpipe.adapt(x, y)
    polars = kind.startswith("polars")
    value = ast.literal_eval(_fill_hint(str(info.value), polars))
    filled = column.fill_null(value) if polars else pc.fill_null(column, value)
    assert (filled.null_count() if polars else filled.null_count) == 0
    assert (filled.dtype == column.dtype) if polars else (filled.type == column.type)


def _array_exporter(data: Any) -> Any:
    class ArrayOnly:  # (a class attribute: adapters ask the type)
        def __arrow_c_array__(self, requested_schema: Any = None) -> Any:
            return data.__arrow_c_array__(requested_schema)

    return ArrayOnly()


def _stream_exporter(data: Any) -> Any:
    class StreamOnly:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return data.__arrow_c_stream__(requested_schema)

    return StreamOnly()


def _linear() -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.set_weights([np.asarray([[1.0], [10.0]], "float32")])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    return trainer


@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "no-schema"])
def test_a_record_batch_exported_as_a_c_array_alone_is_read_as_one(with_schema: bool) -> None:
    batch = pa.record_batch({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    kwargs: dict[str, Any] = {"schema": fitpipe.Schema(["a", "b"])} if with_schema else {}
    got = _linear().predict(_array_exporter(batch), verbose=0, **kwargs)
    np.testing.assert_allclose(got[:, 0], [41.0, 52.0, 63.0])


@pytest.mark.parametrize(
    ("exporter", "protocol"),
    [(_array_exporter, "__arrow_c_array__"), (_stream_exporter, "__arrow_c_stream__")],
    ids=["c-array", "c-stream"],
)
@pytest.mark.parametrize(
    "column", [pa.array([1.0, 2.0]), pa.chunked_array([[1, 2]]), pa.array(["a", "b"])]
)
def test_one_exported_column_is_refused_as_one_array_not_a_table(
    exporter: Any, protocol: str, column: Any
) -> None:
    if protocol == "__arrow_c_array__" and isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if protocol == "__arrow_c_stream__" and isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    with pytest.raises(FitpipeError, match=rf"its `{protocol}` is one array \(of Arrow type"):
        _linear().fit(exporter(column), np.zeros(2, "float32"), verbose=0)


@pytest.mark.parametrize("form", ["polars", "arrow", "parquet"])
@pytest.mark.parametrize("fill", [None, 0.0], ids=["no-fill", "fill"])
def test_a_used_column_of_arrow_type_null_says_to_cast_it(form: str, fill: Any, tmp_path) -> None:
    table = pa.table({"f": pa.nulls(4), "g": [1.0, 2.0, 3.0, 4.0], "label": [0.0, 1.0, 0.0, 1.0]})
    data: Any = {"polars": pl.from_arrow(table), "arrow": table}.get(form)
    if data is None:
        data = str(tmp_path / "t.parquet")
        pq.write_table(table, data)
    schema = fitpipe.Schema(["f", "g"], "label", fill={"f": fill} if fill is not None else {})
    with pytest.raises(FitpipeError, match=r"column 'f' .*it is of Arrow type null .*Cast it"):
        _linear().fit(data, schema=schema, verbose=0)
