"""One walk over Parquet footers: ``column_chunks``, read by ``footer_stats`` and pre-flight.

The property: over a folder of part files of any sizes (row groups and files of no rows
anywhere, several of them), of columns whose names hold dots (beside a struct whose field
has the same path, and a list), the footers' nulls, minima and maxima are those of the
concatenated rows, as ``pyarrow.compute`` finds them (a struct's or a list's nulls: those,
or unknown).
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import column_chunks, footer_stats, open_dataset
from fitpipe.testing.strategies import parquet_layouts
from fitpipe.training.preflight.parquet_scan import footer_stats as check_stats

#: Names of the drawn folders' plain columns: ``a.b`` has the path of the struct ``a``'s field.
NAMES = ("y", "a.b", "x.y.z", "income.usd")

#: The drawn folders' struct and list columns, and their types.
NESTED = {
    "a": pa.struct([("b", pa.float64()), ("c", pa.float64())]),
    "l": pa.list_(pa.float64()),
}

#: A value: a null or a small whole number (exact in float64).
VALUES = st.none() | st.integers(-9, 9).map(float)


def _write(folder: Path) -> Path:
    table = pa.table(
        {
            "a": pa.array([1.0, None, 3.0, 4.0, None]),
            "s": pa.array([{"u": 1, "v": 2}] * 5),
            "y": pa.array([0, 1, 0, 1, 1]),
        }
    )
    path = folder / "data.parquet"
    pq.write_table(table, path, row_group_size=3)
    return path


def test_column_chunks_walk_every_chunk_of_every_row_group(tmp_path: Path) -> None:
    meta = pq.ParquetFile(_write(tmp_path)).metadata
    chunks = list(column_chunks(meta))
    assert [(c.column, c.path, c.rows) for c in chunks] == [
        (column, path, rows)
        for rows in (3, 2)
        for column, path in (("a", "a"), ("s", "s.u"), ("s", "s.v"), ("y", "y"))
    ]
    assert sum(c.statistics.null_count for c in chunks if c.column == "a") == 2


def test_footer_stats_sum_the_walk(tmp_path: Path) -> None:
    _write(tmp_path)
    stats = footer_stats(open_dataset(str(tmp_path), "inspect"))
    assert stats.nulls == {"a": 2, "s": 0, "y": 0}
    assert (stats.files, stats.row_groups, stats.rows) == (1, 2, 5)


def test_chunks_belong_to_their_column_by_the_schema_not_by_dots(tmp_path: Path) -> None:
    """A column ``a.b`` and the field ``b`` of a struct ``a`` share the path ``a.b``: split at
    its first dot, the column's statistics were filed under ``a``."""
    table = pa.table(
        {
            "a.b": pa.array([None, 2.0, 3.0]),
            "a": pa.array([{"b": 1.0, "c": 1}, {"b": 2.0, "c": 2}, {"b": 3.0, "c": 3}]),
            "l": pa.array([[1.0], None, []]),
            "m": pa.array([[("k", 1)], [], [("j", 2)]], pa.map_(pa.string(), pa.int64())),
            "f": pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float32(), 2)),
            "L": pa.array(
                [[{"x": 1, "y": None}]] * 3,
                pa.large_list(pa.struct([("x", pa.int8()), ("y", pa.int8())])),
            ),
            "d.e": pa.array(["u", None, "u"]).dictionary_encode(),
        }
    )
    pq.write_table(table, tmp_path / "data.parquet")
    chunks = list(column_chunks(pq.ParquetFile(tmp_path / "data.parquet").metadata))
    assert [(c.column, c.path) for c in chunks] == [
        ("a.b", "a.b"),
        ("a", "a.b"),
        ("a", "a.c"),
        ("l", "l.list.element"),
        ("m", "m.key_value.key"),
        ("m", "m.key_value.value"),
        ("f", "f.list.element"),
        ("L", "L.list.element.x"),
        ("L", "L.list.element.y"),
        ("d.e", "d.e"),
    ]
    assert [c.column for c in chunks if c.plain] == ["a.b", "d.e"]
    stats = footer_stats(open_dataset(str(tmp_path), "inspect"))
    # leaves with no nulls: none in their column; else unknown (an empty list counts)
    expected = {"a.b": 1, "a": 0, "l": None, "m": None, "f": 0, "L": 0, "d.e": 1}
    assert stats.nulls == expected


