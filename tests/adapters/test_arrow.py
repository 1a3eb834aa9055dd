"""In-memory Arrow sources: Table, RecordBatch, RecordBatchReader and C-stream exporters.

Also the column conversion every columnar source shares: types, nulls and fill values.
"""

from __future__ import annotations

import datetime
from typing import Any

import duckdb
import keras
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import tensorflow as tf
from conftest_arrow import (
    batch_sizes,
    batches,
    column_of,
    expected_sizes,
    linear_model,
    numbered_table,
    weights_equal,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import SchemaError

N = 4
Y = pa.array([0.0, 1.0, 0.0, 1.0])


def first_x(column: pa.Array, schema: fitpipe.Schema | None = None, name: str = "c"):
    """The feature tensor of the only batch of a table holding ``column`` and ``y``."""
    table = pa.table({name: column, "y": Y})
    pipeline = fitpipe.adapt(table, schema=schema or fitpipe.Schema(name, "y"), batch_size=16)
    (batch,) = list(pipeline.dataset)
    return batch[0]


# ------------------------------------------------------------------ type conversion


@pytest.mark.parametrize(
    ("arrow_type", "dtype"),
    [
        (pa.int8(), tf.int8),
        (pa.int16(), tf.int16),
        (pa.int32(), tf.int32),
        (pa.int64(), tf.int64),
        (pa.uint8(), tf.uint8),
        (pa.uint16(), tf.uint16),
        (pa.float16(), tf.float16),
        (pa.float32(), tf.float32),
        (pa.float64(), tf.float64),
    ],
)
def test_numbers_keep_their_dtype(arrow_type, dtype):
    x = first_x(pa.array([1, 2, 3, 4]).cast(arrow_type))
    assert x.dtype == dtype
    assert x.shape == (N,)
    np.testing.assert_array_equal(x.numpy(), [1, 2, 3, 4])


def test_bool():
    x = first_x(pa.array([True, False, False, True]))
    assert x.dtype == tf.bool
    assert x.numpy().tolist() == [True, False, False, True]


def test_fixed_size_list_is_dense():
    values = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    x = first_x(pa.array(values, pa.list_(pa.float32(), 3)))
    assert isinstance(x, tf.Tensor)
    assert x.dtype == tf.float32
    assert x.shape == (N, 3)
    np.testing.assert_array_equal(x.numpy(), values)


def test_nested_fixed_size_list_is_n_a_b():
    values = [[[i, i + 1, i + 2], [i + 3, i + 4, i + 5]] for i in range(N)]
    x = first_x(pa.array(values, pa.list_(pa.list_(pa.int32(), 3), 2)))
    assert x.dtype == tf.int32
    assert x.shape == (N, 2, 3)
    np.testing.assert_array_equal(x.numpy(), values)


@pytest.mark.parametrize("kind", [pa.list_, pa.large_list])
def test_variable_list_is_ragged(kind):
    values = [[1.0], [2.0, 3.0], [], [4.0, 5.0, 6.0]]
    x = first_x(pa.array(values, kind(pa.float32())))
    assert isinstance(x, tf.RaggedTensor)
    assert x.dtype == tf.float32
    assert x.to_list() == values


@pytest.mark.parametrize("kind", [pa.list_, pa.large_list])
def test_variable_list_padded_and_truncated_to_declared_length(kind):
    values = [[1, 2, 3, 4, 5], [6], [], [7, 8, 9]]
    schema = fitpipe.Schema("c", "y", lengths={"c": 3})
    x = first_x(pa.array(values, kind(pa.int64())), schema)
    assert isinstance(x, tf.Tensor)
    assert x.dtype == tf.int64
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [6, 0, 0], [0, 0, 0], [7, 8, 9]])


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array(["a", "bb", "", "d"]), [b"a", b"bb", b"", b"d"]),
        (pa.array(["a", "bb", "", "d"], pa.large_string()), [b"a", b"bb", b"", b"d"]),
        (pa.array([b"\x00", b"b", b"cc", b"d"]), [b"\x00", b"b", b"cc", b"d"]),
        (pa.array([b"\x00", b"b", b"cc", b"d"], pa.large_binary()), [b"\x00", b"b", b"cc", b"d"]),
        (pa.array(["é", "ü", "x", "y"]), ["é".encode(), "ü".encode(), b"x", b"y"]),
    ],
    ids=["string", "large_string", "binary", "large_binary", "utf8"],
)
def test_text_is_tf_string(array, expected):
    x = first_x(array)
    assert x.dtype == tf.string
    assert x.numpy().tolist() == expected


