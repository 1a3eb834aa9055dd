"""Arrow's other layouts of the same values: views, run-end encoding, dictionaries of views.

Polars hands its strings over as ``string_view`` (its categoricals as dictionaries of
them), and a Parquet file written from such a table keeps the type. Arrow's row kernels
(take, filter, sort) and dictionary decoding have no cases for views in pyarrow 26, and
fitpipe's type rules named only the classic layouts, so such columns were refused as
features ("cannot convert column 'city' of type string_view") or failed inside Arrow. The
property: a table in any of these layouts gives fitpipe the batches of the same table in the
classic layout, in memory and through a Parquet file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest_arrow import batches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import classic, classic_type, key_array, key_hashes

KINDS = ["float32", "int64", "string", "binary", "list", "fixed", "dictionary"]


@st.composite
def columns(draw: Any) -> tuple[str, pa.Array]:
    """A column of one of :data:`KINDS` in the classic layout, no nulls."""
    kind = draw(st.sampled_from(KINDS))
    rows = draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    text = [draw(st.text(max_size=4)) for _ in range(rows)]
    values: dict[str, Any] = {
        "float32": lambda: pa.array(rng.choice([0.5, 1.5, -2.0], rows).astype("float32")),
        "int64": lambda: pa.array(rng.integers(0, 3, rows)),
        "string": lambda: pa.array(text, pa.string()),
        "binary": lambda: pa.array([t.encode() for t in text], pa.binary()),
        "list": lambda: pa.array(
            [list(range(int(n))) for n in rng.integers(0, 3, rows)], pa.list_(pa.int64())
        ),
        "fixed": lambda: pa.array(
            rng.random((rows, 2)).astype("float32").tolist(), pa.list_(pa.float32(), 2)
        ),
        "dictionary": lambda: pa.array(text, pa.string()).dictionary_encode(),
    }
    return kind, values[kind]()


def _other_layout(array: pa.Array, run_ends: bool) -> pa.Array:
    """``array``'s values in another layout of Arrow (views; runs when ``run_ends``)."""
    kind = array.type
    if pa.types.is_string(kind):
        return array.cast(pa.string_view())
    if pa.types.is_binary(kind):
        return array.cast(pa.binary_view())
    if pa.types.is_dictionary(kind):
        views = array.dictionary.cast(pa.string_view())
        return pa.DictionaryArray.from_arrays(array.indices, views)
    if pa.types.is_list(kind):
        offsets = array.offsets.to_numpy()
        sizes = np.diff(offsets)
        return pa.ListViewArray.from_arrays(offsets[:-1], sizes, array.flatten())
    if run_ends and not pa.types.is_fixed_size_list(kind):
        return pc.run_end_encode(array)
    return array


def _table(column: pa.Array, rows: int) -> pa.Table:
    return pa.table({"c": column, "y": pa.array(np.arange(rows, dtype="float32"))})


def _same_batches(expected: list[Any], got: list[Any]) -> None:
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            if hasattr(b, "to_list"):  # ragged
                assert a.to_list() == b.to_list()
            else:
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)


@given(column=columns(), run_ends=st.booleans(), batch=st.integers(1, 8))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_other_layouts_give_the_batches_of_the_classic_one(
    column: tuple[str, pa.Array], run_ends: bool, batch: int, tmp_path: Path
) -> None:
    kind, classic_column = column
    other = _other_layout(classic_column, run_ends)
    rows = len(classic_column)
    schema = fitpipe.Schema("c", "y")
    expected = batches(fitpipe.adapt(_table(classic_column, rows), schema=schema, batch_size=batch))
    got = batches(fitpipe.adapt(_table(other, rows), schema=schema, batch_size=batch))
    _same_batches(expected, got)
    path = tmp_path / f"{kind}.parquet"
    try:
        pq.write_table(_table(other, rows), path)
    except pa.ArrowNotImplementedError:
        return  # pyarrow writes no run-end encoded columns, nor dictionaries of views
    stored = pq.read_schema(path).field("c").type
    assert classic_type(stored) == classic_type(other.type)  # the layout is kept
    _same_batches(expected, batches(fitpipe.adapt(str(path), schema=schema, batch_size=batch)))


@pytest.mark.parametrize("layout", [pa.string_view(), pa.binary_view()])
def test_keys_of_views_hash_as_the_classic_keys(layout: pa.DataType) -> None:
    # `split_by` keys: the same rows go to each side whatever the keys' layout.
    keys = pa.array(["a", "bb", "", "ccc", "a"])
    if layout == pa.binary_view():
        keys = keys.cast(pa.binary())
    expected = key_hashes(key_array(keys, "column 'k'"))
    got = key_hashes(key_array(keys.cast(layout), "column 'k'"))
    np.testing.assert_array_equal(got, expected)


