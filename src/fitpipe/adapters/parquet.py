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
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import tensorflow as tf

from fitpipe.adapters.arrow_columns import table_roles
from fitpipe.adapters.arrow_tables import require_schema
from fitpipe.adapters.base import DEFAULT_BATCH_SIZE, AdaptRequest, ArraySource, BatchSource
from fitpipe.adapters.batches import ErrorBox, signature_of
from fitpipe.adapters.parquet_files import (
    ColumnTypes,
    existing_paths,
    file_error,
    is_parquet_path,
    open_dataset,
)
from fitpipe.adapters.sharding import pad_shard, per_replica_batch, plan_shards, with_weights
from fitpipe.errors import DataMismatchError, FitpipeError, message
from fitpipe.schemas import Mode, Role, Schema
from fitpipe.schemas.arrow_types import check_arrow_schema, field_types

__all__ = ["ParquetAdapter", "ParquetPlan", "plan_source", "source_columns"]

#: Rows mixed together by the shuffle buffer (at least one batch).
SHUFFLE_BUFFER_ROWS = 65536
#: Parquet data whose converted columns take at most this many bytes is read once, whole,
#: and held in memory like an Arrow table (batches are then sliced inside the compiled loop);
#: larger data is streamed row group by row group every epoch.
IN_MEMORY_BYTES = 256 * 2**20


@dataclasses.dataclass(frozen=True)
class Piece:
    """A unit read at once: one row group (or a whole filtered scan).

    Attributes:
        source: The file (or dataset) it comes from, for messages.
        rows: Its rows.
        read: Returns its rows' columns as record batches or tables.
    """

    source: str
    rows: int
    read: Callable[[list[str]], Iterator[Any]]


@dataclasses.dataclass(frozen=True)
class ParquetPlan:
    """The pieces of a source in order, its Arrow schema, and the schema resolved against it."""

    pieces: tuple[Piece, ...]
    arrow_schema: pa.Schema
    schema: Schema

    @property
    def rows(self) -> int:
        """All rows of the plan."""
        return sum(p.rows for p in self.pieces)


_open_dataset = open_dataset  # the name `fitpipe inspect` imports


def source_columns(x: Any, caller: str) -> list[str]:
    """The columns of a Parquet source (path, folder, glob, list, dataset), from metadata."""
    return list(open_dataset(x, caller).schema.names)


def _fragments(dataset: pads.Dataset, caller: str) -> Iterator[tuple[Any, pa.Schema, list[Any]]]:
    """Each file in path order, with its footer schema and its row groups."""
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        try:
            physical = fragment.physical_schema
            groups = fragment.split_by_row_group()
        except (pa.ArrowInvalid, OSError) as err:
            raise file_error(fragment.path, err, caller) from err
        yield fragment, physical, groups


def _row_group_pieces(
    dataset: pads.Dataset, needed: list[str], caller: str
) -> tuple[list[Piece], pa.Schema]:
    """The row groups of every file, and the dataset schema with types unified over files."""
    types = ColumnTypes(needed, caller)
    groups: list[tuple[str, Any]] = []
    for fragment, physical, file_groups in _fragments(dataset, caller):
        partitions = set(pads.get_partition_keys(fragment.partition_expression))
        types.add(physical, partitions, fragment.path)
        groups.extend((fragment.path, group) for group in file_groups)
    arrow_schema = types.unified(dataset.schema)
    pieces = [
        Piece(path, group.row_groups[0].num_rows, _group_reader(group, arrow_schema))
        for path, group in groups
    ]
    return pieces, arrow_schema


def _group_reader(group: Any, schema: pa.Schema) -> Callable[[list[str]], Iterator[Any]]:
    def read(columns: list[str]) -> Iterator[Any]:
        yield group.to_table(columns=columns, schema=schema)

    return read


def _scan_piece(dataset: pads.Dataset, caller: str) -> Piece:
    def read(columns: list[str]) -> Iterator[Any]:
        yield from dataset.to_batches(columns=columns)

    return Piece("the filtered dataset", int(dataset.count_rows()), read)


