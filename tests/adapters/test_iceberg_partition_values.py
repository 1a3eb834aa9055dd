"""Iceberg data files lacking an identity-partitioned column: the value is the partition's.

Files imported from a Hive-style layout (Spark's ``add_files`` or ``migrate``) keep a
partition's value in their folder's name only: the Iceberg manifest records it as the
file's partition, and Iceberg's readers (the spec's column projection) give it for every
row of a file lacking the column. The oracle is pyiceberg's ``scan.to_arrow()``, which does.

How the files are registered: pyiceberg's ``add_files`` takes such a file but records a
null partition (it infers partitions from the files' column statistics), so the tests do
what Spark's ``add_files`` does: write each file without its partition columns under a
Hive-style folder (``k=3/s=a/d=2020-01-02/``), set the table's name mapping (the files
store no field id), and commit a ``DataFile`` whose partition record holds the folder's
values (a transaction's ``update_snapshot().fast_append().append_data_file``).

Rows are compared in ``id`` order; imported files are written below ``import/`` and their
ids rise in path order (the order fitpipe reads files in), before any file the table's own
``append`` writes (below ``ns/``), whose ids come last.
"""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest_arrow import linear_model
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters.iceberg_tables import scan_columns, scan_dataset
from fitpipe.columnar import plan_bytes, plan_from_bytes, plan_source
from fitpipe.errors import SchemaError
from fitpipe.schemas import Mode
from fitpipe.testing.keras_diff import assert_weights_close, make_twins

pytest.importorskip("pyiceberg")
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import BucketTransform, IdentityTransform, Transform
from pyiceberg.typedef import Record
from pyiceberg.types import DateType, DoubleType, LongType, NestedField, StringType

#: Files are written in row groups of this many rows, so streamed reads read several.
ROW_GROUP = 4
EPOCH = datetime.date(1970, 1, 1)
#: The table's columns: ``k``, ``s`` and ``d`` are partitioned by identity (by default).
SCHEMA = Schema(
    NestedField(1, "id", DoubleType(), required=False),
    NestedField(2, "k", LongType(), required=False),
    NestedField(3, "s", StringType(), required=False),
    NestedField(4, "d", DateType(), required=False),
    NestedField(5, "x", DoubleType(), required=False),
)
#: Values of (k, s, d) partitions: several files, two of them in one partition.
PARTITIONS = [
    (3, "a", datetime.date(2020, 1, 2)),
    (-7, "b", datetime.date(1969, 12, 31)),
    (3, "a", datetime.date(2020, 1, 2)),
    (40, "ünï", datetime.date(2024, 2, 29)),
]
FEATURES = fitpipe.Schema({"n": ["k", "d", "x"], "s": "s"}, "id")


