"""Apache Iceberg tables (pyiceberg ``Table`` or ``DataScan``), planned from their metadata.

The data files come from the snapshot's manifests (``scan.plan_files()``: the current
snapshot of a ``Table``, or the one a scan names, ``table.scan(snapshot_id=...)``, for time
travel), never from a listing of the table's folder. The files are opened with the table's
own file IO (its catalog's credentials included), then their row groups and row counts are
planned like any Parquet source (:func:`fitpipe.adapters.parquet.parquet_source`). Rows come
in the order of the files' paths.

Deletes that rewrote files (pyiceberg's ``delete``, copy-on-write) are in the snapshot's file
list. Delete files (merge-on-read, written by Spark or Flink) and a scan's row filter are
not applied from metadata: they are refused with an error saying how to read the table.

The columns are the scan's projected schema (``scan.projection()``: the schema of its
snapshot, less the fields ``selected_fields`` leaves out), found in each file by field id
(:mod:`fitpipe.columnar.table_columns`), as Iceberg's readers find them: a column renamed
after a file was written is read from its old name there, a column added later (or dropped
and added again under its old name) reads as nulls in the older files (a schema's ``fill``
then applies), and a dropped column is not a column of the source. A file without field ids
is matched through the table's name mapping (``schema.name-mapping.default``), else by name.

A file lacking an identity-partitioned column (files imported from a Hive-style layout, by
Spark's ``add_files`` or ``migrate``, keep the value in the folder's name only) reads it as
the file's partition value in the manifest, as the Iceberg spec's column projection says
and Iceberg's readers give: each file's fragment has a partition expression of those
values, under keys no file column can shadow (:class:`~fitpipe.columnar.TableColumns`'s
``keys``). A file holding the column is read from it. A null partition value, and a column
partitioned by any other transform (``bucket``, ``truncate``, ``day``...: the value is not
recoverable from the partition), read as nulls where the file lacks the column, as
pyiceberg and Spark read them: a schema's ``fill`` applies, or the null is refused.

``pyiceberg`` is imported only when one of its objects is passed (the registry loads this
module lazily, for objects of the ``pyiceberg`` package).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fitpipe.adapters.arrow_tables import ColumnChunks
from fitpipe.adapters.base import AdaptRequest, ArraySource, BatchSource
from fitpipe.adapters.parquet import ParquetAdapter, parquet_source
from fitpipe.columnar import TableColumns, field_id, parquet_format
from fitpipe.errors import DataMismatchError, UnsupportedInputError, message

__all__ = ["IcebergTableAdapter"]


def _scan(x: Any) -> Any:
    from pyiceberg.table import Table

    return x.scan() if isinstance(x, Table) else x


def describe(scan: Any) -> str:
    """The table in messages: its location and snapshot."""
    snapshot = scan.snapshot()
    if snapshot is not None:
        at = f"snapshot {snapshot.snapshot_id}"
    else:
        asked = getattr(scan, "snapshot_id", None)
        at = "no snapshot" if asked is None else f"unknown snapshot {asked}"
    return f"the Iceberg table {scan.table_metadata.location} ({at})"


def _no_rows(scan: Any, caller: str) -> DataMismatchError:
    """The error for a scan of no rows: no snapshot, an unknown one, or one of no data file."""
    snapshots = [s.snapshot_id for s in scan.table_metadata.snapshots]
    known = ", ".join(map(str, snapshots[-5:])) if snapshots else "none yet"
    listed = f"the latest last: {known}; `table.snapshots()` lists them all"
    asked = getattr(scan, "snapshot_id", None)
    if asked is not None and scan.snapshot() is None:
        what = (
            f"cannot read the Iceberg table {scan.table_metadata.location} at snapshot "
            f"{asked}: the table has no such snapshot"
        )
        expected = "`table.scan(snapshot_id=...)` names one of the table's snapshots"
        fix = f"Scan one of its snapshots ({listed})"
    else:
        what = f"got {describe(scan)} with 0 rows"
        expected = "Training and inference need at least one row"
        fix = f"Append rows, or scan a snapshot that has rows (its snapshots, {listed})"
    return DataMismatchError(message(caller, what, expected, fix, x=scan))


def _refuse(scan: Any, what: str, fix: str, caller: str) -> UnsupportedInputError:
    return UnsupportedInputError(
        message(
            caller,
            f"cannot plan {describe(scan)} from its metadata: {what}",
            "An Iceberg table is read as the Parquet files its snapshot lists, without row "
            "filters or delete files",
            fix,
            x=scan,
        )
    )


def _filesystem(scan: Any, location: str) -> tuple[pafs.FileSystem, str]:
    """The table's file IO's filesystem for a file, and the file's path in it."""
    io = scan.io
    if hasattr(io, "parse_location") and hasattr(io, "fs_by_scheme"):
        scheme, netloc, path = io.parse_location(location)
        return io.fs_by_scheme(scheme, netloc), path
    filesystem, path = pafs.FileSystem.from_uri(location)
    return filesystem, path


def _locate(
    ids: Mapping[str, int], mapped: Mapping[str, int], physical: pa.Schema
) -> dict[str, str | None]:
    """Each column's name in a file, by field id (from the name mapping where none is stored).

    A file storing no field id, of a table without a name mapping, is matched by name.
    """
    found = {field.name: field_id(field) for field in physical}
    if not mapped and all(found_id is None for found_id in found.values()):
        return {column: column if column in found else None for column in ids}
    by_id: dict[int, str] = {}
    for name, stored in found.items():
        known = stored if stored is not None else mapped.get(name)
        if known is not None:
            by_id.setdefault(known, name)
    return {column: by_id.get(wanted) for column, wanted in ids.items()}