def test_dictionary_encoded_strings_are_decoded():
    x = first_x(pa.array(["x", "y", "x", "z"]).dictionary_encode())
    assert x.dtype == tf.string
    assert x.numpy().tolist() == [b"x", b"y", b"x", b"z"]


def test_dictionary_encoded_numbers_are_decoded():
    x = first_x(pa.array([1.5, 2.5, 1.5, 3.0]).dictionary_encode())
    assert x.dtype == tf.float64
    np.testing.assert_array_equal(x.numpy(), [1.5, 2.5, 1.5, 3.0])


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (
            pa.array([datetime.datetime(2020, 1, 1, 0, 0, i) for i in range(N)], pa.timestamp("s")),
            [(1577836800 + i) * 10**6 for i in range(N)],  # microseconds, whatever the unit
        ),
        (
            pa.array([datetime.datetime(2020, 1, 1)] * N, pa.timestamp("us", tz="UTC")),
            [1577836800 * 10**6] * N,
        ),
        (
            pa.array([datetime.date(1970, 1, 1 + i) for i in range(N)], pa.date64()),
            list(range(N)),  # days, as date32
        ),
        (pa.array([1, 2, 3, 4], pa.duration("ms")), [1000, 2000, 3000, 4000]),
    ],
    ids=["timestamp-s", "timestamp-tz", "date64", "duration"],
)
def test_temporal_is_int64(array, expected):
    x = first_x(array)
    assert x.dtype == tf.int64
    assert x.numpy().tolist() == expected


def test_date32_is_int64():
    x = first_x(pa.array([datetime.date(1970, 1, 1 + i) for i in range(N)], pa.date32()))
    assert x.dtype == tf.int64
    assert x.numpy().tolist() == [0, 1, 2, 3]


def test_stacked_columns_along_last_axis():
    table = pa.table(
        {
            "i": pa.array([1, 2, 3, 4], pa.int8()),
            "f": pa.array([0.5, 1.5, 2.5, 3.5]),
            "b": pa.array([True, False, True, False]),
            "y": Y,
        }
    )
    pipeline = fitpipe.adapt(table, schema=fitpipe.Schema(["i", "f", "b"], "y"))
    x = batches(pipeline)[0][0]
    assert x.shape == (N, 3)
    np.testing.assert_array_equal(x, [[1, 0.5, 1], [2, 1.5, 0], [3, 2.5, 1], [4, 3.5, 0]])


def test_dict_features_and_targets():
    table = numbered_table(10)
    schema = fitpipe.Schema(
        {"ab": ["a", "b"], "ident": "id"}, targets={"out": "y"}, sample_weight="w"
    )
    ((x, y, w),) = batches(fitpipe.adapt(table, schema=schema, batch_size=10))
    assert set(x) == {"ab", "ident"}
    np.testing.assert_array_equal(x["ab"], np.stack([table["a"], table["b"]], axis=-1))
    np.testing.assert_array_equal(x["ident"], np.arange(10))
    np.testing.assert_array_equal(y["out"], table["y"].to_numpy())
    np.testing.assert_array_equal(w, table["w"].to_numpy())


def test_features_only_gives_one_element_batches():
    table = numbered_table(10)
    (batch,) = batches(fitpipe.adapt(table, schema=fitpipe.Schema("a"), batch_size=10))
    assert len(batch) == 1


# ------------------------------------------------------------------- nulls and fill


@pytest.mark.parametrize("role", ["features", "targets", "sample_weight"])
def test_null_is_an_error_naming_column_and_row(role):
    n = 20
    values = [float(i) for i in range(n)]
    values[13] = None
    table = pa.table(
        {"a": np.arange(n, dtype="float32"), "y": np.zeros(n), "w": np.ones(n), "bad": values}
    )
    kwargs = {"features": "a", "targets": "y", "sample_weight": "w", role: "bad"}
    with pytest.raises(SchemaError) as info:
        batches(fitpipe.adapt(table, schema=fitpipe.Schema(**kwargs), batch_size=4))
    assert "'bad'" in str(info.value)
    assert "row 13" in str(info.value)


@pytest.mark.parametrize(
    ("array", "fill", "expected"),
    [
        (pa.array([1.0, None, 3.0, None]), -1.0, [1.0, -1.0, 3.0, -1.0]),
        (pa.array([1, None, 3, 4], pa.int32()), 7, [1, 7, 3, 4]),
        (pa.array([True, None, False, None]), True, [True, True, False, True]),
        (pa.array(["a", None, "c", "d"]), "?", [b"a", b"?", b"c", b"d"]),
        (pa.array(["a", None, "a", "b"]).dictionary_encode(), "b", [b"a", b"b", b"a", b"b"]),
    ],
    ids=["float", "int", "bool", "string", "dictionary"],
)
def test_fill_replaces_nulls(array, fill, expected):
    x = first_x(array, fitpipe.Schema("c", "y", fill={"c": fill}))
    assert x.numpy().tolist() == expected


