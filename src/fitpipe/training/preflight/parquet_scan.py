"""Parquet for the pre-flight check: footer statistics alone, or a streaming scan.

* :func:`footer_stats` answers from the row groups' statistics, reading no data: rows, nulls,
  and the minimum and maximum of every numeric column (enough for the null check, the range
  of sparse and binary labels, and constant columns). Parquet writers leave NaN out of the
  statistics, so NaN is only found by a scan; an infinity shows as the minimum or maximum.
* :func:`stream_scan` reads the schema's feature, target and weight columns (no other), a
  record batch at a time, with a progress line on stderr.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.dataset as pads

from fitpipe.columnar import column_chunks, read_pool
from fitpipe.schemas import Schema
from fitpipe.training.preflight.scan import Scanner, role_columns, scan_batches
from fitpipe.training.preflight.stats import ColumnStats

__all__ = ["footer_stats", "stream_scan"]

_BATCH_ROWS = 65536
#: The dtypes of Parquet's floating physical types: the overflow check reads the extremes of
#: DOUBLE columns against floatx's range.
_FLOATS = {"DOUBLE": "float64", "FLOAT": "float32"}


def _merge(column: ColumnStats, stats: Any, rows: int) -> bool:
    """Adds one column chunk's statistics; False when they do not answer (not recorded)."""
    column.rows += rows
    if stats is None or not stats.has_null_count:
        return False
    column.nulls += stats.null_count
    if not stats.has_min_max or isinstance(stats.min, (str, bytes)):
        return stats.null_count == rows  # an all-null chunk has no min/max
    # + 0.0: Parquet writes a zero minimum as -0.0 and a zero maximum as +0.0, whatever the
    # zeros' signs were (footers cannot tell them apart): read as 0, not -0
    low, high = float(stats.min) + 0.0, float(stats.max) + 0.0
    column.dtype = column.dtype or _FLOATS.get(stats.physical_type, "")  # (its cast's range)
    if low == -math.inf:
        column.neginf = 1  # at least one: statistics do not count
        column.first_bad_row = None
    if high == math.inf:
        column.posinf = 1
    if math.isfinite(low):
        column.low = min(column.low, low)
    if math.isfinite(high):
        column.high = max(column.high, high)
    return True


def footer_stats(dataset: pads.Dataset, schema: Schema) -> tuple[list[ColumnStats], int]:
    """Column statistics of a Parquet dataset from its footers (no data read).

    Args:
        dataset: The Parquet dataset.
        schema: A resolved schema: its feature, target and weight columns are reported.

    Returns:
        The statistics of the columns the footers answer for (``exact`` False: NaN unknown),
        and the rows.
    """
    wanted = {name: role for role, name in role_columns(schema)}
    columns = {name: ColumnStats(name, role, exact=False) for name, role in wanted.items()}
    answered = dict.fromkeys(wanted, True)
    rows = 0
    try:
        fragments = list(dataset.get_fragments())
    except ValueError as err:  # a filtered dataset: its footers describe rows it leaves out
        if "filtered" not in str(err):
            raise
        return [], 0
    for fragment in fragments:
        meta = fragment.metadata
        rows += meta.num_rows
        for chunk in column_chunks(meta):
            name = chunk.column
            if name in columns and chunk.plain:  # plain columns only
                ok = _merge(columns[name], chunk.statistics, chunk.rows)
                answered[name] = answered[name] and ok
    return [columns[n] for n in wanted if answered[n] and columns[n].rows], rows


class _Progress:
    """A one-line progress report on a stream: rows done, share, throughput."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream = total, stream
        self.start = self.last = time.perf_counter()
        self.rows = 0

    def advance(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        now = time.perf_counter()
        if self.stream is None or (now - self.last < 0.2 and self.rows < self.total):
            return
        self.last = now
        share = self.rows / self.total if self.total else 1.0
        width = 30
        bar = "=" * int(share * width)
        self.stream.write(
            f"\rscanning [{bar:<{width}}] {self.rows:,}/{self.total:,} rows "
            f"({share:.0%}, {now - self.start:.1f} s)"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.rows:
            self.stream.write("\n")
            self.stream.flush()


def _batches(
    dataset: pads.Dataset, columns: list[str], progress: _Progress
) -> Iterator[pa.RecordBatch]:
    batches = dataset.to_batches(columns=columns, batch_size=_BATCH_ROWS, memory_pool=read_pool())
    for batch in batches:
        progress.advance(batch.num_rows, batch.nbytes)
        yield batch


def stream_scan(
    scanner: Scanner, dataset: pads.Dataset, schema: Schema, progress: bool | TextIO = False
) -> None:
    """Scans a Parquet dataset's feature, target and weight columns, a batch at a time.

    Args:
        scanner: Where the statistics go.
        dataset: The Parquet dataset.
        schema: A resolved schema.
        progress: True for a progress line on stderr, or a stream to write it to.
    """
    stream = sys.stderr if progress is True else (progress or None)
    columns = list(dict.fromkeys(name for _, name in role_columns(schema)))
    bar = _Progress(dataset.count_rows(), stream)  # from the footers
    try:
        scan_batches(scanner, _batches(dataset, columns, bar), schema)
    finally:
        bar.close()
