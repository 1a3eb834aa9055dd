"""Parquet files and ``pyarrow.dataset`` datasets, streamed by row group.

The source is planned from metadata before any data is read: files in the order given (a
folder's in path order), row groups in order, each with its row count, so the batches per
epoch are known up front and ``validation_split`` takes the last fraction of the rows. Each
epoch reads the row groups again (in a new random order with ``shuffle=True``, rows then
mixed through a bounded buffer), converts each one columnar, and the rows are cut into
batches while the model trains. Memory is bounded whatever the data size and width, not by
one row group: the shuffle buffer (bounded in rows and bytes: :func:`shuffle_buffer_rows`),
the row group being read and converted, and the blocks read ahead (70k rows of 3,000
float32 columns under a 64 MiB limit, ``shuffle=True``: +525 MiB at peak; +1,855 held).

A filtered dataset (``dataset.filter(expr)``) cannot be split into fragments; it is read as
one ordered scan, counted with ``count_rows()``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import tensorflow as tf

from fitpipe import limits
from fitpipe.adapters.arrow_tables import ColumnChunks
from fitpipe.adapters.base import AdaptRequest, ArraySource, BatchSource, batch_size_or_default
from fitpipe.adapters.batches import Check, ErrorBox, reporting, signature_of
from fitpipe.adapters.capabilities import RowBlocks, class_counts
from fitpipe.adapters.parquet_held import held_source, join_leaves
from fitpipe.adapters.parquet_plans import key_column, planned, shuffle_buffer_rows
from fitpipe.adapters.row_blocks import aligned_rows, checked_chunks, mixed_rows
from fitpipe.adapters.sharding import pad_shard, per_replica_batch, plan_shards, with_weights
from fitpipe.adapters.stages import StageClock, timing
from fitpipe.columnar import (
    ParquetPlan,
    Span,
    SplitCounts,
    TableColumns,
    classic_table,
    converted_bytes,
    count_split,
    empty_side_error,
    is_parquet_path,
    key_array,
    key_hashes,
    read_error,
    read_piece,
    read_span,
    role_arrays,
    spans,
    table_roles,
    validation_mask,
)
from fitpipe.errors import DataMismatchError, message
from fitpipe.schemas import Mode, Role, Schema
from fitpipe.seeds import shuffle_seed

__all__ = ["ParquetAdapter", "parquet_source"]

#: Rows mixed together by the shuffle buffer, at most (see :func:`shuffle_buffer_rows`).
SHUFFLE_BUFFER_ROWS = 65536


@dataclasses.dataclass(frozen=True)
class _Side:
    """One side of a grouped split: the rows whose key's hash puts them there."""

    validation_split: float
    validation: bool

    def keep(self, table: pa.Table, column: str, caller: str) -> pa.Table:
        """The table's rows on this side (see :mod:`fitpipe.columnar.keys`)."""
        keys = key_array(table.column(column), f"column {column!r}", caller)
        mask = validation_mask(key_hashes(keys), self.validation_split)
        return classic_table(table).filter(pa.array(mask if self.validation else ~mask))