def test_fill_of_one_column_does_not_cover_another():
    table = pa.table({"a": [1.0, None], "b": [None, 2.0], "y": [0.0, 1.0]})
    schema = fitpipe.Schema(["a", "b"], "y", fill={"a": 0.0})
    with pytest.raises(SchemaError, match=r"'b' at row 0"):
        batches(fitpipe.adapt(table, schema=schema))


def test_fill_inside_lists():
    array = pa.array([[1.0], [2.0, None], [], [None, 5.0]])
    x = first_x(array, fitpipe.Schema("c", "y", fill={"c": 0.0}))
    assert x.to_list() == [[1.0], [2.0, 0.0], [], [0.0, 5.0]]
    fixed = pa.array([[1.0, None], [2.0, 3.0], [None, 4.0], [5.0, 6.0]], pa.list_(pa.float64(), 2))
    x = first_x(fixed, fitpipe.Schema("c", "y", fill={"c": 9.0}))
    np.testing.assert_array_equal(x.numpy(), [[1, 9], [2, 3], [9, 4], [5, 6]])


def test_null_list_is_an_error():
    with pytest.raises(SchemaError, match=r"'c' at row 2"):
        first_x(pa.array([[1.0], [2.0], None, [3.0]]))


@pytest.mark.parametrize(
    "array",
    [
        pa.array([[1.0], [2.0, 3.0], [4.0, None], [5.0]]),
        pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, None], [7.0, 8.0]], pa.list_(pa.float64(), 2)),
    ],
    ids=["list", "fixed_size_list"],
)
def test_null_inside_a_list_names_its_row(array):
    with pytest.raises(SchemaError, match=r"'c' at row 2 "):
        first_x(array)


def test_null_in_passthrough_is_not_an_error_for_training():
    table = pa.table({"a": [1.0, 2.0], "id": [1, None], "y": [0.0, 1.0]})
    schema = fitpipe.Schema("a", "y", passthrough=["id"])
    assert len(batches(fitpipe.adapt(table, schema=schema))) == 1


def test_null_row_is_global_across_chunks_and_stream_batches():
    n = 50
    values = list(np.arange(n, dtype="float64"))
    values[37] = None
    table = pa.table({"a": values, "y": np.zeros(n)})
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=8))
    assert chunked["a"].num_chunks > 1
    with pytest.raises(SchemaError, match=r"'a' at row 37"):
        batches(fitpipe.adapt(chunked, schema=fitpipe.Schema("a", "y"), batch_size=5))
    model = linear_model(1)
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    reader = table.to_reader(max_chunksize=6)
    with pytest.raises(SchemaError, match=r"'a' at row 37 of the RecordBatchReader"):
        trainer.fit(reader, schema=fitpipe.Schema("a", "y"), batch_size=5, verbose=0)


# ---------------------------------------------------------------- schema checks


@pytest.mark.parametrize(
    ("column", "found"),
    [
        (pa.array([{"q": 1}] * N), "struct<q: int64>"),
        (pa.array([[("k", 1)]] * N, pa.map_(pa.string(), pa.int64())), "map<string, int64>"),
        (pa.nulls(N), "null"),
        (pa.array([["a"], ["b"], [], ["c"]]), "list<item: string>"),
    ],
    ids=["struct", "map", "null", "list-of-string"],
)
def test_unconvertible_column_is_rejected_before_reading(column, found):
    table = pa.table({"c": column, "y": Y})
    with pytest.raises(ValueError) as info:
        fitpipe.adapt(table, schema=fitpipe.Schema("c", "y"))
    assert isinstance(info.value, SchemaError)
    text = str(info.value)
    assert "'c'" in text and found in text and "Table" in text
    assert (
        "Cast it upstream to its values' type" if found == "null" else "integers, floats"
    ) in text


def test_missing_column_is_rejected():
    with pytest.raises(SchemaError, match=r"cannot find column 'zz' in Table"):
        fitpipe.adapt(numbered_table(8), schema=fitpipe.Schema(["a", "zz"], "y"))


def test_string_stacked_with_numbers_is_rejected():
    table = pa.table({"a": [1.0] * N, "s": ["x"] * N, "y": Y})
    with pytest.raises(SchemaError, match=r"'s' of type string"):
        fitpipe.adapt(table, schema=fitpipe.Schema(["a", "s"], "y"))


