"""The columns of a table format's data files, found by the table's metadata, not by name.

A table format (Delta Lake, Iceberg) keeps its own schema, apart from its files': a column
renamed after a file was written keeps its old name in that file (Iceberg matches it by
field id), a column added later is not in the older files, a column dropped (and added
again under its old name) is still in them, and Delta's column mapping stores every column
under a physical name (``col-<uuid>``). The table adapters describe how a file's columns are
found (:class:`TableColumns`): the table's schema in Arrow types (the source's columns, in
order) and, given one file's footer schema, where each of the table's columns is in it. A
column a file lacks is read as nulls of its type, as the formats' own readers give (a
schema's ``fill`` then applies); a column no file of the table holds takes the table's
type. A partition column (Delta's partition values, Iceberg's identity-partitioned columns)
comes from the file's partition expression where the file lacks it: under the column's own
name (Delta), or under a key of its own that no file column can shadow (Iceberg, whose
files may hold another column under a partition column's name, after renames).

Plain Parquet files and folders have no :class:`TableColumns`: their columns are matched
by name, and a column one file lacks is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

__all__ = ["FIELD_ID", "FileColumns", "TableColumns", "field_id", "read_located"]

#: The key of a Parquet column's field id in its Arrow field's metadata.
FIELD_ID = b"PARQUET:field_id"

#: Where each of a table's columns is in one file: the file's column (or the partition
#: value's name), or None where the file lacks it.
Located = dict[str, str | None]


def field_id(field: pa.Field) -> int | None:
    """The Parquet field id a file stores for ``field``, or None."""
    raw = (field.metadata or {}).get(FIELD_ID)
    return None if raw is None else int(raw)


@dataclasses.dataclass(frozen=True)
class TableColumns:
    """How a table's columns are found in its data files.

    Attributes:
        schema: The table's columns, in order, in Arrow types (their types where no file
            holds them; the files' types, unified, where some do).
        locate: Given one file's footer schema, each column's name in that file, or None
            where the file lacks it (columns left out: lacking too).
        keys: The name of a column's value in a file's partition expression, where it is
            not the column's own name.
    """

    schema: pa.Schema
    locate: Callable[[pa.Schema], Mapping[str, str | None]]
    keys: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def located(self, physical: pa.Schema, partitions: set[str]) -> Located:
        """Where each column is in a file of footer schema ``physical``.

        A column the file lacks that its partition expression gives is read from there
        (located at its key in the expression).
        """
        found = self.locate(physical)
        located: Located = {}
        for name in self.schema.names:
            key = self.keys.get(name, name)
            located[name] = found.get(name) or (key if key in partitions else None)
        return located

    def as_logical(self, physical: pa.Schema, located: Located) -> pa.Schema:
        """A file's footer schema with the table's names: each column the file holds."""
        return pa.schema(
            [
                physical.field(index).with_name(name)
                for name, where in located.items()
                if where is not None
                for index in physical.get_all_field_indices(where)
            ]
        )


class FileColumns:
    """Where a table's columns are in one file: found from its footer when first needed.

    One for all the row groups of a file. A plan made on this worker gives what it found
    while planning; a plan rebuilt from another worker's bytes reads the footer at the
    file's first read.
    """

    __slots__ = ("_located", "fragment", "table")

    def __init__(self, table: TableColumns, fragment: Any, located: Located | None = None) -> None:
        self.table, self.fragment, self._located = table, fragment, located

    def located(self) -> Located:
        """Where each of the table's columns is in the file (see :meth:`TableColumns.located`)."""
        if self._located is None:
            partitions = set(pads.get_partition_keys(self.fragment.partition_expression))
            self._located = self.table.located(self.fragment.physical_schema, partitions)
        return self._located

    def stored_type(self, column: str) -> pa.DataType | None:
        """The type the file stores ``column`` as (None: the file lacks it)."""
        where = self.located().get(column)
        physical = self.fragment.physical_schema
        if where is None or physical.get_field_index(where) < 0:
            return None
        return physical.field(where).type


def read_located(
    part: Any, columns: list[str], schema: pa.Schema, located: Located, **options: Any
) -> pa.Table:
    """Reads ``columns`` of a fragment ``part`` by where the file holds them, renamed.

    Each column the file holds is read from its own column there (of the type ``schema``
    gives it), then takes the table's name; a column it lacks is nulls of that type.

    Args:
        part: The fragment (one row group of a file).
        columns: The table's columns to read, in the order returned.
        schema: The source's schema (the table's names, the types read as).
        located: Where each column is in the file.
        **options: Passed on to the fragment's ``to_table``.
    """
    held = [column for column in columns if located.get(column) is not None]
    wheres = [located[column] for column in held]
    read_schema = pa.schema(
        [
            schema.field(column).with_name(str(where))
            for column, where in zip(held, wheres, strict=True)
        ]
    )
    table = part.to_table(columns=wheres, schema=read_schema, **options)
    position = {column: index for index, column in enumerate(held)}
    arrays = [
        table.column(position[column])
        if column in position
        else pa.chunked_array([pa.nulls(table.num_rows, schema.field(column).type)])
        for column in columns
    ]
    return pa.Table.from_arrays(arrays, names=columns)