class _Reader:
    """Reads the spans of one row range, epoch after epoch, as converted chunks.

    With ``key_column``, that column is read too (for ``split_by``); with ``side``, only the
    rows of that side of a grouped split are kept, and ``span_rows`` gives each span's rows.
    """

    def __init__(
        self,
        plan: ParquetPlan,
        schema: Schema,
        start: int,
        stop: int,
        shuffle: bool,
        seed: int,
        caller: str,
        mode: Mode,
        key_column: str | None = None,
    ) -> None:
        self.spans = spans(plan, start, stop)
        self.span_rows = [span.hi - span.lo for span in self.spans]
        self.row_bytes = converted_bytes(plan, schema, mode) / max(plan.rows, 1)  #: inf: ragged
        self.group_rows = max(self.span_rows, default=0)  #: rows of the largest span
        self.buffer_rows = SHUFFLE_BUFFER_ROWS  #: rows the shuffle buffer mixes
        self.rows, self.schema, self.shuffle = stop - start, schema, shuffle
        self.seed = seed
        self.caller = caller
        self.roles = mode.roles
        self.columns = schema.columns(tuple(r for r in self.roles if r != Role.PASSTHROUGH))
        self.key_column = key_column
        #: Read row groups buffered a column chunk at a time (a pass repeated every epoch).
        self.buffered = False
        self.side: _Side | None = None
        self.epoch = 0
        #: Times reading (stage ``read``) and converting (``convert``), or None.
        self.clock = StageClock() if timing() else None

    def on_side(self, side: _Side, span_rows: list[int]) -> _Reader:
        """A copy that keeps the rows of one side of a grouped split (counted per span)."""
        part = copy.copy(self)
        part.side, part.span_rows, part.rows = side, span_rows, sum(span_rows)
        return part

    def _tables(self, span: Span, columns: list[str]) -> Iterator[pa.Table]:
        """Reads a span's columns (and the key column), keeping the rows of this side.

        Names the file when it turns out to be corrupt.
        """
        key = self.key_column
        used = columns if key is None or key in columns else [*columns, key]
        tables = read_span(span, used, self.buffered)
        clock = self.clock
        while True:
            start = time.perf_counter() if clock is not None else 0.0
            try:
                table = next(tables)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as err:
                raise read_error(span.piece, used, err, self.caller) from err
            if clock is not None:
                clock.add("read", time.perf_counter() - start)
            if self.side is not None and key is not None:
                table = self.side.keep(table, key, self.caller)
            yield table

    def _read(self, span: Span) -> Iterator[pa.Table]:
        """Reads a span's used columns (see :meth:`_tables`)."""
        return self._tables(span, self.columns)

    def count_classes(self) -> dict[Any, dict[int, int]]:
        """Rows per class of each target, reading only the target columns (one pass)."""
        columns = self.schema.columns((Role.TARGET,))
        totals: dict[Any, Counter[int]] = {}
        for span in self.spans:
            offset = 0
            for table in self._tables(span, columns):
                ctx = (span.piece.source, span.piece.start + span.lo + offset, self.caller)
                y = role_arrays(table, self.schema.targets, self.schema, ctx)
                for key, leaf in y.items() if isinstance(y, dict) else [(None, y)]:
                    found = class_counts(leaf, self.caller, ctx[1])
                    totals.setdefault(key, Counter()).update(found)
                offset += table.num_rows
        return {key: dict(sorted(found.items())) for key, found in totals.items()}

    def _convert(self, table: pa.Table, span: Span, offset: int) -> tuple[Any, ...]:
        start = time.perf_counter() if self.clock is not None else 0.0
        x, y, sw = table_roles(
            table,
            self.schema,
            span.piece.source,
            span.piece.start + span.lo + offset,
            self.caller,
            Role.TARGET in self.roles,
        )
        if self.clock is not None:
            self.clock.add("convert", time.perf_counter() - start)
        return tuple(p for p in (x, y, sw) if p is not None)

    def chunks(self, reordered: bool = False) -> Iterator[Any]:
        """The converted rows of the coming epoch, in order or shuffled (read lazily).

        The epoch (its shuffle order) is taken now, not at the first block: a thread that
        reads the blocks later reads this pass. ``reordered``: a shuffle buffer's mix comes
        as a :class:`~fitpipe.adapters.row_blocks.Reordered` block, not gathered.
        """
        self.epoch += 1
        return self._chunks(np.random.default_rng([self.seed, self.epoch - 1]), reordered)

    def _chunks(self, rng: np.random.Generator, reordered: bool) -> Iterator[Any]:
        spans = list(self.spans)
        if self.shuffle:
            spans = [spans[i] for i in rng.permutation(len(spans))]
        pending: list[tuple[Any, ...]] = []
        buffered = 0
        for span in spans:
            offset = 0
            for table in self._read(span):
                chunk = self._convert(table, span, offset)
                offset += table.num_rows
                if not self.shuffle:
                    yield chunk
                    continue
                pending.append(chunk)
                buffered += table.num_rows
                if buffered >= self.buffer_rows:
                    yield self._mixed(pending, rng.permutation(buffered), reordered)
                    pending, buffered = [], 0
        if pending:
            yield self._mixed(pending, rng.permutation(buffered), reordered)

    def _mixed(self, pending: list[tuple[Any, ...]], order: np.ndarray, reordered: bool) -> Any:
        start = time.perf_counter() if self.clock is not None else 0.0
        mixed = mixed_rows(pending, order, reordered)
        if self.clock is not None:  # mixing the shuffle buffer: part of converting
            self.clock.add("convert", time.perf_counter() - start)
        return mixed


