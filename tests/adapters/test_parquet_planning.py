"""Planning a Parquet source: the footers read by a thread pool give the sequential plan.

The plan (pieces in order, each with its file and rows, the unified Arrow schema, the rows
each piece reads) must not depend on how many threads read the footers; the row counts are
checked against pyarrow's own file metadata, and the first bad file (in path order) is the
one named, whatever the thread count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import ParquetPlan, plan_source
from fitpipe.errors import SchemaError
from fitpipe.testing.strategies import parquet_layouts

SCHEMA = fitpipe.Schema(["a"], "y")
_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(folder: Path, layout: list[list[int]], partitioned: bool) -> None:
    """One file per entry of ``layout``, one row group per row count; rows numbered in order."""
    schema = pa.schema([("a", pa.float64()), ("y", pa.int64())])
    first = 0
    for index, groups in enumerate(layout):
        where = folder / f"k={index % 2}" if partitioned else folder
        where.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(where / f"part-{index:03d}.parquet", schema) as writer:
            for rows in groups:
                numbers = np.arange(first, first + rows)
                writer.write_table(pa.table({"a": numbers * 1.0, "y": numbers}, schema=schema))
                first += rows


def _rows(plan: ParquetPlan) -> list[tuple[str, int, list[float]]]:
    return [
        (p.source, p.rows, [v for t in p.read(["a"]) for v in t.column("a").to_pylist()])
        for p in plan.pieces
    ]


@_SETTINGS
@given(layout=parquet_layouts(), partitioned=st.booleans(), threads=st.integers(2, 9))
def test_the_parallel_plan_is_the_sequential_plan(
    tmp_path_factory: pytest.TempPathFactory,
    layout: list[list[int]],
    partitioned: bool,
    threads: int,
) -> None:
    folder = tmp_path_factory.mktemp("layout")
    _write(folder, layout, partitioned)
    if sum(map(sum, layout)) == 0:
        return  # no rows: the adapter refuses it before planning matters
    sequential = plan_source(str(folder), SCHEMA, "fit", threads=1)
    parallel = plan_source(str(folder), SCHEMA, "fit", threads=threads)
    assert parallel.arrow_schema == sequential.arrow_schema
    assert _rows(parallel) == _rows(sequential)
    files = sorted(folder.rglob("*.parquet"))
    expected = [
        (str(path), pq.ParquetFile(path).metadata.row_group(i).num_rows)
        for path in files
        for i in range(pq.ParquetFile(path).metadata.num_row_groups)
    ]
    assert [(p.source, p.rows) for p in parallel.pieces] == expected
    values = [v for _, _, piece in _rows(parallel) for v in piece]
    assert sorted(values) == [float(i) for i in range(sum(map(sum, layout)))]


@_SETTINGS
@given(files=st.integers(2, 8), bad=st.data(), threads=st.integers(2, 9))
def test_the_first_bad_file_is_named_whatever_the_threads(
    tmp_path_factory: pytest.TempPathFactory, files: int, bad: st.DataObject, threads: int
) -> None:
    folder = tmp_path_factory.mktemp("bad")
    _write(folder, [[2, 1]] * files, partitioned=False)
    broken = sorted(bad.draw(st.sets(st.integers(0, files - 1), min_size=1)))
    for index in broken:
        path = folder / f"part-{index:03d}.parquet"
        path.write_bytes(path.read_bytes()[:40])
    name = f"part-{broken[0]:03d}.parquet"
    for count in (1, threads):
        with pytest.raises(SchemaError, match=f"cannot read the Parquet file .*{name}"):
            plan_source(str(folder), SCHEMA, "fit", threads=count)


def test_a_file_uri_plans_as_its_path(tmp_path: Path) -> None:
    """``file://`` goes through the object-store path (pyarrow's filesystem of the URI)."""
    _write(tmp_path, [[2, 1], [3]], partitioned=False)
    by_path = plan_source(str(tmp_path), SCHEMA, "fit")
    by_uri = plan_source(f"file://{tmp_path}/", SCHEMA, "fit")
    assert _rows(by_uri) == _rows(by_path)  # messages name local files by their paths
