"""Parquet footer statistics: one walk over the column chunks, and the nulls it sums.

:func:`column_chunks` is the one walk over a file's footer statistics (what
:func:`footer_stats`, ``fitpipe inspect``'s nulls, and the pre-flight check read). A row
group of no rows holds no values: the walk leaves it out, so an empty part file (pyarrow
writes one row group without statistics) adds nothing, where it made every column's
statistics unknown. A chunk belongs to the top-level column the file's schema places it
under, by position (each column's leaves in order), never by its dotted path: a column
``income.usd`` and a struct ``income`` with a field ``usd`` both have the path
``income.usd``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

__all__ = ["ColumnChunk", "FooterStats", "column_chunks", "footer_stats"]


@dataclasses.dataclass(frozen=True)
class ColumnChunk:
    """One column chunk of a row group, as a Parquet footer describes it.

    Attributes:
        column: The top-level column it belongs to.
        path: Its path in the schema (``column`` itself for a plain column).
        rows: The rows of its row group.
        statistics: Its statistics (``pyarrow.parquet.Statistics``), or None.
        group: Its row group's index in the file.
    """

    column: str
    path: str
    rows: int
    statistics: Any
    group: int = 0

    @property
    def plain(self) -> bool:
        """Whether the chunk is its whole column, not a leaf of a struct, list or map.

        A leaf's path is its column's name and more (``s.u``, ``l.list.element``).
        """
        return self.path == self.column


def _leaves(arrow_type: pa.DataType) -> int:
    """The leaf columns (column chunks) Parquet stores a field of ``arrow_type`` as."""
    if isinstance(arrow_type, pa.ExtensionType):
        return _leaves(arrow_type.storage_type)
    if pa.types.is_struct(arrow_type):
        return sum(_leaves(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
    if pa.types.is_map(arrow_type):
        return _leaves(arrow_type.key_type) + _leaves(arrow_type.item_type)
    lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    views = (pa.types.is_list_view, pa.types.is_large_list_view)
    if any(test(arrow_type) for test in (*lists, *views)):
        return _leaves(arrow_type.value_type)
    return 1


def _layout(metadata: Any) -> list[tuple[str, int | None]]:
    """``(top-level column, leaf index)`` of each chunk a row group of the file yields.

    Parquet stores a file's top-level columns one after another, each as its leaves in
    order, as many as the Arrow schema the file reads as says. Where that count does not
    add up to the file's, or a leaf's path lies outside its column, each column yields one
    chunk without statistics (index None): unknown, rather than filed under another column.
    """
    schema = metadata.schema
    fields = schema.to_arrow_schema()
    owners = [field.name for field in fields for _ in range(_leaves(field.type))]
    paths = [schema.column(i).path for i in range(metadata.num_columns)]
    lined_up = len(owners) == len(paths) and all(
        path == name or path.startswith(f"{name}.")
        for name, path in zip(owners, paths, strict=True)
    )
    if not lined_up:
        return [(name, None) for name in fields.names]
    return [(name, leaf) for leaf, name in enumerate(owners)]


def column_chunks(metadata: Any) -> Iterator[ColumnChunk]:
    """The column chunks of every row group of rows of one file's footer, in order.

    The one walk over footer statistics: :func:`footer_stats` and the pre-flight check read
    footers through it. Row groups of no rows are left out: they hold no values (an empty
    file's one row group has no statistics, which would make every column unknown). Each
    chunk is filed under the top-level column the schema places it in (by position, not by
    its dotted path: ``a.b`` is a column's name or a struct's field).

    Args:
        metadata: A file's ``pyarrow.parquet.FileMetaData`` (``fragment.metadata``).

    Yields:
        One :class:`ColumnChunk` per column of each row group of rows.
    """
    layout = _layout(metadata)
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if group.num_rows == 0:
            continue
        for column, leaf in layout:
            if leaf is None:
                yield ColumnChunk(column, column, group.num_rows, None, g)
                continue
            chunk = group.column(leaf)
            yield ColumnChunk(column, chunk.path_in_schema, group.num_rows, chunk.statistics, g)


@dataclasses.dataclass(frozen=True)
class FooterStats:
    """What the Parquet footers of a dataset say, before any data is read.

    Attributes:
        nulls: Nulls per top-level column (None: not recorded in every row group of rows,
            or a struct, list or map column some of whose rows may be null).
        files: Files.
        row_groups: Row groups over all files.
        rows: Rows over all files.
    """

    nulls: dict[str, int | None]
    files: int
    row_groups: int
    rows: int


def _partition_nulls(fragment: Any, rows: int, nulls: dict[str, int | None]) -> None:
    """Counts the rows of a Hive partition whose key is null (``key=__HIVE_DEFAULT_PARTITION__``).

    A partition column is in no footer: its value is the folder's, one for all the file's rows.
    """
    for name, value in pads.get_partition_keys(fragment.partition_expression).items():
        nulls[name] = (nulls.get(name) or 0) + (rows if value is None else 0)


def _column_nulls(chunks: list[ColumnChunk]) -> int | None:
    """The nulls of one column in one row group, from its chunks (None: unknown).

    A plain column's chunk counts them. A leaf of a struct, list or map counts its column's
    null rows and more (a null field, an empty list, a null element): a leaf counting no
    null says the column holds none; otherwise how many is unknown.
    """
    stats = [chunk.statistics for chunk in chunks]
    counts = [s.null_count if s is not None and s.has_null_count else None for s in stats]
    if len(chunks) == 1 and chunks[0].plain:
        return counts[0]
    return 0 if 0 in counts else None


def _file_nulls(metadata: Any, nulls: dict[str, int | None]) -> None:
    """Adds the nulls of each column of one file's row groups to ``nulls`` (None: unknown)."""
    for name in metadata.schema.to_arrow_schema().names:
        nulls.setdefault(name, 0)
    for _, group in itertools.groupby(column_chunks(metadata), key=lambda chunk: chunk.group):
        by_column: dict[str, list[ColumnChunk]] = {}
        for chunk in group:
            by_column.setdefault(chunk.column, []).append(chunk)
        for name, chunks in by_column.items():
            so_far, count = nulls.get(name, 0), _column_nulls(chunks)
            nulls[name] = None if so_far is None or count is None else so_far + count


def footer_stats(dataset: pads.Dataset) -> FooterStats:
    """Nulls per top-level column from the footers' statistics; files, row groups, rows.

    Hive partition columns count the rows of their null partitions. A column of no rows
    (files of no rows alone) has no nulls.

    Args:
        dataset: An opened Parquet dataset (see :func:`fitpipe.columnar.open_dataset`).

    Returns:
        The statistics.
    """
    nulls: dict[str, int | None] = {}
    files = groups = rows = 0
    for fragment in dataset.get_fragments():
        meta = fragment.metadata
        files += 1
        groups += meta.num_row_groups
        rows += meta.num_rows
        _partition_nulls(fragment, meta.num_rows, nulls)
        _file_nulls(meta, nulls)
    return FooterStats(nulls, files, groups, rows)