def _batched(chunks: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    dense = all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(chunks.element_spec))
    if dense:
        return chunks.rebatch(batch_size)
    return chunks.unbatch().batch(batch_size)


def reader_source(reader: _Reader, batch_size: int, signature: Any) -> BatchSource:
    """The batch source of one row range: chunks from Python, batches from ``tf.data``.

    It is :class:`~fitpipe.adapters.Checkable`: the trainer's value check runs on the
    converted blocks with NumPy as they are read (see :func:`checked_chunks`), not as a
    ``tf.data`` stage per batch.
    """
    reader.buffered = True  # read pass after pass
    reader.buffer_rows = shuffle_buffer_rows(
        reader.row_bytes, reader.group_rows, batch_size, SHUFFLE_BUFFER_ROWS
    )
    errors = ErrorBox()
    checking: list[Check | None] = [None]

    def blocks(reordered: bool = False) -> Iterator[Any]:
        """The coming pass's blocks, checked; an error raised is also kept for the trainer."""
        check, chunks = checking[0], reader.chunks(reordered)
        return reporting(
            chunks if check is None else checked_chunks(chunks, check, batch_size), errors
        )

    def generate() -> Iterator[tuple[Any, ...]]:
        yield from map(aligned_rows, blocks())

    def check_batches(check: Check | None) -> None:
        checking[0] = check

    def row_blocks() -> RowBlocks:
        return RowBlocks(batch_size, blocks(reordered=True))  # rows taken by index

    @functools.cache
    def make_dataset() -> tf.data.Dataset:  # not built when the trainer takes the blocks
        chunks = tf.data.Dataset.from_generator(generate, output_signature=signature)
        return _batched(chunks, batch_size)

    dense = all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(signature))
    batches = math.ceil(reader.rows / batch_size)
    return BatchSource(
        make_dataset=make_dataset,
        count_batches=lambda: batches,
        take_error=errors.take,
        converted=True,
        count_classes=reader.count_classes,
        seek=lambda n: setattr(reader, "epoch", n),
        shard=lambda index, count, replicas: shard_dataset(
            reader, batch_size, signature, index, count, replicas
        ),
        stage_seconds=None if reader.clock is None else reader.clock.seconds,
        check_batches=check_batches,
        row_blocks=row_blocks if dense else None,
        element_spec=signature if dense else None,  # rebatched: the rows' spec
    )


def shard_dataset(
    reader: _Reader, batch_size: int, signature: Any, index: int, count: int, replicas: int
) -> tuple[tf.data.Dataset, int]:
    """Shard ``index`` of ``count``: its own row groups, as per-replica batches, padded.

    Row groups (spans) are dealt round-robin (see :mod:`fitpipe.adapters.sharding`); the
    shard reads only its own, and every shard yields ``steps * replicas`` full batches.

    Returns:
        The shard's dataset and the steps every shard runs.
    """
    size = per_replica_batch(batch_size, count * replicas, reader.caller)
    plan = plan_shards(reader.span_rows, count, size * replicas)
    part = copy.copy(reader)
    part.spans = [reader.spans[u] for u in plan.units[index]]
    part.span_rows = [reader.span_rows[u] for u in plan.units[index]]
    part.rows = plan.rows[index]
    part.epoch = 0
    chunks = tf.data.Dataset.from_generator(
        lambda: map(aligned_rows, part.chunks()), output_signature=signature
    )
    chunks = pad_shard(with_weights(chunks), plan.padding(index), reader.caller)
    return chunks.rebatch(size, drop_remainder=True), plan.steps