def test_a_stream_needs_a_schema():
    """A reader is never read as one array (tables are: test_arrow_without_schema.py)."""
    with pytest.raises(TypeError, match="schema"):
        fitpipe.adapt(numbered_table(8).to_reader())


@pytest.mark.parametrize("make", [lambda t: t, pl.from_arrow], ids=["table", "polars"])
def test_a_table_without_schema_adapts_as_its_array(make):
    table = numbered_table(8)
    got = np.concatenate([b[0] for b in batches(fitpipe.adapt(make(table), batch_size=3))])
    np.testing.assert_array_equal(got, np.asarray(table))


# ------------------------------------------------------------------------- sources


def _rows(pipeline: fitpipe.Pipeline) -> tuple[np.ndarray, np.ndarray]:
    got = batches(pipeline)
    return np.concatenate([b[0] for b in got]), np.concatenate([b[1] for b in got])


SCHEMA = fitpipe.Schema(["id", "a"], "y")


def _expected(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([table["id"].to_numpy(), table["a"].to_numpy()], axis=-1)
    return x, table["y"].to_numpy()


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t,
        lambda t: pa.Table.from_batches(t.to_batches(max_chunksize=9)),
        lambda t: t.to_batches()[0],
        lambda t: pl.from_arrow(t),
        lambda t: duckdb.arrow(t),
        lambda t: duckdb.sql("select * from t order by id"),
    ],
    ids=["table", "chunked-table", "record-batch", "polars", "duckdb-arrow", "duckdb-sql"],
)
def test_row_sources_keep_order_and_count(make):
    t = numbered_table(100)
    pipeline = fitpipe.adapt(make(t), schema=SCHEMA, batch_size=16)
    assert pipeline.num_batches == 7
    assert batch_sizes(pipeline) == expected_sizes(100, 16)
    x, y = _rows(pipeline)
    ex, ey = _expected(t)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def test_pandas_frame_with_schema():
    t = numbered_table(100)
    frame = t.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    x, y = _rows(fitpipe.adapt(frame, schema=SCHEMA, batch_size=16))
    ex, ey = _expected(t)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def test_pandas_frame_without_schema_is_still_an_array():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    (batch,) = batches(fitpipe.adapt(frame))
    np.testing.assert_array_equal(batch[0], [[1.0, 3.0], [2.0, 4.0]])


@pytest.mark.parametrize("chunk", [1, 7, 16, 33, 200])
def test_record_batch_reader_regroups_into_batches(chunk):
    t = numbered_table(100)
    pipeline = fitpipe.adapt(t.to_reader(max_chunksize=chunk), schema=SCHEMA, batch_size=16)
    assert pipeline.adapter == "arrow-stream"
    assert batch_sizes(pipeline) == expected_sizes(100, 16)
    # A reader is a stream: read once.
    assert batches(pipeline) == []


def test_record_batch_reader_rows_in_order():
    t = numbered_table(100)
    x, y = _rows(fitpipe.adapt(t.to_reader(max_chunksize=7), schema=SCHEMA, batch_size=16))
    ex, ey = _expected(t)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def test_record_batch_reader_schema_checked_before_reading():
    t = pa.table({"a": [1.0] * 8, "st": pa.array([{"q": 1}] * 8)})
    reader = t.to_reader()
    with pytest.raises(SchemaError, match=r"'st'.*RecordBatchReader"):
        fitpipe.adapt(reader, schema=fitpipe.Schema("a", "st"))


def test_record_batch_reader_rejects_validation_split():
    t = numbered_table(40)
    model = linear_model(2)
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    with pytest.raises(ValueError, match="validation_split"):
        trainer.fit(t.to_reader(), schema=SCHEMA, validation_split=0.2, verbose=0)


# ---------------------------------------------------- shuffling and class weights


def _ids(table: pa.Table, seed: int, epochs: int = 1) -> list[np.ndarray]:
    keras.utils.set_random_seed(seed)
    pipeline = fitpipe.adapt(table, schema=fitpipe.Schema("id"), batch_size=16, shuffle=True)
    return [column_of(pipeline) for _ in range(epochs)]


def test_table_shuffle_every_row_once_and_reproducible():
    t = numbered_table(100)
    first, second = _ids(t, seed=3, epochs=2)
    for epoch in (first, second):
        assert sorted(epoch.tolist()) == list(range(100))
    assert not np.array_equal(first, np.arange(100))
    assert not np.array_equal(first, second)
    again = _ids(t, seed=3, epochs=2)
    np.testing.assert_array_equal(again[0], first)
    np.testing.assert_array_equal(again[1], second)
    assert not np.array_equal(_ids(t, seed=4)[0], first)


