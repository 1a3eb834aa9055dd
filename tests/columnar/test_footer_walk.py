"""One walk over Parquet footers: ``column_chunks``, read by ``footer_stats`` and pre-flight."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fitpipe.columnar import column_chunks, footer_stats, open_dataset


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