def grouped_sources(
    reader: _Reader,
    fraction: float,
    train: tuple[bool, int],
    validation_batch_size: int,
    signature: Any,
) -> tuple[BatchSource, BatchSource, SplitCounts]:
    """The two sides of a grouped split, counted by one read of the key column only.

    Args:
        reader: A reader of every row, with its ``key_column``.
        fraction: The fraction of the keys set apart for validation.
        train: ``(shuffle, batch_size)`` of the training side.
        validation_batch_size: Batch size of the validation side.
        signature: The chunks' signature.

    Raises:
        DataMismatchError: When a side has no row.
    """
    key = reader.key_column
    assert key is not None
    rows: tuple[list[int], list[int]] = ([], [])
    hashes = []
    for span in reader.spans:
        found = [0, 0]
        for table in reader._tables(span, [key]):
            hashed = key_hashes(key_array(table.column(key), f"column {key!r}", reader.caller))
            in_validation = int(validation_mask(hashed, fraction).sum())
            found[0] += len(hashed) - in_validation
            found[1] += in_validation
            hashes.append(np.unique(hashed))
        rows[0].append(found[0])
        rows[1].append(found[1])
    every = np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, np.uint64)
    counts = count_split(every, validation_mask(every, fraction))
    counts = SplitCounts(sum(rows[0]), sum(rows[1]), counts.train_keys, counts.validation_keys)
    if not (counts.train_rows and counts.validation_rows):
        raise empty_side_error(counts, fraction, f"split_by={key!r}", reader.caller)
    train_reader = reader.on_side(_Side(fraction, False), rows[0])
    train_reader.shuffle = train[0]
    val_reader = reader.on_side(_Side(fraction, True), rows[1])
    return (
        reader_source(train_reader, train[1], signature),
        reader_source(val_reader, validation_batch_size, signature),
        counts,
    )


def _signature(plan: ParquetPlan, schema: Schema, caller: str, mode: Mode) -> Any:
    probe = _Reader(plan, schema, 0, min(plan.rows, 2), False, 0, caller, mode)
    first = next(probe.chunks())
    return signature_of([first], caller, "Parquet source")


def _read_whole(
    plan: ParquetPlan, schema: Schema, caller: str, mode: Mode, key_column: str | None = None
) -> ArraySource:
    """Reads every piece in order, converting each chunk (errors name its file and row).

    With ``key_column``, its values become the source's ``split_by`` keys.
    """
    reader = _Reader(plan, schema, 0, plan.rows, False, 0, caller, mode, key_column)
    parts, keys = [], []
    for span in reader.spans:
        offset = 0
        for table in reader._read(span):
            first = span.piece.start + span.lo + offset
            targets = Role.TARGET in reader.roles
            parts.append(table_roles(table, schema, span.piece.source, first, caller, targets))
            if key_column is not None:
                keys.append(key_array(table.column(key_column), f"column {key_column!r}", caller))
            offset += table.num_rows
    joined = [
        None if parts[0][i] is None else tf.nest.map_structure(join_leaves, *[p[i] for p in parts])
        for i in range(3)
    ]
    all_keys = pa.concat_arrays(keys) if keys else None
    return ArraySource(joined[0], joined[1], joined[2], plan.rows, keys=all_keys)


def _plan_tables(
    plan: ParquetPlan, mode: Mode, caller: str
) -> Iterator[tuple[str, pa.Table, Schema]]:
    """Every piece's tables in order, with the plan's schema (the chunks of a prediction)."""
    for piece in plan.pieces:
        for table in read_piece(piece, plan.schema.columns(mode.roles), caller):
            yield piece.source, table, plan.schema


