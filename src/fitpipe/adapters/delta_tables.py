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
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from fitpipe.adapters.arrow_tables import ColumnChunks
from fitpipe.adapters.base import AdaptRequest, ArraySource, BatchSource
from fitpipe.adapters.parquet import ParquetAdapter, parquet_source
from fitpipe.columnar import INT96_UNIT, TableColumns, field_id
from fitpipe.errors import UnsupportedInputError, message

__all__ = ["DeltaTableAdapter"]


def describe(table: Any) -> str:
    """The table in messages: its URI and loaded version."""
    return f"the Delta table {table.table_uri} (version {table.version()})"


def table_dataset(table: Any, caller: str) -> pads.Dataset:
    """The Arrow dataset of the table's files at its loaded version, from the log.

    Raises:
        UnsupportedInputError: The table needs a reader feature deltalake's Arrow dataset
            lacks (deletion vectors, column mapping in some versions).
    """
    options = pads.ParquetReadOptions(coerce_int96_timestamp_unit=INT96_UNIT)
    try:
        logged = table.to_pyarrow_dataset(parquet_read_options=options)
    except Exception as err:  # deltalake's DeltaProtocolError and kin: no shared base class
        raise UnsupportedInputError(
            message(
                caller,
                f"cannot read {describe(table)} as Parquet files ({err})",
                "A Delta table is read through deltalake's Arrow dataset, which supports "
                "tables without deletion vectors",
                "Purge the deletion vectors (e.g. Spark's `REORG TABLE ... APPLY (PURGE)`), "
                "or pass `pyarrow.Table` of the rows (`table.to_pyarrow_table()`)",
                x=table,
            )
        ) from err
    # The log lists files in the order they were added: rows come in path order instead.
    fragments = sorted(logged.get_fragments(), key=lambda fragment: fragment.path)
    return pads.FileSystemDataset(fragments, logged.schema, logged.format, logged.filesystem)


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
        return parquet_source(request, dataset, describe(table), "a Delta table", columns)
