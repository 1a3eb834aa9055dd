"""What a Delta Lake or Iceberg table fitpipe cannot read is told, as the user knows it.

A Delta table's files are named by the table's URI and their path in it (never deltalake's
internal ``py::object-store://`` names), a version whose files were vacuumed says so, and a
reader feature deltalake lacks is named with fixes that work. An Iceberg scan of no rows
says "0 rows", as a Delta table's does, and an unknown snapshot id is named so. No message
holds a terminal's colour codes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError, FitpipeError, UnsupportedInputError, message

deltalake = pytest.importorskip("deltalake")
pytest.importorskip("pyiceberg")
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402

SCHEMA = fitpipe.Schema(["a"], "y")
ESCAPE = "\x1b["


def _rows(n: int, start: int = 0) -> pa.Table:
    a = np.arange(start, start + n, dtype="float64")
    return pa.table({"a": a, "y": a % 2})


def _clean(err: pytest.ExceptionInfo[Exception]) -> str:
    text = str(err.value)
    assert "py::" not in text and ESCAPE not in text
    return text


# ----------------------------------------------------------------------------- Delta
@pytest.mark.parametrize("partitioned", [False, True])
def test_a_vacuumed_version_names_the_table_version_and_missing_file(
    tmp_path: Path, partitioned: bool
) -> None:
    path = str(tmp_path / "t")
    rows = _rows(10).append_column("k", pa.array(["p", "q"] * 5))
    by = ["k"] if partitioned else None
    deltalake.write_deltalake(path, rows, partition_by=by)
    old = sorted(deltalake.DeltaTable(path).file_uris())
    deltalake.write_deltalake(path, rows.slice(0, 4), mode="overwrite", partition_by=by)
    deltalake.DeltaTable(path).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )
    table = deltalake.DeltaTable(path, version=0)
    with pytest.raises(DataMismatchError) as err:
        fitpipe.adapt(table, schema=SCHEMA)
    text = _clean(err)
    assert f"the Delta table {table.table_uri} (version 0)" in text
    assert f"its file {old[0]} is gone" in text
    assert "vacuum" in text and "Load a version whose files are kept" in text
    assert fitpipe.adapt(deltalake.DeltaTable(path), schema=SCHEMA, batch_size=4).num_batches == 1


class _CountingFiles:
    """The local filesystem's ``get_file_info``, counting the requests."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()
        self.asked: list[Any] = []

    def get_file_info(self, paths: Any) -> Any:
        self.asked.append(paths)
        return self.local.get_file_info(paths)


@pytest.mark.parametrize("gone", [None, 1, 3])
def test_a_vacuum_check_asks_the_filesystem_once_for_all_files(
    tmp_path: Path, gone: int | None
) -> None:
    from fitpipe.adapters.delta_tables import _missing_file

    paths = [str(tmp_path / f"part-{i}.parquet") for i in range(5)]
    missing = set() if gone is None else {gone, 4}  # the first missing one is named
    for index, path in enumerate(paths):
        if index not in missing:
            Path(path).touch()
    filesystem = _CountingFiles()
    dataset = SimpleNamespace(files=paths, filesystem=filesystem)
    assert _missing_file(dataset) == (None if gone is None else paths[gone])  # type: ignore[arg-type]
    assert filesystem.asked == [paths]


def test_a_reader_feature_deltalake_lacks_is_named_with_fixes_that_work(tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    deltalake.write_deltalake(path, _rows(6), configuration={"delta.enableDeletionVectors": "true"})
    table = deltalake.DeltaTable(path)
    with pytest.raises(Exception, match="deletionVectors"):
        table.to_pyarrow_table()  # so no fix may suggest it
    with pytest.raises(UnsupportedInputError) as err:
        fitpipe.adapt(table, schema=SCHEMA)
    text = _clean(err)
    assert "it uses the reader features {'deletionVectors'}" in text
    assert f"deltalake {deltalake.__version__} cannot read" in text
    assert "to_pyarrow_table" not in text and "delta_scan" in text


def test_a_delta_file_is_named_by_the_table_uri_and_its_path(tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    deltalake.write_deltalake(path, _rows(6))
    table = deltalake.DeltaTable(path)
    (name,) = table.file_uris()  # the table's folder and the file's path in it
    Path(name).write_bytes(b"not parquet at all")
    with pytest.raises(FitpipeError) as err:
        fitpipe.adapt(table, schema=SCHEMA)
    assert f"the Parquet file {name}" in _clean(err)


@given(
    codes=st.lists(st.sampled_from(["31m", "0m", "1;32m", "4m", "K"]), min_size=1, max_size=4),
    words=st.lists(st.text("abc ↳\n", min_size=1, max_size=5), min_size=1, max_size=4),
)
def test_messages_hold_no_terminal_codes(codes: list[str], words: list[str]) -> None:
    quoted = "".join(ESCAPE + c + w for c, w in zip(codes, words * len(codes), strict=False))
    text = message("fit", f"failed ({quoted})", "expected", "fix", x=quoted)
    assert ESCAPE not in text
    assert "".join(words * len(codes))[: len(words[0])] in text


# ----------------------------------------------------------------------------- Iceberg
def _table(tmp_path: Path) -> Any:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("ns")
    return catalog.create_table("ns.t", schema=_rows(1).schema)


def _zero_rows(x: Any, at: str) -> None:
    with pytest.raises(DataMismatchError) as err:
        fitpipe.adapt(x, schema=SCHEMA)
    assert f"({at}) with 0 rows" in str(err.value)
    assert "cannot find column" not in str(err.value)


@pytest.mark.parametrize("state", ["no snapshot", "empty append", "all deleted"])
def test_an_iceberg_table_of_no_rows_says_0_rows(tmp_path: Path, state: str) -> None:
    table = _table(tmp_path)
    if state == "empty append":
        table.append(_rows(0))
    elif state == "all deleted":
        table.append(_rows(6))
        table.delete("a >= 0")
    snapshot = table.current_snapshot()
    at = "no snapshot" if snapshot is None else f"snapshot {snapshot.snapshot_id}"
    _zero_rows(table, at)
    _zero_rows(table.scan(), at)


def test_an_unknown_iceberg_snapshot_is_named_so(tmp_path: Path) -> None:
    table = _table(tmp_path)
    table.append(_rows(6))
    table.append(_rows(6, 6))
    ids = [s.snapshot_id for s in table.snapshots()]
    unknown = max(ids) + 1
    with pytest.raises(DataMismatchError) as err:
        fitpipe.adapt(table.scan(snapshot_id=unknown), schema=SCHEMA)
    text = str(err.value)
    assert f"at snapshot {unknown}: the table has no such snapshot" in text
    assert f"the latest last: {ids[0]}, {ids[1]}" in text
    assert "no snapshot)" not in text
    old = fitpipe.adapt(table.scan(snapshot_id=ids[0]), schema=SCHEMA, batch_size=6)
    assert old.num_batches == 1
