"""Delta Lake tables (``deltalake``) and Iceberg tables (``pyiceberg``, a local SQL catalog).

Every table is created by the test in ``tmp_path``: written in two commits, then rows deleted,
so the table's folder holds files its current version no longer lists. Training on a table
must give the History of training on the same rows as a ``pyarrow.Table`` (rows in the order
of the files' paths, as the adapters document), an older version (time travel) must give that
version's rows, and the planned row count must be the one the table's metadata records.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest_arrow import batches, linear_model

import fitpipe
from fitpipe import limits
from fitpipe.errors import DataMismatchError, UnsupportedInputError
from fitpipe.testing import AdapterConformanceTests
from fitpipe.testing.fixtures import arrow_table, columnar_schema
from fitpipe.testing.keras_diff import assert_weights_close, make_twins

deltalake = pytest.importorskip("deltalake")
pytest.importorskip("pyiceberg")
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402

SCHEMA = fitpipe.Schema(["a", "b"], "y", sample_weight="w")
#: The conformance kit's tables, removed when the process exits.
_KIT_TABLES = tempfile.TemporaryDirectory()
COLUMNS = ["a", "b", "y", "w"]


def _rows(start: int, n: int) -> pa.Table:
    i = np.arange(start, start + n)
    return pa.table(
        {
            "a": i / 70.0,
            "b": np.sin(i).astype(np.float32),
            "y": (2.0 * i - 1.0) % 7,
            "w": 1.0 + i % 3,
            "part": np.where(i % 2 == 0, "even", "odd"),
        }
    )


@pytest.fixture(params=["in-memory", "streamed"])
def held(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both Parquet paths: small data read whole, and streamed by row group."""
    if request.param == "streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    return str(request.param)


# ----------------------------------------------------------------------------- tables
def _delta(path: Path) -> Any:
    """Version 0: rows 0..39; version 1: rows 40..69 appended; version 2: a >= 60 deleted."""
    deltalake.write_deltalake(str(path), _rows(0, 40), partition_by=["part"])
    deltalake.write_deltalake(str(path), _rows(40, 30), mode="append")
    table = deltalake.DeltaTable(str(path))
    table.delete(f"a >= {60 / 70.0!r}")
    return deltalake.DeltaTable(str(path))


def _catalog(path: Path) -> SqlCatalog:
    catalog = SqlCatalog("local", uri=f"sqlite:///{path}/catalog.db", warehouse=f"file://{path}")
    catalog.create_namespace("ns")
    return catalog


def _iceberg(path: Path) -> tuple[Any, int]:
    """Snapshot 1: rows 0..39; then rows 40..69 appended; then a >= 60 deleted."""
    rows = _rows(0, 40)
    table = _catalog(path).create_table("ns.t", schema=rows.schema)
    table.append(rows)
    first = table.current_snapshot().snapshot_id
    table.append(_rows(40, 30))
    table.delete(f"a >= {60 / 70.0!r}")
    return table, first


def _delta_files(table: Any) -> list[str]:
    return sorted(table.file_uris())


def _iceberg_files(scan: Any) -> list[str]:
    return sorted(task.file.file_path.removeprefix("file://") for task in scan.plan_files())


def _same_rows(files: list[str]) -> pa.Table:
    """The rows of the table's files in path order, as one ``pyarrow.Table``."""
    return pa.concat_tables([pq.read_table(f, columns=COLUMNS) for f in files])


def _column(source: Any, batch_size: int = 8) -> np.ndarray:
    pipeline = fitpipe.adapt(source, schema=SCHEMA, batch_size=batch_size, shuffle=False)
    got = batches(pipeline)
    assert pipeline.num_batches == len(got)
    return np.round(np.concatenate([b[0][:, 0] for b in got]) * 70.0).astype(int)  # row numbers


def _train(source: Any, model: keras.Model) -> dict[str, list[float]]:
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    keras.utils.set_random_seed(1)
    history = trainer.fit(
        source,
        schema=SCHEMA,
        batch_size=8,
        epochs=2,
        validation_split=0.25,
        shuffle=False,
        verbose=0,
    )
    return history.history