def _partition_key(field_id: int) -> str:
    """A column's key in a file's partition expression, by its field id (no file's name)."""
    return f"fitpipe.iceberg.partition.{field_id}"


def _projected(scan: Any) -> tuple[dict[str, int], pa.Schema]:
    """The field id of each projected column, and the projection in Arrow types."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    projected = scan.projection()
    ids = {field.name: field.field_id for field in projected.fields}
    return ids, schema_to_pyarrow(projected)


def scan_columns(scan: Any) -> TableColumns:
    """The scan's projected columns, in Arrow types, found in each file by field id.

    A column a file lacks is read from the file's partition expression where that gives it
    (an identity-partitioned column: see :func:`scan_dataset`).
    """
    ids, schema = _projected(scan)
    mapping = scan.table_metadata.name_mapping()
    mapped = {} if mapping is None else _mapped_ids(mapping)
    keys = {name: _partition_key(wanted) for name, wanted in ids.items()}
    return TableColumns(schema, functools.partial(_locate, ids, mapped), keys)


def _mapped_ids(mapping: Any) -> dict[str, int]:
    """The field id of each top-level name a name mapping gives one."""
    return {name: field.field_id for field in mapping for name in field.names if field.field_id}


def scan_dataset(scan: Any, caller: str) -> pads.Dataset:
    """The Arrow dataset of the data files a scan's snapshot lists.

    Raises:
        UnsupportedInputError: The scan has a row filter or a limit, a file is not Parquet,
            or a file has delete files.
        DataMismatchError: The scan has no rows: the table has no snapshot, the scan's
            snapshot is unknown, or it lists no data file.
    """
    from pyiceberg.expressions import AlwaysTrue

    if scan.snapshot() is None:
        raise _no_rows(scan, caller)
    if scan.row_filter != AlwaysTrue() or scan.limit is not None:
        fix = "Scan without `row_filter` and `limit`, or pass `scan.to_arrow()` (read in memory)"
        raise _refuse(scan, "the scan has a row filter or a limit", fix, caller)
    ids, schema = _projected(scan)
    types = {wanted: schema.field(name).type for name, wanted in ids.items()}
    files: list[tuple[str, pc.Expression]] = []
    filesystem: pafs.FileSystem | None = None
    for task in scan.plan_files():
        if task.delete_files:
            fix = (
                "Compact the table (rewrite its data files, e.g. Spark's "
                "`rewrite_data_files`), or pass `scan.to_arrow()` (read in memory)"
            )
            raise _refuse(scan, f"{task.file.file_path} has delete files", fix, caller)
        if str(task.file.file_format).upper().rsplit(".", 1)[-1] != "PARQUET":
            fix = "Pass `scan.to_arrow()` (read in memory)"
            raise _refuse(scan, f"{task.file.file_path} is not Parquet", fix, caller)
        filesystem, path = _filesystem(scan, task.file.file_path)
        files.append((path, _partition_values(scan, task.file, types, caller)))
    if not files:
        raise _no_rows(scan, caller)
    files.sort(key=lambda file: file[0])
    paths = [path for path, _ in files]
    inferred = pads.dataset(paths, filesystem=filesystem, format=parquet_format())
    return pads.FileSystemDataset.from_paths(
        paths,
        schema=inferred.schema,
        format=inferred.format,
        filesystem=inferred.filesystem,
        partitions=[expression for _, expression in files],
    )


def _partition_values(
    scan: Any, data_file: Any, types: Mapping[int, pa.DataType], caller: str
) -> pc.Expression:
    """A data file's partition expression: the values of its identity-partitioned columns.

    Only projected top-level columns (``types``, by field id) with a value (not null) are
    given, each of the column's Arrow type under its key (:func:`_partition_key`).
    """
    from pyiceberg.transforms import IdentityTransform

    spec = scan.table_metadata.specs()[data_file.spec_id]
    values: list[pc.Expression] = []
    for position, field in enumerate(spec.fields):
        value = data_file.partition[position]
        wanted = types.get(field.source_id)
        if not isinstance(field.transform, IdentityTransform) or wanted is None or value is None:
            continue
        try:
            scalar = pa.scalar(value, type=wanted)
        except (pa.ArrowException, TypeError, ValueError) as err:
            what = f"{data_file.file_path}'s partition value {value!r} is no {wanted} ({err})"
            raise _refuse(scan, what, "Pass `scan.to_arrow()` (read in memory)", caller) from err
        values.append(pc.field(_partition_key(field.source_id)) == scalar)
    return functools.reduce(operator.and_, values) if values else pc.scalar(True)


class IcebergTableAdapter:
    """Takes a pyiceberg ``Table`` (its current snapshot) or ``DataScan`` (any snapshot)."""

    name = "iceberg"
    accepts = "a pyiceberg Table or DataScan (`table.scan(snapshot_id=...)`), with `schema=`"
    supports = ParquetAdapter.supports

    def can_adapt(self, x: Any) -> bool:
        """True for a pyiceberg ``Table`` or ``DataScan``."""
        from pyiceberg.table import DataScan, Table

        return isinstance(x, (Table, DataScan))

    def adapt(self, request: AdaptRequest) -> ArraySource | BatchSource | ColumnChunks:
        """Plans the snapshot's data files from its manifests, then reads them as Parquet."""
        scan = _scan(request.x)
        dataset = scan_dataset(scan, request.caller)
        columns = scan_columns(scan)
        return parquet_source(request, dataset, describe(scan), "an Iceberg table", columns)
