"""Parquet files and ``pyarrow.dataset`` datasets, streamed by row group.

The source is planned from metadata before any data is read: files in sorted path order, row
groups in order, each with its row count, so the batches per epoch are known up front and
``validation_split`` takes the last fraction of the rows. Each epoch reads the row groups
again (in a new random order with ``shuffle=True``, rows then mixed through a bounded buffer),
converts each one columnar, and ``tf.data`` regroups the rows into batches while the model
trains: memory stays at about one row group plus the shuffle buffer, whatever the data size.

A filtered dataset (``dataset.filter(expr)``) cannot be split into fragments; it is read as
one ordered scan, counted with ``count_rows()``.
"""

from __future__ import annotations

import copy
import dataclasses
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
from fitpipe.adapters.arrow_tables import ColumnChunks, require_schema
from fitpipe.adapters.base import AdaptRequest, ArraySource, BatchSource, batch_size_or_default
from fitpipe.adapters.batches import ErrorBox, signature_of
from fitpipe.adapters.capabilities import class_counts
from fitpipe.adapters.sharding import pad_shard, per_replica_batch, plan_shards, with_weights
from fitpipe.adapters.stages import StageClock, timing
from fitpipe.columnar import (
    ParquetPlan,
    Span,
    converted_bytes,
    existing_paths,
    file_error,
    is_parquet_path,
    plan_source,
    read_span,
    role_arrays,
    spans,
    table_roles,
)
from fitpipe.errors import DataMismatchError, message
from fitpipe.schemas import Mode, Role, Schema

__all__ = ["ParquetAdapter"]

#: Rows mixed together by the shuffle buffer (at least one batch).
SHUFFLE_BUFFER_ROWS = 65536


def _concat(chunks: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    def join(*leaves: Any) -> Any:
        if isinstance(leaves[0], tf.RaggedTensor):
            return tf.concat(leaves, axis=0)
        return np.concatenate(leaves)

    return tf.nest.map_structure(join, *chunks)


def _take(chunk: tuple[Any, ...], order: np.ndarray) -> tuple[Any, ...]:
    return tf.nest.map_structure(
        lambda leaf: (
            tf.gather(leaf, order)
            if isinstance(leaf, tf.RaggedTensor)
            else np.take(leaf, order, axis=0)
        ),
        chunk,
    )


class _Reader:
    """Reads the spans of one row range, epoch after epoch, as converted chunks."""

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
    ) -> None:
        self.spans = spans(plan, start, stop)
        self.rows = stop - start
        self.schema = schema
        self.shuffle = shuffle
        self.seed = seed
        self.caller = caller
        self.roles = mode.roles
        self.columns = schema.columns(tuple(r for r in self.roles if r != Role.PASSTHROUGH))
        self.epoch = 0
        #: Times reading (stage ``read``) and converting (``convert``), or None.
        self.clock = StageClock() if timing() else None

    def _read(self, span: Span) -> Iterator[pa.Table]:
        """Reads a span, naming its file when the file turns out to be corrupt."""
        tables = read_span(span, self.columns)
        clock = self.clock
        while True:
            start = time.perf_counter() if clock is not None else 0.0
            try:
                table = next(tables)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as err:
                raise file_error(span.piece.source, err, self.caller) from err
            if clock is not None:
                clock.add("read", time.perf_counter() - start)
            yield table

    def count_classes(self) -> dict[Any, dict[int, int]]:
        """Rows per class of each target, reading only the target columns (one pass)."""
        columns = self.schema.columns((Role.TARGET,))
        totals: dict[Any, Counter[int]] = {}
        for span in self.spans:
            offset = 0
            for table in read_span(span, columns):
                ctx = (span.piece.source, span.first + span.lo + offset, self.caller)
                y = role_arrays(table, self.schema.targets, self.schema, ctx)
                for key, leaf in y.items() if isinstance(y, dict) else [(None, y)]:
                    totals.setdefault(key, Counter()).update(class_counts(leaf))
                offset += table.num_rows
        return {key: dict(sorted(found.items())) for key, found in totals.items()}

    def _convert(self, table: pa.Table, span: Span, offset: int) -> tuple[Any, ...]:
        start = time.perf_counter() if self.clock is not None else 0.0
        x, y, sw = table_roles(
            table,
            self.schema,
            span.piece.source,
            span.first + span.lo + offset,
            self.caller,
            Role.TARGET in self.roles,
        )
        if self.clock is not None:
            self.clock.add("convert", time.perf_counter() - start)
        return tuple(p for p in (x, y, sw) if p is not None)

    def chunks(self) -> Iterator[tuple[Any, ...]]:
        """Yields the converted rows of one epoch, in order or shuffled."""
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
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
                if buffered >= SHUFFLE_BUFFER_ROWS:
                    yield self._mixed(pending, buffered, rng)
                    pending, buffered = [], 0
        if pending:
            yield self._mixed(pending, buffered, rng)

    def _mixed(
        self, pending: list[tuple[Any, ...]], rows: int, rng: np.random.Generator
    ) -> tuple[Any, ...]:
        start = time.perf_counter() if self.clock is not None else 0.0
        mixed = _take(_concat(pending), rng.permutation(rows))
        if self.clock is not None:  # mixing the shuffle buffer: part of converting
            self.clock.add("convert", time.perf_counter() - start)
        return mixed


def _batched(chunks: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    dense = all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(chunks.element_spec))
    if dense:
        return chunks.rebatch(batch_size)
    return chunks.unbatch().batch(batch_size)