def _assert_trains_like_its_rows(table: Any, rows: pa.Table) -> None:
    ref, twin = make_twins(lambda: linear_model(2))
    expected = _train(rows, ref)
    got = _train(table, twin)
    assert got.keys() == expected.keys() == {"loss", "val_loss"}
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-7)
    assert_weights_close(ref, twin, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- Delta Lake
@pytest.mark.slow
def test_delta_table_trains_like_its_rows_as_an_arrow_table(tmp_path: Path, held: str) -> None:
    table = _delta(tmp_path / "t")
    assert table.version() == 2
    _assert_trains_like_its_rows(table, _same_rows(_delta_files(table)))


def test_delta_versions_and_deletes_are_read_from_the_log(tmp_path: Path, held: str) -> None:
    path = tmp_path / "t"
    current = _delta(path)
    on_disk = {str(p) for p in path.rglob("*.parquet")}
    assert set(_delta_files(current)) < on_disk  # the delete left rewritten files behind
    np.testing.assert_array_equal(np.sort(_column(current)), np.arange(60))
    for version, rows in ((0, 40), (1, 70)):
        old = deltalake.DeltaTable(str(path), version=version)
        np.testing.assert_array_equal(np.sort(_column(old)), np.arange(rows))
        in_order = np.round(_same_rows(_delta_files(old))["a"].to_numpy() * 70.0).astype(int)
        np.testing.assert_array_equal(_column(old), in_order)
    logged = pa.table(current.get_add_actions(flatten=True))["num_records"]
    pipeline = fitpipe.adapt(current, schema=SCHEMA, batch_size=7)
    assert pipeline.adapter == "delta"
    assert pipeline.num_batches == math.ceil(sum(logged.to_pylist()) / 7) == math.ceil(60 / 7)


def test_delta_partition_values_come_from_the_log(tmp_path: Path) -> None:
    table = _delta(tmp_path / "t")
    trainer = fitpipe.Trainer(linear_model(2))
    trainer.compile("sgd", "mse")
    schema = fitpipe.Schema(["a", "b"], "y", passthrough=["part"])
    trainer.predict(table, schema=schema, output=str(tmp_path / "p.parquet"))
    written = pq.read_table(tmp_path / "p.parquet")
    assert written.num_rows == 60
    assert set(written["part"].to_pylist()) == {"even", "odd"}


def test_a_delta_folder_is_not_read_as_parquet(tmp_path: Path) -> None:
    _delta(tmp_path / "t")
    with pytest.raises(
        DataMismatchError, match=r"is the folder of the Delta Lake table .*DeltaTable"
    ):
        fitpipe.adapt(str(tmp_path / "t"), schema=SCHEMA)


# ----------------------------------------------------------------------------- Iceberg
@pytest.mark.slow
def test_iceberg_table_trains_like_its_rows_as_an_arrow_table(tmp_path: Path, held: str) -> None:
    table, _ = _iceberg(tmp_path)
    _assert_trains_like_its_rows(table, _same_rows(_iceberg_files(table.scan())))


def test_iceberg_snapshots_and_deletes_are_read_from_metadata(tmp_path: Path, held: str) -> None:
    table, first = _iceberg(tmp_path)
    np.testing.assert_array_equal(np.sort(_column(table)), np.arange(60))
    old = table.scan(snapshot_id=first)
    np.testing.assert_array_equal(_column(old), np.arange(40))
    on_disk = {str(p) for p in (tmp_path / "ns").rglob("*.parquet")}
    assert set(_iceberg_files(table.scan())) < on_disk  # the delete rewrote a file
    recorded = sum(task.file.record_count for task in table.scan().plan_files())
    pipeline = fitpipe.adapt(table, schema=SCHEMA, batch_size=7)
    assert pipeline.adapter == "iceberg"
    assert pipeline.num_batches == math.ceil(recorded / 7) == math.ceil(60 / 7)


def test_iceberg_refuses_what_metadata_cannot_plan(tmp_path: Path) -> None:
    table, _ = _iceberg(tmp_path)
    trainer = fitpipe.Trainer(linear_model(2))
    trainer.compile("sgd", "mse")
    with pytest.raises(UnsupportedInputError, match=r"`fit` cannot plan the Iceberg table .*row"):
        trainer.fit(table.scan(row_filter="a > 0.5"), schema=SCHEMA)
    with pytest.raises(DataMismatchError, match=r"is the folder of the Iceberg table .*load_table"):
        fitpipe.adapt(str(tmp_path / "ns" / "t"), schema=SCHEMA)


# ----------------------------------------------------------------------------- lazy imports
@pytest.mark.subprocess
def test_deltalake_and_pyiceberg_are_imported_only_for_their_objects() -> None:
    code = (
        "import sys, numpy as np, fitpipe\n"
        "import fitpipe.adapters.delta_tables, fitpipe.adapters.iceberg_tables\n"
        "fitpipe.adapt(np.zeros((3, 2)), np.zeros(3))\n"
        "fitpipe.adapt(iter([(np.zeros((3, 2)), np.zeros(3))]))\n"
        "print(sorted(m for m in ('deltalake', 'pyiceberg') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- conformance
class _TableConformance(AdapterConformanceTests):
    max_examples = 5  # each example writes a table

    def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> fitpipe.Schema | None:
        return columnar_schema(x, y, sample_weight)

    def split_by_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> Any:
        return "key"  # the column arrow_table(..., keyed=True) adds


class TestDeltaConformance(_TableConformance):
    adapter_name = "delta"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        path = tempfile.mkdtemp(dir=_KIT_TABLES.name)
        deltalake.write_deltalake(path, arrow_table(x, y, sample_weight, keyed=True))
        return deltalake.DeltaTable(path)


class TestIcebergConformance(_TableConformance):
    adapter_name = "iceberg"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        rows = arrow_table(x, y, sample_weight, keyed=True)
        table = _catalog(Path(tempfile.mkdtemp(dir=_KIT_TABLES.name))).create_table(
            "ns.t", schema=rows.schema
        )
        table.append(rows)
        return table