def plan_source(x: Any, schema: Schema, caller: str, mode: Mode = Mode.TRAIN) -> ParquetPlan:
    """Plans the pieces of a Parquet source from metadata and checks the schema against it.

    One pass over the files' footers; per file, one pass over the columns the schema reads
    in ``mode``.
    """
    dataset = open_dataset(x, caller)
    roles = mode.roles
    name = x if isinstance(x, str) else ("the dataset" if isinstance(x, pads.Dataset) else str(x))
    schema = schema.resolve(dataset.schema.names, str(name), caller, roles)
    needed = schema.columns(roles)
    types, repeated = field_types(dataset.schema)
    for column in needed:  # missing in the first file, or repeated: name the whole source
        if column not in types or column in repeated:
            check_arrow_schema(schema, dataset.schema, str(name), roles, caller)
    try:
        pieces, arrow_schema = _row_group_pieces(dataset, needed, caller)
    except ValueError as err:
        if isinstance(err, FitpipeError) or "filtered" not in str(err):
            raise
        pieces, arrow_schema = [_scan_piece(dataset, caller)], dataset.schema
    check_arrow_schema(schema, arrow_schema, str(name), roles, caller)
    return ParquetPlan(tuple(pieces), arrow_schema, schema)


@dataclasses.dataclass(frozen=True)
class _Span:
    piece: Piece
    first: int  # global index of the piece's first row
    lo: int
    hi: int


def _spans(plan: ParquetPlan, start: int, stop: int) -> list[_Span]:
    spans, offset = [], 0
    for piece in plan.pieces:
        lo, hi = max(start - offset, 0), min(stop - offset, piece.rows)
        if lo < hi:
            spans.append(_Span(piece, offset, lo, hi))
        offset += piece.rows
    return spans


def _read_span(span: _Span, columns: list[str]) -> Iterator[pa.Table]:
    seen = 0
    for part in span.piece.read(columns):
        table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
        lo, hi = max(span.lo - seen, 0), min(span.hi - seen, table.num_rows)
        if lo < hi:
            yield table.slice(lo, hi - lo)
        seen += table.num_rows
        if seen >= span.hi:
            return


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
        self.spans = _spans(plan, start, stop)
        self.rows = stop - start
        self.schema = schema
        self.shuffle = shuffle
        self.seed = seed
        self.caller = caller
        self.roles = mode.roles
        self.columns = schema.columns(tuple(r for r in self.roles if r != Role.PASSTHROUGH))
        self.epoch = 0

    def _read(self, span: _Span) -> Iterator[pa.Table]:
        """Reads a span, naming its file when the file turns out to be corrupt."""
        tables = _read_span(span, self.columns)
        while True:
            try:
                table = next(tables)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as err:
                raise file_error(span.piece.source, err, self.caller) from err
            yield table

    def _convert(self, table: pa.Table, span: _Span, offset: int) -> tuple[Any, ...]:
        x, y, sw = table_roles(
            table,
            self.schema,
            span.piece.source,
            span.first + span.lo + offset,
            self.caller,
            Role.TARGET in self.roles,
        )
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

    @staticmethod
    def _mixed(
        pending: list[tuple[Any, ...]], rows: int, rng: np.random.Generator
    ) -> tuple[Any, ...]:
        return _take(_concat(pending), rng.permutation(rows))


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
        seek=lambda n: setattr(reader, "epoch", n),
        shard=lambda index, count, replicas: shard_dataset(
            reader, batch_size, signature, index, count, replicas
        ),
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


def _element_bytes(arrow_type: pa.DataType) -> int | None:
    """Bytes one value takes once converted (8 per number), or None for variable widths."""
    if pa.types.is_fixed_size_list(arrow_type):
        inner = _element_bytes(arrow_type.value_type)
        return None if inner is None else inner * arrow_type.list_size
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return 8
    if pa.types.is_boolean(arrow_type) or pa.types.is_temporal(arrow_type):
        return 8
    return None


def _converted_bytes(plan: ParquetPlan, schema: Schema, mode: Mode) -> float:
    """An upper bound of the converted size of the columns read; inf if not fixed-width."""
    roles = tuple(r for r in mode.roles if r != Role.PASSTHROUGH)
    total = 0
    for name in schema.columns(roles):
        index = plan.arrow_schema.get_field_index(name)
        width = _element_bytes(plan.arrow_schema.field(index).type) if index >= 0 else None
        if width is None:
            return math.inf
        total += width
    return total * plan.rows


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

    def adapt(self, request: AdaptRequest) -> ArraySource | BatchSource:
        """Plans the source from metadata; reads small data whole, else streams row groups."""
        if not isinstance(request.x, pads.Dataset):  # a missing path before a missing schema
            existing_paths(request.x, request.caller)
        mode = request.mode
        plan = plan_source(request.x, require_schema(request, "Parquet data"), request.caller, mode)
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
        if request.hold_in_memory and (_converted_bytes(plan, schema, mode) <= IN_MEMORY_BYTES):
            return _read_whole(plan, schema, request.caller, mode)
        signature = _signature(plan, schema, request.caller, mode)
        seed = int(np.random.randint(0, 2**31 - 1))
        batch_size = request.batch_size or DEFAULT_BATCH_SIZE

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
