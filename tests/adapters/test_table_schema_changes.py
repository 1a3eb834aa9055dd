"""Delta and Iceberg tables whose schema changed after files were written.

A table format keeps its own schema: an Iceberg column renamed after a file was written is
found there by field id, a column added later (or dropped and added again) is null in the
older files, a dropped column is not a column of the table, and Delta's column mapping
stores columns under physical names. The oracle is the format's own reader
(``scan.to_arrow()``, ``DeltaTable.to_pyarrow_table()``, deltalake's query engine under
column mapping): the rows fitpipe feeds hold its
columns, read whole and streamed by row group. Every table has an ``id`` column, the
target, that no change touches: rows are compared in its order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters.iceberg_tables import scan_columns, scan_dataset
from fitpipe.columnar import plan_bytes, plan_from_bytes, plan_source
from fitpipe.errors import SchemaError
from fitpipe.schemas import Mode

deltalake = pytest.importorskip("deltalake")
pytest.importorskip("pyiceberg")
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402
from pyiceberg.types import DoubleType  # noqa: E402

#: Each table's rows are written as several row groups, so streamed reads read several.
ROW_GROUP = 7


@pytest.fixture(params=["in-memory", "streamed"])
def held(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both Parquet paths: small data read whole, and streamed by row group."""
    if request.param == "streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    return str(request.param)


def _rows(start: int, n: int, columns: Mapping[str, float]) -> pa.Table:
    """Rows ``start..start+n``: ``id``, and each column ``scale * (id + 1)``."""
    i = np.arange(start, start + n, dtype=np.float64)
    return pa.table({"id": i, **{name: scale * (i + 1) for name, scale in columns.items()}})


def _catalog(path: Path) -> SqlCatalog:
    catalog = SqlCatalog("local", uri=f"sqlite:///{path}/catalog.db", warehouse=f"file://{path}")
    catalog.create_namespace("ns")
    return catalog


def _iceberg(path: Path, first: pa.Table) -> Any:
    """A table of ``first``'s rows, written in row groups of :data:`ROW_GROUP` rows."""
    path.mkdir(parents=True, exist_ok=True)
    properties = {"write.parquet.row-group-limit": str(ROW_GROUP)}
    table = _catalog(path).create_table("ns.t", schema=first.schema, properties=properties)
    _append(table, first)
    return table


def _append(table: Any, rows: pa.Table) -> None:
    """Appends the rows' columns the table has now."""
    names = [field.name for field in table.schema().fields]
    table.append(rows.select(names).cast(pa.schema([rows.schema.field(n) for n in names])))


def _fed(source: Any, features: list[str], fill: Mapping[str, float] | None = None) -> np.ndarray:
    """The feature rows fitpipe feeds, in ``id`` order."""
    schema = fitpipe.Schema(features, "id", fill=dict(fill or {}))
    with fitpipe.adapt(source, schema=schema, batch_size=5, shuffle=False) as pipeline:
        got = list(pipeline)  # (an error of a streamed read raised as fitpipe's)
    x = np.concatenate([np.asarray(b[0]) for b in got])
    ids = np.concatenate([np.asarray(b[1]) for b in got]).ravel()
    return x[np.argsort(ids)]


def _expected(
    rows: pa.Table, features: list[str], fill: Mapping[str, float] | None = None
) -> np.ndarray:
    """The format's own rows of ``features``, in ``id`` order, nulls filled."""
    rows = rows.sort_by("id")
    fill = fill or {}
    return np.stack(
        [rows[name].fill_null(fill.get(name, np.nan)).to_numpy() for name in features], axis=1
    )


def _assert_fed_like(source: Any, rows: pa.Table, features: list[str], **fill: float) -> None:
    np.testing.assert_allclose(
        _fed(source, features, fill), _expected(rows, features, fill), rtol=1e-6
    )


# ----------------------------------------------------------------------------- Iceberg
def test_iceberg_renames_are_read_by_field_id(tmp_path: Path, held: str) -> None:
    """Swapping ``a`` and ``b`` by renames: the new ``a`` is the old ``b``."""
    table = _iceberg(tmp_path, _rows(0, 20, {"a": 1.0, "b": -10.0}))
    with table.update_schema() as update:
        update.rename_column("a", "tmp")
    with table.update_schema() as update:
        update.rename_column("b", "a")
    with table.update_schema() as update:
        update.rename_column("tmp", "b")
    _append(table, _rows(20, 10, {"a": 3.0, "b": 5.0}))
    rows = table.scan().to_arrow()
    assert rows.sort_by("id")["a"][0].as_py() == -10.0  # pyiceberg's own reading
    _assert_fed_like(table, rows, ["a", "b"])
    with table.update_schema() as update:
        update.rename_column("a", "age")
    _assert_fed_like(table, table.scan().to_arrow(), ["age", "b"])