def reader_source(reader: _Reader, batch_size: int, signature: Any) -> BatchSource:
    """The batch source of one row range: chunks from Python, batches from ``tf.data``."""
    errors = ErrorBox()

    def generate() -> Iterator[tuple[Any, ...]]:
        try:
            yield from reader.chunks()
        except Exception as err:
            errors.put(err)
            raise

    chunks = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = _batched(chunks, batch_size)
    batches = math.ceil(reader.rows / batch_size)
    return BatchSource(
        make_dataset=lambda: dataset,
        count_batches=lambda: batches,
        take_error=errors.take,
        converted=True,
        count_classes=reader.count_classes,
        seek=lambda n: setattr(reader, "epoch", n),
        shard=lambda index, count, replicas: shard_dataset(
            reader, batch_size, signature, index, count, replicas
        ),
        stage_seconds=None if reader.clock is None else reader.clock.seconds,
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
    plan = plan_shards([span.hi - span.lo for span in reader.spans], count, size * replicas)
    part = copy.copy(reader)
    part.spans = [reader.spans[u] for u in plan.units[index]]
    part.rows = plan.rows[index]
    part.epoch = 0
    chunks = tf.data.Dataset.from_generator(part.chunks, output_signature=signature)
    chunks = pad_shard(with_weights(chunks), plan.padding(index), reader.caller)
    return chunks.rebatch(size, drop_remainder=True), plan.steps


def _signature(plan: ParquetPlan, schema: Schema, caller: str, mode: Mode) -> Any:
    probe = _Reader(plan, schema, 0, min(plan.rows, 2), False, 0, caller, mode)
    first = next(probe.chunks())
    return signature_of([first], caller, "Parquet source")


def _read_whole(plan: ParquetPlan, schema: Schema, caller: str, mode: Mode) -> ArraySource:
    """Reads every piece in order, converting each chunk (errors name its file and row)."""
    reader = _Reader(plan, schema, 0, plan.rows, False, 0, caller, mode)
    parts = []
    for span in reader.spans:
        offset = 0
        for table in reader._read(span):
            first = span.first + span.lo + offset
            targets = Role.TARGET in reader.roles
            parts.append(table_roles(table, schema, span.piece.source, first, caller, targets))
            offset += table.num_rows
    joined = [
        None if parts[0][i] is None else tf.nest.map_structure(_join, *[p[i] for p in parts])
        for i in range(3)
    ]
    return ArraySource(joined[0], joined[1], joined[2], plan.rows)


def _join(*leaves: np.ndarray) -> np.ndarray:
    return leaves[0] if len(leaves) == 1 else np.concatenate(leaves)


def _plan_tables(plan: ParquetPlan, mode: Mode) -> Iterator[tuple[str, pa.Table, Schema]]:
    """Every piece's tables in order, with the plan's schema (the chunks of a prediction)."""
    for piece in plan.pieces:
        for part in piece.read(plan.schema.columns(mode.roles)):
            table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
            yield piece.source, table, plan.schema


class ParquetAdapter:
    """Takes Parquet paths (file, directory, glob, list) and ``pyarrow.dataset.Dataset``."""

    name = "parquet"
    accepts = (
        "a Parquet file, directory, glob or list of paths, or a pyarrow.dataset.Dataset, "
        "with `schema=`"
    )
    supports = frozenset(
        {"batch_size", "shuffle", "class_weight", "steps", "validation_split", "schema"}
    )

    def can_adapt(self, x: Any) -> bool:
        """True for datasets, paths and non-empty lists of paths."""
        if isinstance(x, pads.Dataset) or is_parquet_path(x):
            return True
        return isinstance(x, (list, tuple)) and bool(x) and all(is_parquet_path(p) for p in x)

    def adapt(self, request: AdaptRequest) -> ArraySource | BatchSource | ColumnChunks:
        """Plans the source from metadata; reads small data whole, else streams row groups."""
        if not isinstance(request.x, pads.Dataset):  # a missing path before a missing schema
            existing_paths(request.x, request.caller)
        mode = request.mode
        plan = plan_source(request.x, require_schema(request, "Parquet data"), request.caller, mode)
        if request.chunks:
            return ColumnChunks(_plan_tables(plan, mode), request.caller)
        schema = plan.schema
        if plan.rows == 0:
            raise DataMismatchError(
                message(
                    request.caller,
                    "got a Parquet source with 0 rows",
                    "Training and inference need at least one row",
                    "Check the path or the filter",
                    x=request.x,
                )
            )
        if request.hold_in_memory and (
            converted_bytes(plan, schema, mode) <= limits.RESIDENT_BYTES_LIMIT
        ):
            return _read_whole(plan, schema, request.caller, mode)
        signature = _signature(plan, schema, request.caller, mode)
        seed = int(np.random.randint(0, 2**31 - 1))
        batch_size = batch_size_or_default(request.batch_size)

        def make(start: int, stop: int, shuffle: bool, size: int) -> BatchSource:
            reader = _Reader(plan, schema, start, stop, shuffle, seed, request.caller, mode)
            return reader_source(reader, size, signature)

        def split(at: int, validation_batch_size: int | None) -> tuple[BatchSource, BatchSource]:
            return (
                make(0, at, bool(request.shuffle), batch_size),
                make(at, plan.rows, False, validation_batch_size or batch_size),
            )

        whole = make(0, plan.rows, bool(request.shuffle), batch_size)
        return dataclasses.replace(whole, split=split, rows=plan.rows)