def test_class_weight_applies_to_the_target_column():
    t = numbered_table(40)
    schema = fitpipe.Schema(["a", "b"], "label")
    pipeline = fitpipe.adapt(t, schema=schema, batch_size=40, class_weight={0: 0.5, 1: 4.0})
    ((_, y, w),) = batches(pipeline)
    np.testing.assert_array_equal(y, t["label"].to_numpy())
    np.testing.assert_allclose(w, np.where(y == 1, 4.0, 0.5))


def test_class_weight_multiplies_the_weight_column():
    t = numbered_table(40)
    schema = fitpipe.Schema(["a", "b"], "label", sample_weight="w")
    pipeline = fitpipe.adapt(t, schema=schema, batch_size=40, class_weight={0: 0.5, 1: 4.0})
    ((_, y, w),) = batches(pipeline)
    expected = t["w"].to_numpy() * np.where(y == 1, 4.0, 0.5)
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_failed_null_check_in_a_table_leaves_weights_untouched():
    t = numbered_table(40)
    values = t["a"].to_pylist()
    values[30] = None
    t = t.set_column(t.schema.get_field_index("a"), "a", pa.array(values, pa.float32()))
    model = linear_model(2)
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    before = model.get_weights()
    with pytest.raises(SchemaError, match=r"'a' at row 30"):
        trainer.fit(t, schema=fitpipe.Schema(["a", "b"], "y"), batch_size=8, verbose=0)
    assert weights_equal(before, model)


# ------------------------------------------------- streams: converted a table at a time


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.integers(0, 13), max_size=6),
    batch_size=st.integers(1, 9),
    null_at=st.none() | st.integers(0, 60),
    ragged=st.booleans(),
    at_once=st.integers(1, 30),
)
def test_stream_batches_converted_a_table_at_a_time_equal_batch_by_batch(
    chunks: list[int], batch_size: int, null_at: int | None, ragged: bool, at_once: int
) -> None:
    """The same batches, and an error at the same batch, after the same batches before it."""
    from fitpipe.adapters import arrow_tables
    from fitpipe.adapters.arrow_tables import converted_batches, rebatch_tables
    from fitpipe.columnar import table_roles

    n = sum(chunks)
    a = [float(i) for i in range(n)]
    if null_at is not None and null_at < n:
        a[null_at] = None  # type: ignore[call-overload]
    columns = {"a": pa.array(a, pa.float64()), "b": pa.array(np.arange(n) * 2, pa.int32())}
    if ragged:  # a list column: converted to ragged tensors, so batch by batch
        columns["l"] = pa.array([[i] * (i % 3) for i in range(n)], pa.list_(pa.int64()))
    columns["y"] = pa.array(np.arange(n) % 2, pa.float32())
    table = pa.table(columns)
    starts = np.cumsum([0, *chunks])[:-1]
    records = [table.slice(int(lo), c) for lo, c in zip(starts, chunks, strict=True)]
    features: dict[str, Any] = {"n": ["a", "b"], **({"l": "l"} if ragged else {})}
    schema = fitpipe.Schema(features=features, targets="y")

    def convert(part: pa.Table, first: int) -> tuple:
        return table_roles(part, schema, "the stream", first, "fit", True)

    sizes: list[int] = []  # of the tables converted at once

    def run(whole: bool) -> tuple[list, str | None]:
        got: list = []
        try:
            first = 0
            for part in rebatch_tables(iter(records), batch_size, whole=whole):
                sizes.extend([part.num_rows] if whole else [])
                made = converted_batches(part, batch_size, first, convert) if whole else None
                got.extend(made if made is not None else [convert(part, first)])
                first += part.num_rows
        except SchemaError as err:
            return got, str(err)
        return got, None

    with pytest.MonkeyPatch.context() as patch:  # converted at most `at_once` rows at a time
        patch.setattr(arrow_tables, "CHUNK_ROWS", at_once)
        (got, error), (want, expected) = run(True), run(False)
    most = max(batch_size, at_once - at_once % batch_size)
    if error is None:  # whole batches, at most `most` rows, but the last table
        assert all(r <= most and r % batch_size == 0 for r in sizes[:-1])
        assert sum(sizes) == n
    assert error == expected
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for gl, wl in zip(tf.nest.flatten(g), tf.nest.flatten(w), strict=True):
            if isinstance(wl, np.ndarray):
                assert isinstance(gl, np.ndarray) and gl.dtype == wl.dtype
                np.testing.assert_array_equal(gl, wl)
            else:
                assert gl == wl if wl is None else gl.to_list() == wl.to_list()