@st.composite
def part_files(draw: st.DrawFn) -> tuple[list[list[pa.Table]], pa.Schema]:
    """Files of row groups (groups and files of no rows anywhere) of columns with nulls."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    nested = draw(st.sets(st.sampled_from(sorted(NESTED))))
    schema = pa.schema(
        [*((name, pa.float64()) for name in names), *((n, NESTED[n]) for n in sorted(nested))]
    )
    kinds = {
        "a": st.none() | st.fixed_dictionaries({"b": VALUES, "c": VALUES}),
        "l": st.none() | st.lists(VALUES, max_size=2),
    }
    layout = draw(parquet_layouts(max_files=4, max_groups=3, max_rows=5, min_rows=0))

    def group(rows: int) -> pa.Table:
        columns = {
            field.name: draw(st.lists(kinds.get(field.name, VALUES), min_size=rows, max_size=rows))
            for field in schema
        }
        return pa.table(columns, schema)

    return [[group(rows) for rows in groups] for groups in layout], schema


def write_parts(folder: Path, files: list[list[pa.Table]], schema: pa.Schema) -> pa.Table:
    """Writes each file's tables as its row groups, in order; returns all rows concatenated."""
    for i, groups in enumerate(files):
        with pq.ParquetWriter(folder / f"part-{i:05d}.parquet", schema) as writer:
            for group in groups:
                writer.write_table(group)
    return pa.concat_tables([schema.empty_table(), *(g for groups in files for g in groups)])


def test_a_part_file_of_no_rows_adds_nothing(tmp_path: Path) -> None:
    """An empty part file (Spark writes them; pyarrow: one row group, no statistics) made
    every column's nulls unknown."""
    table = pa.table({"a": pa.array([1.0, None, 3.0]), "y": pa.array([0, 1, 0])})
    pq.write_table(table.slice(0, 0), tmp_path / "part-00000.parquet")
    pq.write_table(table, tmp_path / "part-00001.parquet")
    pq.write_table(table.slice(0, 0), tmp_path / "part-00002.parquet")
    stats = footer_stats(open_dataset(str(tmp_path), "inspect"))
    assert stats.nulls == {"a": 1, "y": 0}
    assert (stats.files, stats.rows) == (3, 3)


@given(drawn=part_files())
def test_footer_statistics_are_those_of_the_rows(
    tmp_path_factory: pytest.TempPathFactory, drawn: tuple[list[list[pa.Table]], pa.Schema]
) -> None:
    files, schema = drawn
    folder = tmp_path_factory.mktemp("parts")
    rows = write_parts(folder, files, schema)
    dataset = open_dataset(str(folder), "inspect")
    stats = footer_stats(dataset)
    nulls = {field.name: pc.sum(pc.is_null(rows[field.name])).as_py() or 0 for field in schema}
    plain = [name for name in schema.names if name not in NESTED]
    assert {name: stats.nulls[name] for name in plain} == {name: nulls[name] for name in plain}
    for name in set(schema.names) - set(plain):  # a leaf counts more than its column's nulls
        assert stats.nulls[name] in (None, nulls[name])
    assert set(stats.nulls) == set(schema.names)
    assert (stats.files, stats.rows) == (len(files), rows.num_rows)
    found = {c.name: c for c in check_stats(dataset, fitpipe.Schema(plain))[0]}
    assert set(found) == (set(plain) if rows.num_rows else set())
    for name, column in found.items():
        low, high = pc.min_max(rows[name]).values()
        assert (column.rows, column.nulls) == (rows.num_rows, nulls[name])
        assert column.low == (math.inf if low.as_py() is None else low.as_py())
        assert column.high == (-math.inf if high.as_py() is None else high.as_py())
