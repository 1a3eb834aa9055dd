"""One walk over Parquet footers: ``column_chunks``, read by ``footer_stats`` and pre-flight.

The property: over a folder of part files of any sizes (row groups and files of no rows
anywhere, several of them), the footers' nulls, minima and maxima are those of the
concatenated rows, as ``pyarrow.compute`` finds them.
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

#: Column names of the drawn folders.
NAMES = ("a", "b", "c")

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


@st.composite
def part_files(draw: st.DrawFn, names: tuple[str, ...] = NAMES) -> list[list[pa.Table]]:
    """Files of row groups of float columns with nulls; groups and files of no rows anywhere."""
    layout = draw(parquet_layouts(max_files=4, max_groups=3, max_rows=5, min_rows=0))

    def group(rows: int) -> pa.Table:
        values = st.lists(VALUES, min_size=rows, max_size=rows)
        return pa.table({name: pa.array(draw(values), pa.float64()) for name in names})

    return [[group(rows) for rows in groups] for groups in layout]


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


@given(files=part_files())
def test_footer_statistics_are_those_of_the_rows(
    tmp_path_factory: pytest.TempPathFactory, files: list[list[pa.Table]]
) -> None:
    schema = pa.schema([(name, pa.float64()) for name in NAMES])
    folder = tmp_path_factory.mktemp("parts")
    rows = write_parts(folder, files, schema)
    dataset = open_dataset(str(folder), "inspect")
    stats = footer_stats(dataset)
    assert stats.nulls == {name: pc.sum(pc.is_null(rows[name])).as_py() or 0 for name in NAMES}
    assert (stats.files, stats.rows) == (len(files), rows.num_rows)
    found = {c.name: c for c in check_stats(dataset, fitpipe.Schema(list(NAMES)))[0]}
    assert set(found) == (set(NAMES) if rows.num_rows else set())
    for name, column in found.items():
        low, high = pc.min_max(rows[name]).values()
        assert (column.rows, column.nulls) == (rows.num_rows, rows[name].null_count)
        assert column.low == (math.inf if low.as_py() is None else low.as_py())
        assert column.high == (-math.inf if high.as_py() is None else high.as_py())
