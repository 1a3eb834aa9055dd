"""Parquet plans as bytes: planned once, rebuilt elsewhere without reading any footer.

Under a multi-worker strategy the chief alone plans a source (it reads every footer); the
other workers rebuild the same plan from these bytes (see :mod:`fitpipe.training.sharing`,
which carries them). The bytes hold, zlib-compressed:

* a JSON header: the files' paths (inside their filesystem) and, per file, the index of its
  partition expression;
* the Arrow schema unified over the files, as Arrow IPC;
* the distinct partition expressions (pyarrow's own serialisation, through pickle);
* per file its row groups' count, per row group its rows, and the row group ids and the
  rows of their files they start at when the ids are not ``0..n-1`` (a dataset made from a
  ``_metadata`` file): NumPy arrays of the narrowest unsigned type that holds them.

A filtered dataset's one scan travels as its row count. Rebuilding opens no file: each
file's fragment is the dataset's own (a ``pyarrow.dataset.Dataset`` given), or made from its
path; its footer is read when its own row groups are.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fitpipe.columnar.files import parquet_format
from fitpipe.columnar.parquet import (
    SCAN_SOURCE,
    ParquetPlan,
    Piece,
    _collector_paused,
    _GroupReader,
    _ScanReader,
    group_pieces,
    source_name,
)
from fitpipe.columnar.storage import display_path, is_uri, resolve_uri
from fitpipe.columnar.table_columns import FileColumns, TableColumns
from fitpipe.schemas import Mode, Schema

__all__ = ["plan_bytes", "plan_from_bytes"]

#: The first bytes of a plan's (uncompressed) bytes: the format and its version.
MAGIC = b"fitpipe-plan/1\n"

_LENGTH = struct.Struct("<Q")


def _frame(blobs: list[bytes]) -> bytes:
    """The blobs, each after its length (8 bytes, little-endian)."""
    return b"".join(_LENGTH.pack(len(blob)) + blob for blob in blobs)


def _unframe(data: bytes) -> list[bytes]:
    blobs, at = [], 0
    while at < len(data):
        (length,) = _LENGTH.unpack_from(data, at)
        blobs.append(data[at + 8 : at + 8 + length])
        at += 8 + length
    return blobs


def _narrow(values: list[int]) -> tuple[str, bytes]:
    """The values as the narrowest unsigned little-endian array: ``(dtype, bytes)``."""
    array = np.asarray(values, dtype=np.uint64)
    dtype = np.min_scalar_type(int(array.max()) if len(array) else 0).newbyteorder("<")
    return dtype.str, array.astype(dtype).tobytes()


def _widen(dtype: str, data: bytes) -> list[int]:
    return np.frombuffer(data, dtype=np.dtype(dtype)).tolist()


def _files(plan: ParquetPlan) -> tuple[list[Any], list[int], list[int], list[int], list[int]]:
    """The fragments of the plan's files in order; per file its row groups; ids; rows.

    And the row of its file each row group starts at.
    """
    fragments: list[Any] = []
    counts: list[int] = []
    ids: list[int] = []
    rows: list[int] = []
    starts: list[int] = []
    for piece in plan.pieces:
        reader = piece.read
        assert isinstance(reader, _GroupReader)
        if not fragments or reader.fragment is not fragments[-1]:
            fragments.append(reader.fragment)
            counts.append(0)
        counts[-1] += 1
        ids.append(reader.group)
        rows.append(piece.rows)
        starts.append(piece.start)
    return fragments, counts, ids, rows, starts


def _schema_bytes(schema: pa.Schema) -> bytes:
    return bytes(schema.serialize())


def plan_bytes(plan: ParquetPlan) -> bytes:
    """The plan as bytes (see the module's docstring), for :func:`plan_from_bytes`.

    Args:
        plan: A plan made by :func:`~fitpipe.columnar.plan_source`.

    Returns:
        The bytes, compressed.
    """
    schema = _schema_bytes(plan.arrow_schema)
    if len(plan.pieces) == 1 and isinstance(plan.pieces[0].read, _ScanReader):
        header: dict[str, Any] = {"scan": plan.pieces[0].rows}
        return zlib.compress(MAGIC + _frame([json.dumps(header).encode(), schema]))
    fragments, counts, ids, rows, starts = _files(plan)
    expressions: dict[str, tuple[int, Any]] = {}
    partitions = []
    for fragment in fragments:
        expression = fragment.partition_expression
        found = expressions.setdefault(str(expression), (len(expressions), expression))
        partitions.append(found[0])
    ranges = ids == [i for count in counts for i in range(count)]
    listed = [] if ranges else ids, [] if ranges else starts  # whole files: counted again
    arrays = [_narrow(counts), _narrow(rows), *(_narrow(values) for values in listed)]
    header = {
        "files": [fragment.path for fragment in fragments],
        "partitions": partitions if len(expressions) > 1 else None,
        "dtypes": [dtype for dtype, _ in arrays],
    }
    kept = pickle.dumps([expression for _, expression in expressions.values()])
    blobs = [json.dumps(header).encode(), schema, kept, *(data for _, data in arrays)]
    return zlib.compress(MAGIC + _frame(blobs))


def _opener(x: Any, caller: str) -> tuple[pafs.FileSystem, Any, dict[str, Any]]:
    """The filesystem and Parquet format of source ``x``, and its fragments by path.

    Found without opening a file: a dataset's own fragments (made when it listed its files)
    keep its format and partitions; paths get fragments made from the plan's paths.
    """
    if isinstance(x, pads.Dataset):
        own = {fragment.path: fragment for fragment in x.get_fragments()}
        filesystem = getattr(x, "filesystem", None) or pafs.LocalFileSystem()
        return filesystem, getattr(x, "format", None) or parquet_format(), own
    first = os.fspath(x[0] if isinstance(x, (list, tuple)) else x)
    if is_uri(first):
        return resolve_uri(first, caller)[0], parquet_format(), {}
    return pafs.LocalFileSystem(), parquet_format(), {}


def _pieces(
    blobs: list[bytes],
    header: dict[str, Any],
    arrow_schema: pa.Schema,
    x: Any,
    caller: str,
    table: TableColumns | None = None,
) -> list[Piece]:
    """The row groups of every file, each file's fragment made from its path.

    A ``table``'s columns are found in each file when its row groups are first read.
    """
    filesystem, file_format, own = _opener(x, caller)
    expressions = pickle.loads(blobs[2])
    widened = (_widen(d, b) for d, b in zip(header["dtypes"], blobs[3:], strict=True))
    counts, rows, ids, starts = widened
    partitions = header["partitions"] or [0] * len(counts)
    pieces, at = [], 0
    for path, count, partition in zip(header["files"], counts, partitions, strict=True):
        fragment = own.get(path) or file_format.make_fragment(
            path, filesystem, partition_expression=expressions[partition]
        )
        where = display_path(filesystem, path)
        held = rows[at : at + count]
        groups = ids[at : at + count] if ids else range(count)
        begins = starts[at : at + count] if ids else (np.cumsum(held) - held).tolist()
        columns = None if table is None else FileColumns(table, fragment)
        pieces += group_pieces(
            where, zip(groups, held, begins, strict=True), fragment, arrow_schema, columns
        )
        at += count
    return pieces


def plan_from_bytes(
    data: bytes,
    x: Any,
    schema: Schema,
    caller: str,
    mode: Mode,
    name: str | None = None,
    table: TableColumns | None = None,
) -> ParquetPlan:
    """The plan :func:`plan_bytes` made of source ``x``, rebuilt without reading any footer.

    Args:
        data: What :func:`plan_bytes` returned (for the same ``x``, on another worker).
        x: The source, as given to :func:`~fitpipe.columnar.plan_source`.
        schema: The declared schema (resolved again against the plan's columns).
        caller: The public method, for messages.
        mode: What the rows are read for (the roles resolved).
        name: The source in messages (as given to ``plan_source``).
        table: Where a table format's columns are in its files (as given to ``plan_source``).

    Returns:
        The plan: the same pieces, rows and schemas as the planning worker's.
    """
    raw = zlib.decompress(data)
    assert raw.startswith(MAGIC), "not the bytes of a fitpipe plan"
    blobs = _unframe(raw[len(MAGIC) :])
    header = json.loads(blobs[0])
    arrow_schema = pa.ipc.read_schema(pa.py_buffer(blobs[1]))
    resolved = schema.resolve(arrow_schema.names, source_name(x, name), caller, mode.roles)
    if "scan" in header:
        return ParquetPlan(
            (Piece(SCAN_SOURCE, header["scan"], _ScanReader(x)),), arrow_schema, resolved
        )
    with _collector_paused():
        pieces = _pieces(blobs, header, arrow_schema, x, caller, table)
    return ParquetPlan(tuple(pieces), arrow_schema, resolved)