def test_an_iceberg_column_dropped_and_added_again_is_null_in_older_files(
    tmp_path: Path, held: str
) -> None:
    table = _iceberg(tmp_path, _rows(0, 20, {"a": 1.0, "b": 100.0}))
    with table.update_schema() as update:
        update.delete_column("b")
    with table.update_schema() as update:
        update.add_column("b", DoubleType())
    _append(table, _rows(20, 10, {"a": 1.0, "b": 2.0}))
    rows = table.scan().to_arrow()
    assert rows["b"].null_count == 20
    _assert_fed_like(table, rows, ["a", "b"], b=-1.0)
    with pytest.raises(SchemaError, match=r"found a null in column 'b'"):
        _fed(table, ["a", "b"])


def test_a_dropped_iceberg_column_is_not_a_column_of_the_table(tmp_path: Path, held: str) -> None:
    table = _iceberg(tmp_path, _rows(0, 20, {"a": 1.0, "leak": 3.0}))
    with table.update_schema() as update:
        update.delete_column("leak")
    rows = table.scan().to_arrow()
    np.testing.assert_allclose(_fed(table, [fitpipe.OTHER_COLUMNS]), _expected(rows, ["a"]))
    with pytest.raises(SchemaError, match=r"cannot find column 'leak' .*columns \['id', 'a'\]"):
        _fed(table, ["a", "leak"])
    scan = table.scan(selected_fields=("id", "a"))
    assert scan.to_arrow().column_names == ["id", "a"]
    np.testing.assert_allclose(_fed(scan, [fitpipe.OTHER_COLUMNS]), _expected(rows, ["a"]))
    with pytest.raises(SchemaError, match=r"cannot find column 'b'"):
        _fed(_iceberg(tmp_path / "two", _rows(0, 5, {"a": 1.0, "b": 2.0})).scan(
            selected_fields=("id", "a")), ["a", "b"])  # fmt: skip


def test_an_added_iceberg_column_is_null_in_older_files(tmp_path: Path, held: str) -> None:
    table = _iceberg(tmp_path, _rows(0, 20, {"a": 1.0}))
    with table.update_schema() as update:
        update.add_column("c", DoubleType())
    _assert_fed_like(table, table.scan().to_arrow(), ["a", "c"], c=-1.0)  # in no file yet
    _append(table, _rows(20, 10, {"a": 1.0, "c": 4.0}))
    _assert_fed_like(table, table.scan().to_arrow(), ["a", "c"], c=-1.0)
    _assert_fed_like(table, table.scan().to_arrow(), ["c"], c=-1.0)  # no column of the file read


def test_an_iceberg_snapshot_is_read_with_its_own_schema(tmp_path: Path) -> None:
    table = _iceberg(tmp_path, _rows(0, 20, {"a": 1.0, "b": 2.0}))
    first = table.current_snapshot().snapshot_id
    with table.update_schema() as update:
        update.delete_column("b")
    _append(table, _rows(20, 10, {"a": 1.0}))
    old = table.scan(snapshot_id=first)
    assert old.to_arrow().column_names == ["id", "a", "b"]
    _assert_fed_like(old, old.to_arrow(), ["a", "b"])


def test_a_shared_plan_of_a_renamed_iceberg_table_reads_by_field_id(tmp_path: Path) -> None:
    """A worker rebuilding the chief's plan from its bytes finds the columns the same way."""
    table = _iceberg(tmp_path, _rows(0, 20, {"a": 1.0, "b": -10.0}))
    with table.update_schema() as update:
        update.rename_column("a", "old_a")
    with table.update_schema() as update:
        update.rename_column("b", "a")
    scan = table.scan()
    dataset, columns = scan_dataset(scan, "fit"), scan_columns(scan)
    schema = fitpipe.Schema(["a", "old_a"], "id")
    plan = plan_source(dataset, schema, "fit", table=columns)
    rebuilt = plan_from_bytes(plan_bytes(plan), dataset, schema, "fit", Mode.TRAIN, table=columns)
    read = [t for p in rebuilt.pieces for t in p.read(["id", "a", "old_a"], False)]
    got = pa.concat_tables(read).sort_by("id")
    expected = scan.to_arrow().sort_by("id")
    assert (
        got["a"].to_pylist() == expected["a"].to_pylist() == (-10.0 * (np.arange(20) + 1)).tolist()
    )
    assert got["old_a"].to_pylist() == expected["old_a"].to_pylist()


def test_iceberg_files_without_field_ids_are_read_through_the_name_mapping(
    tmp_path: Path, held: str
) -> None:
    """Files added as they are (``add_files``) store no field id: the table's name mapping
    (``schema.name-mapping.default``) gives it, renames included."""
    rows = _rows(0, 20, {"a": 1.0, "b": 2.0})
    table = _iceberg(tmp_path, rows.slice(0, 0))
    pq.write_table(rows, tmp_path / "outside.parquet", row_group_size=ROW_GROUP)
    table.add_files([str(tmp_path / "outside.parquet")])
    with table.update_schema() as update:
        update.rename_column("a", "age")
    got = table.scan().to_arrow()
    assert got.column_names == ["id", "age", "b"]
    assert got["age"].null_count == 0
    _assert_fed_like(table, got, ["age", "b"])


_CHANGES = st.lists(
    st.sampled_from(["append", "add", "rename", "drop", "readd"]), min_size=1, max_size=6
)