class ParquetAdapter:
    """Takes Parquet paths (file, directory, glob, list) and ``pyarrow.dataset.Dataset``."""

    name = "parquet"
    accepts = (
        "a Parquet file, directory, glob or list of paths, or a pyarrow.dataset.Dataset, "
        "with `schema=`"
    )
    supports = frozenset(
        {"batch_size", "shuffle", "class_weight", "steps", "validation_split", "schema", "split_by"}
    )

    def can_adapt(self, x: Any) -> bool:
        """True for datasets, paths and non-empty lists of paths."""
        if isinstance(x, pads.Dataset) or is_parquet_path(x):
            return True
        return isinstance(x, (list, tuple)) and bool(x) and all(is_parquet_path(p) for p in x)

    def adapt(self, request: AdaptRequest) -> ArraySource | BatchSource | ColumnChunks:
        """Plans the source from metadata; reads small data whole, else streams row groups."""
        return parquet_source(request, request.x)


def parquet_source(
    request: AdaptRequest,
    x: Any,
    name: str | None = None,
    what: str = "Parquet data",
    table: TableColumns | None = None,
) -> ArraySource | BatchSource | ColumnChunks:
    """The source of Parquet data ``x`` (paths or a ``pyarrow.dataset.Dataset``), by the request.

    Planned from metadata; small data read whole, else row groups streamed, splittable and
    shardable. Table formats (Delta Lake, Iceberg) hand their files here as a dataset.

    Args:
        request: The request (``request.x`` is the user's input, for messages).
        x: What to plan: Parquet paths or a dataset of Parquet files.
        name: The source in messages (default: the path, or "the dataset").
        what: The kind of input, for the error when ``schema=`` is missing.
        table: A table's columns and where its files hold them (None: matched by name).

    Returns:
        The source.
    """
    mode = request.mode
    plan = planned(request, x, name, what, table)
    if request.chunks:
        return ColumnChunks(_plan_tables(plan, mode, request.caller), request.caller, plan.rows)
    schema = plan.schema
    if plan.rows == 0:
        raise DataMismatchError(
            message(
                request.caller,
                f"got {name or 'a Parquet source'} with 0 rows",
                "Training and inference need at least one row",
                "Check the path or the filter",
                x=request.x,
            )
        )
    key = key_column(request, plan)
    if request.hold_in_memory and (
        converted_bytes(plan, schema, mode) <= limits.RESIDENT_BYTES_LIMIT
    ):
        read = functools.partial(_read_whole, plan, schema, request.caller, mode, key)
        return held_source(plan, mode, key, read)
    return _streamed(plan, request, key)


def _streamed(plan: ParquetPlan, request: AdaptRequest, key: str | None) -> BatchSource:
    """Row groups streamed: splittable by rows or by key, shardable, seekable."""
    schema, mode = plan.schema, request.mode
    signature = _signature(plan, schema, request.caller, mode)
    seed = shuffle_seed() if request.shuffle else 0  # (read only by readers that shuffle)
    batch_size = batch_size_or_default(request.batch_size)

    def make(start: int, stop: int, shuffle: bool, size: int) -> BatchSource:
        reader = _Reader(plan, schema, start, stop, shuffle, seed, request.caller, mode, key)
        return reader_source(reader, size, signature)

    def split(at: int, validation_batch_size: int | None) -> tuple[BatchSource, BatchSource]:
        return (
            make(0, at, bool(request.shuffle), batch_size),
            make(at, plan.rows, False, validation_batch_size or batch_size),
        )

    def split_groups(fraction: float, validation_batch_size: int | None) -> Any:
        reader = _Reader(plan, schema, 0, plan.rows, False, seed, request.caller, mode, key)
        return grouped_sources(
            reader,
            fraction,
            (bool(request.shuffle), batch_size),
            validation_batch_size or batch_size,
            signature,
        )

    whole = make(0, plan.rows, bool(request.shuffle), batch_size)
    grouped = split_groups if key is not None else None
    return dataclasses.replace(whole, split=split, rows=plan.rows, split_groups=grouped)