@pytest.fixture(params=["in-memory", "streamed"])
def held(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both Parquet paths: small data read whole, and streamed by row group."""
    if request.param == "streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    return str(request.param)


def _table(path: Path, transforms: Mapping[str, Transform[Any, Any]] | None = None) -> Any:
    """An empty table of :data:`SCHEMA`, partitioned by ``transforms`` (identity on k, s, d)."""
    transforms = transforms or dict.fromkeys(["k", "s", "d"], IdentityTransform())
    fields = [
        PartitionField(SCHEMA.find_field(name).field_id, 1000 + i, transform, f"{name}_p")
        for i, (name, transform) in enumerate(transforms.items())
    ]
    path.mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog("local", uri=f"sqlite:///{path}/catalog.db", warehouse=f"file://{path}")
    catalog.create_namespace("ns")
    return catalog.create_table("ns.t", schema=SCHEMA, partition_spec=PartitionSpec(*fields))


def _rows(start: int, n: int) -> pa.Table:
    """Rows ``start..start+n`` of the columns no partition holds: ``id`` and ``x``."""
    i = np.arange(start, start + n, dtype=np.float64)
    return pa.table({"id": i, "x": np.cos(i)})


def _import(table: Any, folder: Path, files: Sequence[tuple[Any, ...]], rows: int = 9) -> None:
    """Imports a file of ``rows`` rows per partition record of ``files``, lacking its columns.

    A record holds the partition's value of each partition field, in the spec's order, as
    the manifest stores it (a date as days); folders are named by the values, escaped as
    Hive escapes them. Ids rise in path order.
    """
    data_files, fields = [], table.spec().fields
    for i, values in enumerate(files):
        names = [f"{f.name}={quote(str(v), safe='')}" for f, v in zip(fields, values, strict=True)]
        path = folder.joinpath(f"{i:03d}", *names, "part-0.parquet")
        path.parent.mkdir(parents=True)
        pq.write_table(_rows(rows * i, rows), path, row_group_size=ROW_GROUP)
        record = Record(*[(v - EPOCH).days if isinstance(v, datetime.date) else v for v in values])
        data_files.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=str(path),
                file_format=FileFormat.PARQUET,
                partition=record,
                record_count=rows,
                file_size_in_bytes=path.stat().st_size,
                spec_id=table.spec().spec_id,
            )
        )
    mapping = table.schema().name_mapping.model_dump_json()
    with table.transaction() as transaction:
        transaction.set_properties(**{"schema.name-mapping.default": mapping})
        with transaction.update_snapshot().fast_append() as append:
            for data_file in data_files:
                append.append_data_file(data_file)


def _fed(source: Any, schema: fitpipe.Schema) -> dict[str, np.ndarray]:
    """Each input fitpipe feeds, in ``id`` order (one input: under ``all``)."""
    with fitpipe.adapt(source, schema=schema, batch_size=5, shuffle=False) as pipeline:
        got = list(pipeline)
    ids = np.concatenate([np.asarray(b[1]) for b in got]).ravel()
    inputs = [b[0] if isinstance(b[0], dict) else {"all": b[0]} for b in got]
    order = np.argsort(ids)
    return {n: np.concatenate([np.asarray(i[n]) for i in inputs])[order] for n in inputs[0]}


def _expected(rows: pa.Table, fill: Mapping[str, float] | None = None) -> np.ndarray:
    """The oracle's ``k``, ``d`` (days) and ``x``, in ``id`` order, nulls filled."""
    rows, fill = rows.sort_by("id"), fill or {}
    columns = {"k": rows["k"], "d": rows["d"].cast(pa.int32()), "x": rows["x"]}
    return np.stack(
        [
            columns[n].cast(pa.float64()).fill_null(fill.get(n, np.nan)).to_numpy()
            for n in ["k", "d", "x"]
        ],
        axis=1,
    )


def _assert_fed_like_pyiceberg(table: Any) -> None:
    rows = table.scan().to_arrow()
    assert rows["k"].null_count == 0  # pyiceberg's own reading gives the partition values
    got = _fed(table, FEATURES)
    np.testing.assert_allclose(got["n"], _expected(rows), rtol=1e-6)
    assert [s.decode() for s in got["s"].ravel()] == rows.sort_by("id")["s"].to_pylist()


# ----------------------------------------------------------------------------- identity
def test_files_lacking_identity_partitioned_columns_read_their_partition_values(
    tmp_path: Path, held: str
) -> None:
    """An int, a string and a date partition, several files, one partition in two files."""
    table = _table(tmp_path)
    _import(table, tmp_path / "import", PARTITIONS)
    _assert_fed_like_pyiceberg(table)
    fill = fitpipe.Schema(["k", "d", "x"], "id", fill={"k": -1, "d": -1})
    np.testing.assert_allclose(_fed(table, fill)["all"], _expected(table.scan().to_arrow()))


def test_imported_files_and_files_holding_the_columns_read_alike(tmp_path: Path, held: str) -> None:
    """A file the table's ``append`` wrote holds its partition columns: read from them."""
    table = _table(tmp_path)
    _import(table, tmp_path / "import", PARTITIONS[:2])
    appended = _rows(18, 6).append_column("k", pa.array([5, 5, 6, 6, 6, 6], pa.int64()))
    appended = appended.append_column("s", pa.array(["c"] * 3 + ["a"] * 3))
    appended = appended.append_column("d", pa.array([EPOCH] * 6, pa.date32()))
    table.append(appended.select(["id", "k", "s", "d", "x"]).cast(table.schema().as_arrow()))
    _assert_fed_like_pyiceberg(table)


@pytest.mark.slow
def test_a_table_of_imported_files_trains_like_pyiceberg_rows(tmp_path: Path) -> None:
    """``Trainer.fit`` on the table gives the History of fitting pyiceberg's rows."""
    table = _table(tmp_path, {"k": IdentityTransform()})
    _import(table, tmp_path / "import", [(1,), (-2,), (3,), (1,)])
    rows = table.scan().to_arrow().sort_by("id").select(["id", "k", "x"])
    rows = rows.set_column(1, "k", rows["k"].cast(pa.float64()))
    schema = fitpipe.Schema(["k", "x"], "id")
    histories = []
    ref, twin = make_twins(lambda: linear_model(2))
    for source, model in [(rows, ref), (table, twin)]:
        trainer = fitpipe.Trainer(model)
        trainer.compile(optimizer="sgd", loss="mse")
        keras.utils.set_random_seed(1)
        history = trainer.fit(
            source, schema=schema, batch_size=8, epochs=2, shuffle=False, verbose=0
        )
        histories.append(history.history)
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"], rtol=1e-6)
    assert_weights_close(ref, twin, rtol=1e-6, atol=1e-7)


def test_a_column_another_file_column_is_named_like_reads_the_partition_value(
    tmp_path: Path, held: str
) -> None:
    """Renames: the table's ``x`` is the partition column ``k``, the file's ``x`` is ``v``.

    The file stores field ids (no name mapping): its ``x`` is found as the table's ``v``,
    and the partition value as the table's ``x`` (no column of the file shadows it).
    """
    table = _table(tmp_path, {"k": IdentityTransform()})
    ids = {"id": 1, "x": 5}
    rows = _rows(0, 9)
    stored = pa.schema(
        [rows.schema.field(n).with_metadata({"PARQUET:field_id": str(i)}) for n, i in ids.items()]
    )
    path = tmp_path / "import" / "k=4" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(rows.cast(stored), path, row_group_size=ROW_GROUP)
    data_file = DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=str(path),
        file_format=FileFormat.PARQUET,
        partition=Record(4),
        record_count=9,
        file_size_in_bytes=path.stat().st_size,
        spec_id=table.spec().spec_id,
    )
    with table.transaction() as transaction:
        with transaction.update_snapshot().fast_append() as append:
            append.append_data_file(data_file)
    with table.update_schema() as update:
        update.rename_column("x", "v")
    with table.update_schema() as update:
        update.rename_column("k", "x")
    expected = table.scan().to_arrow().sort_by("id")
    assert expected["x"].to_pylist() == [4] * 9
    got = _fed(table, fitpipe.Schema(["x", "v"], "id"))["all"]
    np.testing.assert_allclose(got[:, 0], expected["x"].to_numpy())
    np.testing.assert_allclose(got[:, 1], expected["v"].to_numpy())


