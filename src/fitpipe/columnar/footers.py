"""Parquet footer statistics: one walk over the column chunks, and the nulls it sums.

:func:`column_chunks` is the one walk over a file's footer statistics (what
:func:`footer_stats`, ``fitpipe inspect``'s nulls, and the pre-flight check read). A row
group of no rows holds no values: the walk leaves it out, so an empty part file (pyarrow
writes one row group without statistics) adds nothing, where it made every column's
statistics unknown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

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
    """

    column: str
    path: str
    rows: int
    statistics: Any


def column_chunks(metadata: Any) -> Iterator[ColumnChunk]:
    """The column chunks of every row group of rows of one file's footer, in order.

    The one walk over footer statistics: :func:`footer_stats` and the pre-flight check read
    footers through it. Row groups of no rows are left out: they hold no values (an empty
    file's one row group has no statistics, which would make every column unknown).

    Args:
        metadata: A file's ``pyarrow.parquet.FileMetaData`` (``fragment.metadata``).

    Yields:
        One :class:`ColumnChunk` per column of each row group of rows.
    """
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if group.num_rows == 0:
            continue
        for c in range(group.num_columns):
            chunk = group.column(c)
            path = chunk.path_in_schema
            yield ColumnChunk(path.split(".", 1)[0], path, group.num_rows, chunk.statistics)


@dataclasses.dataclass(frozen=True)
class FooterStats:
    """What the Parquet footers of a dataset say, before any data is read.

    Attributes:
        nulls: Nulls per top-level column (None: not recorded in every row group of rows).
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
        for name in meta.schema.to_arrow_schema().names:
            nulls.setdefault(name, 0)
        for chunk in column_chunks(meta):
            stats, so_far = chunk.statistics, nulls.get(chunk.column, 0)
            known = stats is not None and stats.has_null_count
            if so_far is not None:
                nulls[chunk.column] = so_far + stats.null_count if known else None
    return FooterStats(nulls, files, groups, rows)