def test_a_polars_frame_with_strings_and_categoricals_trains() -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"city": ["paris", "rome", "oslo", "rome"], "y": [1.0, 2.0, 3.0, 4.0]})
    categorical = frame.with_columns(pl.col("city").cast(pl.Categorical))
    enum = frame.with_columns(pl.col("city").cast(pl.Enum(["rome", "paris", "oslo"])))
    schema = fitpipe.Schema(features="city", targets="y")
    expected = batches(fitpipe.adapt(frame.to_arrow(), schema=schema, batch_size=3))
    for given_frame in (frame, categorical, enum):
        got = batches(fitpipe.adapt(given_frame, schema=schema, batch_size=3))
        _same_batches(expected, got)


def test_classic_keeps_a_column_already_classic() -> None:
    column = pa.array([[1.0, 2.0]], pa.list_(pa.field("element", pa.float32()), 2))
    assert classic(column) is column  # no copy, the list's field name kept


@pytest.mark.parametrize("chunked", [False, True], ids=["array", "chunked"])
@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
@pytest.mark.parametrize(
    "values",
    [
        pa.array(["lo", "hi", None], pa.string_view()),
        pa.array([b"lo", b"hi", b""], pa.binary_view()),
        pa.array(["lo", "hi", "mid"], pa.large_string()),
        pa.array([7, -1, 3], pa.int64()),
        pa.array([[1], None, [2, 3]], pa.list_view(pa.int64())),
    ],
    ids=["string_view", "binary_view", "large_string", "int64", "list_view"],
)
def test_a_dictionary_of_any_values_becomes_the_classic_dictionary(
    values: pa.Array, ordered: bool, chunked: bool
) -> None:
    # An ordered dictionary of string views (a Polars Enum) lost `ordered` when its values
    # were converted, so a chunked column's chunks no longer had its classic type: predict's
    # output writer crashed with Arrow's raw "Array chunks must all be same type".
    indices = pa.array([0, 1, None, 2, 1], pa.int8())
    column = pa.DictionaryArray.from_arrays(indices, values, ordered=ordered)
    given_column = pa.chunked_array([column.slice(0, 2), column.slice(2)]) if chunked else column
    got = classic(given_column)
    assert got.type == classic_type(column.type)
    assert got.type.ordered == ordered
    assert got.to_pylist() == column.to_pylist()
    got.validate(full=True)


def test_a_polars_enum_passthrough_column_is_written_by_predict(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    grade = pl.Series(["lo", "hi", "lo"], dtype=pl.Enum(["lo", "hi"]))
    frame = pl.DataFrame({"a": [1.0, 2.0, 3.0], "grade": grade})
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    out = tmp_path / "out.parquet"
    schema = fitpipe.Schema(features=["a"], passthrough=["grade"])
    fitpipe.Trainer(model).predict(frame, schema=schema, output=out, verbose=0)
    assert pq.read_table(out)["grade"].to_pylist() == ["lo", "hi", "lo"]


@st.composite
def list_views(draw: Any) -> pa.Array:
    """List views over shared values: rows in any order, overlapping, null, sliced."""
    values = pa.array(draw(st.lists(st.integers(-9, 9), min_size=1, max_size=12)), pa.int64())
    rows = draw(st.integers(0, 10))
    starts = [draw(st.integers(0, len(values) - 1)) for _ in range(rows)]
    sizes = [draw(st.integers(0, len(values) - start)) for start in starts]
    nulls = [draw(st.booleans()) for _ in range(rows)]
    mask = pa.array(nulls) if any(nulls) else None
    kind = draw(st.sampled_from([pa.ListViewArray, pa.LargeListViewArray]))
    width = "int32" if kind is pa.ListViewArray else "int64"
    view = kind.from_arrays(pa.array(starts, width), pa.array(sizes, width), values, mask=mask)
    lo = draw(st.integers(0, rows))
    return view.slice(lo, draw(st.integers(0, rows - lo)))


@given(view=list_views())
@settings(max_examples=60)
def test_a_list_view_becomes_a_valid_list_of_the_same_rows(view: pa.Array) -> None:
    # pyarrow 26's cast from a list view gives an invalid list (last offset 0), which
    # crashed the Parquet writer.
    got = classic(view)
    got.validate(full=True)
    assert got.type == classic_type(view.type)
    assert got.to_pylist() == view.to_pylist()
    assert classic(pa.chunked_array([view, view])).to_pylist() == view.to_pylist() * 2