# ----------------------------------------------------------------------------- no value
def test_other_transforms_and_null_partition_values_read_nulls_as_pyiceberg(
    tmp_path: Path, held: str
) -> None:
    """A bucket's number is not the column's value, nor is a null partition a value: nulls
    where the file lacks the column, as Iceberg's readers give (a ``fill`` applies)."""
    table = _table(tmp_path, {"k": BucketTransform(4), "s": IdentityTransform()})
    _import(table, tmp_path / "import", [(1, "a"), (3, None)])
    rows = table.scan().to_arrow().sort_by("id")
    assert rows["k"].null_count == 18 and rows["s"].null_count == 9
    schema = fitpipe.Schema({"k": "k", "s": "s"}, "id", fill={"k": -1, "s": "?"})
    got = _fed(table, schema)
    np.testing.assert_array_equal(got["k"].ravel(), rows["k"].fill_null(-1).to_numpy())
    assert [s.decode() for s in got["s"].ravel()] == rows["s"].fill_null("?").to_pylist()
    with pytest.raises(SchemaError, match=r"found a null in column 'k'"):
        _fed(table, fitpipe.Schema(["k", "x"], "id"))


# ----------------------------------------------------------------------------- plans
def test_a_shared_plan_of_imported_files_reads_their_partition_values(tmp_path: Path) -> None:
    """A worker rebuilding the chief's plan from its bytes gets each file's values: from the
    dataset's fragments, or from the plan's own (pickled) partition expressions."""
    table = _table(tmp_path)
    _import(table, tmp_path / "import", PARTITIONS)
    scan = table.scan()
    dataset, columns = scan_dataset(scan, "fit"), scan_columns(scan)
    schema = fitpipe.Schema(["k", "d", "x"], "id", passthrough=["s"])
    plan = plan_source(dataset, schema, "fit", table=columns)
    expected = scan.to_arrow().sort_by("id").select(["id", "k", "s", "d", "x"])
    paths = [fragment.path for fragment in dataset.get_fragments()]
    for x in (dataset, paths):
        rebuilt = plan_from_bytes(plan_bytes(plan), x, schema, "fit", Mode.TRAIN, table=columns)
        read = [t for p in rebuilt.pieces for t in p.read(expected.column_names, False)]
        got = pa.concat_tables(read).sort_by("id")
        assert got.cast(expected.schema).to_pylist() == expected.to_pylist()


_PARTITION = st.tuples(
    st.integers(-(2**40), 2**40),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
    st.dates(datetime.date(1900, 1, 1), datetime.date(2200, 12, 31)),
)


@settings(max_examples=8, deadline=None)
@given(files=st.lists(_PARTITION, min_size=1, max_size=4), streamed=st.booleans())
def test_any_identity_partition_values_are_read_as_pyiceberg_reads_them(
    files: list[tuple[int, str, datetime.date]], streamed: bool
) -> None:
    old = limits.RESIDENT_BYTES_LIMIT
    limits.RESIDENT_BYTES_LIMIT = 0 if streamed else old
    try:
        with tempfile.TemporaryDirectory() as folder:
            table = _table(Path(folder))
            _import(table, Path(folder) / "import", files, rows=5)
            _assert_fed_like_pyiceberg(table)
    finally:
        limits.RESIDENT_BYTES_LIMIT = old
