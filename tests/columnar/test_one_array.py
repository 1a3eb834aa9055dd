"""``one_array``: a chunked column as one array, a single chunk taken as it is (no copy).

pyarrow's ``combine_chunks`` copies every value even of a single chunk, and a row group read
whole is one chunk per column: converting it copied each column once more. These tests hold
the class: every column read whole (one chunk, sliced or not) converts without a copy of its
values, and columns of any chunking convert to what ``combine_chunks`` gives.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from fitpipe.columnar import column_array, one_array, plan_source, read_span, spans, table_roles
from fitpipe.schemas import Mode, Schema

NUMERIC = st.sampled_from([pa.float32(), pa.float64(), pa.int8(), pa.int32(), pa.int64()])


@st.composite
def chunked(draw: st.DrawFn, with_nulls: bool = True) -> pa.ChunkedArray:
    """A column of 0-3 chunks of 0-20 values (text, bool or numbers; nulls if asked)."""
    kind = draw(st.one_of(NUMERIC, st.just(pa.string()), st.just(pa.bool_())))
    value = {
        pa.string(): st.text(max_size=3),
        pa.bool_(): st.booleans(),
    }.get(kind, st.integers(-100, 100))
    if with_nulls:
        value = st.one_of(st.none(), value)
    lengths = draw(st.lists(st.integers(0, 20), max_size=3))
    return pa.chunked_array(
        [pa.array(draw(st.lists(value, min_size=n, max_size=n)), kind) for n in lengths], kind
    )


def _data_address(array: pa.Array) -> int:
    """Where the array's first value lies in memory."""
    return array.buffers()[1].address + array.offset * array.type.bit_width // 8


@given(chunked())
def test_one_array_gives_the_joined_chunks(column):
    joined = one_array(column)
    assert isinstance(joined, pa.Array)
    assert joined.type == column.type
    assert joined.equals(column.combine_chunks())


@given(chunked(with_nulls=False), st.data())
def test_a_single_chunk_or_a_plain_array_is_not_copied(column, data):
    if column.num_chunks:
        chunk = column.chunk(0)
        start = data.draw(st.integers(0, len(chunk)))
        chunk = chunk.slice(start, data.draw(st.integers(0, len(chunk) - start)))
        taken = one_array(pa.chunked_array([chunk]))
        assert [b.address for b in taken.buffers() if b] == [
            b.address for b in chunk.buffers() if b
        ]
        assert taken.offset == chunk.offset
    assert one_array(column.combine_chunks()).equals(column.combine_chunks())


@given(NUMERIC, st.integers(1, 50), st.data())
def test_a_numeric_column_read_whole_converts_without_a_copy(kind, rows, data):
    values = pa.array(np.arange(rows) % 100, kind)
    start = data.draw(st.integers(0, rows - 1))
    chunk = values.slice(start, data.draw(st.integers(1, rows - start)))
    ctx = ("memory", 0, "fit")
    converted = column_array(pa.chunked_array([chunk]), "x", Schema(features="x"), ctx)
    assert converted.__array_interface__["data"][0] == _data_address(chunk)
    np.testing.assert_array_equal(converted, chunk.to_numpy())


def test_a_row_group_read_from_parquet_converts_in_place(tmp_path):
    """A one-column feature and the target of a Parquet row group: views of what was read."""
    path = tmp_path / "data.parquet"
    table = pa.table({"x": np.arange(1000, dtype="float32"), "y": np.ones(1000, "float64")})
    pq.write_table(table, path, row_group_size=600)
    schema = Schema(features="x", targets="y")
    plan = plan_source(str(path), schema, "fit", Mode.TRAIN)
    for span in spans(plan, 0, plan.rows):
        for read in read_span(span, ["x", "y"]):
            x, y, _ = table_roles(read, schema, str(path))
            for array, name in ((x, "x"), (y, "y")):
                assert read.column(name).num_chunks == 1
                assert array.__array_interface__["data"][0] == _data_address(
                    read.column(name).chunk(0)
                )
