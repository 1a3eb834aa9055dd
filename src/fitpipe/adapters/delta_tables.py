"""Delta Lake tables (``deltalake.DeltaTable``), planned from the table's transaction log.

The files come from the log of the table's loaded version (``DeltaTable(path, version=3)``
or ``load_as_version`` for time travel), never from a listing of its folder: files that a
later version removed (by a delete, an overwrite or a compaction) are not read, and files
an older version had are read when that version is loaded. Partition values come from the
log too. Each file's row groups and row counts are then planned like any Parquet source
(:func:`fitpipe.adapters.parquet.parquet_source`): small data read whole, larger data
streamed by row group, ``validation_split`` and sharding at the source included. Rows come
in the order of the files' paths.

The columns are the table's schema at that version, found in each file as the log says
(:mod:`fitpipe.columnar.table_columns`): by their physical names under column mapping
(``delta.columnMapping.mode``: ``name``, or by field id in mode ``id``), else by name. A
column added after a file was written (``schema_mode="merge"``) reads as nulls in that file,
as deltalake's own reader gives (a schema's ``fill`` then applies).

``deltalake`` is imported only when a ``DeltaTable`` is passed (the registry loads this
module lazily, for objects of the ``deltalake`` package).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fitpipe.adapters.arrow_tables import ColumnChunks
from fitpipe.adapters.base import AdaptRequest, ArraySource, BatchSource
from fitpipe.adapters.parquet import ParquetAdapter, parquet_source
from fitpipe.columnar import INT96_UNIT, TableColumns, display_path, field_id, name_below
from fitpipe.errors import DataMismatchError, FitpipeError, UnsupportedInputError, message

__all__ = ["DeltaTableAdapter"]


def describe(table: Any) -> str:
    """The table in messages: its URI and loaded version."""
    return f"the Delta table {table.table_uri} (version {table.version()})"


def _unreadable(table: Any, err: Exception, caller: str) -> UnsupportedInputError:
    """The error for a table deltalake cannot read, worded from what deltalake reports."""
    import deltalake

    features = re.search(r"reader features: (\{[^}]*\})", str(err))
    what = (
        f"it uses the reader features {features.group(1)}, which deltalake "
        f"{deltalake.__version__} cannot read"
        if features
        else f"deltalake cannot read it ({err})"
    )
    return UnsupportedInputError(
        message(
            caller,
            f"cannot read {describe(table)}: {what}",
            "A Delta table is read through deltalake, which reads the tables whose reader "
            "features it supports",
            "Read the rows with a reader that supports them (Spark, or DuckDB's delta "
            f"extension: `duckdb.sql(\"SELECT * FROM delta_scan('{table.table_uri}')\")"
            ".arrow()`) and "
            "pass the `pyarrow.Table`; or rewrite the table without them (for deletion "
            "vectors, Spark's `ALTER TABLE ... DROP FEATURE deletionVectors`); or upgrade "
            "deltalake if a newer version reads them",
            x=table,
        )
    )


def table_dataset(table: Any, caller: str) -> pads.Dataset:
    """The Arrow dataset of the table's files at its loaded version, from the log.

    Its files are named in messages by the table's URI and their path in the table.

    Raises:
        UnsupportedInputError: The table needs a reader feature deltalake lacks (deletion
            vectors, in some versions), as deltalake reports it.
    """
    options = pads.ParquetReadOptions(coerce_int96_timestamp_unit=INT96_UNIT)
    try:
        logged = table.to_pyarrow_dataset(parquet_read_options=options)
    except Exception as err:  # deltalake's DeltaProtocolError and kin: no shared base class
        raise _unreadable(table, err, caller) from err
    name_below(logged.filesystem, table.table_uri)
    # The log lists files in the order they were added: rows come in path order instead.
    fragments = sorted(logged.get_fragments(), key=lambda fragment: fragment.path)
    return pads.FileSystemDataset(fragments, logged.schema, logged.format, logged.filesystem)


def _missing_file(dataset: pads.FileSystemDataset) -> str | None:
    """The first of the dataset's files its filesystem does not find; None if all are there.

    The filesystem is asked once for all of them (one listing, not a request per file).
    """
    paths = list(dataset.files)
    infos = dataset.filesystem.get_file_info(paths)
    for path, info in zip(paths, infos, strict=True):
        if info.type == pafs.FileType.NotFound:
            return path
    return None


def _vacuumed(table: Any, dataset: pads.FileSystemDataset, caller: str) -> Exception | None:
    """The error for a version whose files were removed (by ``vacuum``); None if none was."""
    missing = _missing_file(dataset)
    if missing is None:
        return None
    where = display_path(dataset.filesystem, missing)  # (below the table's URI)
    return DataMismatchError(
        message(
            caller,
            f"cannot read {describe(table)}: its file {where} is gone (a version's files are "
            "removed by `vacuum` once a later version no longer lists them)",
            "A Delta table is read at a version whose files are all kept",
            "Load a version whose files are kept (the current one, or a later one: "
            "`table.history()` lists the versions), or restore the files",
            x=table,
        )
    )


_PHYSICAL_NAME = b"delta.columnMapping.physicalName"
_MAPPING_ID = b"delta.columnMapping.id"


def _locate(
    names: Mapping[str, str], ids: Mapping[str, int], physical: pa.Schema
) -> dict[str, str | None]:
    """Each column's name in a file: by field id (``ids``), else its physical name."""
    by_id = {field_id(field): field.name for field in physical}
    held = set(physical.names)
    located: dict[str, str | None] = {}
    for column, name in names.items():
        where = by_id.get(ids[column]) if column in ids else None
        located[column] = where if where is not None else name if name in held else None
    return located


def table_columns(table: Any, dataset: pads.Dataset) -> TableColumns:
    """The table's columns (the log's schema, as deltalake's dataset gives it) in its files."""
    schema = dataset.schema
    mode = str(table.metadata().configuration.get("delta.columnMapping.mode", "none"))
    names, ids = {}, {}
    for field in schema:
        meta = field.metadata or {}
        mapped = mode != "none" and _PHYSICAL_NAME in meta
        names[field.name] = meta[_PHYSICAL_NAME].decode() if mapped else field.name
        if mode == "id" and _MAPPING_ID in meta:
            ids[field.name] = int(meta[_MAPPING_ID])
    return TableColumns(schema, functools.partial(_locate, names, ids))


class DeltaTableAdapter:
    """Takes a ``deltalake.DeltaTable`` at its loaded version."""

    name = "delta"
    accepts = "a deltalake.DeltaTable (at any version), with `schema=`"
    supports = ParquetAdapter.supports

    def can_adapt(self, x: Any) -> bool:
        """True for a ``deltalake.DeltaTable``."""
        from deltalake import DeltaTable

        return isinstance(x, DeltaTable)

    def adapt(self, request: AdaptRequest) -> ArraySource | BatchSource | ColumnChunks:
        """Plans the table's files from its log, then reads them as Parquet."""
        table = request.x
        dataset = table_dataset(table, request.caller)
        columns = table_columns(table, dataset)
        try:
            return parquet_source(request, dataset, describe(table), "a Delta table", columns)
        except (FitpipeError, OSError) as err:
            if isinstance(err, FileNotFoundError) or isinstance(err.__cause__, FileNotFoundError):
                gone = _vacuumed(table, dataset, request.caller)
                if gone is not None:
                    raise gone from err
            raise