@settings(max_examples=6, deadline=None)
@given(changes=_CHANGES, streamed=st.booleans())
def test_iceberg_schema_changes_are_read_as_pyiceberg_reads_them(
    changes: list[str], streamed: bool
) -> None:
    """Any sequence of adds, renames, drops and re-adds, with appends between them."""
    old = limits.RESIDENT_BYTES_LIMIT
    limits.RESIDENT_BYTES_LIMIT = 0 if streamed else old
    try:
        with tempfile.TemporaryDirectory() as folder:
            table = _iceberg(Path(folder), _rows(0, 9, {"c0": 1.0, "c1": 2.0}))
            _change(table, changes)
            rows = table.scan().to_arrow()
            features = [name for name in rows.column_names if name != "id"]
            fill = dict.fromkeys(features, -1.0)
            got = _fed(table, [fitpipe.OTHER_COLUMNS], fill)
            np.testing.assert_allclose(got, _expected(rows, features, fill))
    finally:
        limits.RESIDENT_BYTES_LIMIT = old


def _change(table: Any, changes: list[str]) -> None:
    """Applies the changes: new columns numbered by step, one column besides ``id`` kept.

    ``readd`` drops a column and adds it again under its name (a new field id).
    """
    for step, change in enumerate(changes, start=1):
        names = [field.name for field in table.schema().fields if field.name != "id"]
        chosen = names[step % len(names)]
        if change == "add":
            with table.update_schema() as update:
                update.add_column(f"n{step}", DoubleType())
        elif change == "rename":
            with table.update_schema() as update:
                update.rename_column(chosen, f"r{step}")
        elif change in ("drop", "readd") and (len(names) > 1 or change == "readd"):
            with table.update_schema() as update:
                update.delete_column(chosen)
            if change == "readd":
                with table.update_schema() as update:
                    update.add_column(chosen, DoubleType())
        if change == "append" or step % 2:
            current = [f.name for f in table.schema().fields if f.name != "id"]
            start = len(table.scan().to_arrow())
            _append(table, _rows(start, 9, {name: float(step) for name in current}))


# ----------------------------------------------------------------------------- Delta Lake
def test_a_delta_column_added_by_a_merge_is_null_in_older_files(tmp_path: Path, held: str) -> None:
    path = str(tmp_path / "t")
    deltalake.write_deltalake(path, _rows(0, 20, {"a": 1.0}))
    deltalake.write_deltalake(path, _rows(20, 10, {"a": 2.0, "c": 3.0}), mode="append",
                              schema_mode="merge")  # fmt: skip
    table = deltalake.DeltaTable(path)
    rows = table.to_pyarrow_table()
    assert rows["c"].null_count == 20
    _assert_fed_like(table, rows, ["a", "c"], c=-1.0)


def test_a_delta_table_with_column_mapping_is_read_by_its_names(tmp_path: Path, held: str) -> None:
    path = str(tmp_path / "t")
    first = _rows(0, 20, {"a": 1.0, "b": 2.0}).append_column("part", pa.array(["even", "odd"] * 10))
    config = {"delta.columnMapping.mode": "name"}
    deltalake.write_deltalake(path, first, partition_by=["part"], configuration=config)
    table = deltalake.DeltaTable(path)
    stored = pq.read_schema(table.file_uris()[0]).names
    assert "a" not in stored  # physical names in the files
    # deltalake's own Arrow reading gives nulls under column mapping: its query engine does not
    rows = pa.table(deltalake.QueryBuilder().register("t", table).execute("select * from t"))
    at = rows.schema.get_field_index("part")
    rows = rows.set_column(at, "part", rows["part"].cast(pa.string()))  # (a string view)
    assert rows["a"].null_count == 0
    _assert_fed_like(table, rows, ["a", "b"])
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    output = tmp_path / f"p-{held}.parquet"
    schema = fitpipe.Schema(["a", "b"], "id", passthrough=["id", "part"])
    trainer.predict(table, schema=schema, output=str(output))
    written = pq.read_table(output).sort_by("id")
    assert written["part"].to_pylist() == rows.sort_by("id")["part"].to_pylist()
    expected = trainer.model.predict(_expected(rows, ["a", "b"]), verbose=0).ravel()
    np.testing.assert_allclose(written["prediction"].to_numpy(), expected, rtol=1e-5)
    history = trainer.fit(table, schema=fitpipe.Schema(["a", "b"], "id"), validation_split=0.25,
                          epochs=1, batch_size=8, verbose=0)  # fmt: skip
    assert set(history.history) == {"loss", "val_loss"}


def test_plain_parquet_files_still_refuse_a_column_one_file_lacks(tmp_path: Path) -> None:
    pq.write_table(_rows(0, 5, {"a": 1.0}), tmp_path / "part-0.parquet")
    pq.write_table(_rows(5, 5, {"a": 1.0, "c": 2.0}), tmp_path / "part-1.parquet")
    with pytest.raises(SchemaError, match=r"cannot find column 'c' in .*part-0.*Rewrite"):
        fitpipe.adapt(str(tmp_path), schema=fitpipe.Schema(["a", "c"], "id", fill={"c": 0.0}))
