"""Columnar conversion of Arrow data to arrays, by a :class:`~fitpipe.schemas.Schema`.

Every conversion works on whole columns (Arrow buffers to NumPy, no per-row Python):
numbers and bool as they are; ``fixed_size_list`` as ``(N, k)`` (nested: ``(N, a, b)``);
``list``/``large_list`` as ``tf.RaggedTensor`` or padded/truncated to a declared length;
strings and binary as string tensors; dictionary-encoded columns decoded; decimals as float64
(the nearest double: digits past about 15 significant ones are rounded); timestamps as int64
microseconds since the Unix epoch in UTC, whatever their unit and time zone, durations and times
of day as int64 microseconds, dates as int64 days (see :mod:`fitpipe.columnar.temporal`). A
null is an error naming the column and the row, unless the schema declares a fill value for
the column (a null list row becomes ``fill`` repeated for a ``fixed_size_list``, an empty list
for a variable-length one). Nulls are found wherever Arrow holds them: in a dictionary's
indices or its dictionary, in a list's values, at every level of a nested fixed-size list.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat
import tensorflow as tf

from fitpipe.columnar.recycle import mapped
from fitpipe.columnar.temporal import is_converted_temporal, temporal_ints
from fitpipe.columnar.types import (
    classic,
    column_fill,
    example_fill,
    is_text,
    one_array,
    value_type,
)
from fitpipe.errors import SchemaError, message
from fitpipe.schemas import Named, RoleSpec, Schema

__all__ = [
    "aligned_empty",
    "as_tensor",
    "backing_tensor",
    "column_array",
    "join_rows",
    "owned_tensor",
    "role_arrays",
    "stack_columns",
    "table_roles",
    "take_rows_into",
    "tensor_array",
]


def _null_error(
    name: str, row: int, arrow_type: pa.DataType, source: str, caller: str
) -> SchemaError:
    fill = f"{{{name!r}: {example_fill(arrow_type)}}}"
    return SchemaError(
        message(
            caller,
            f"found a null in column {name!r} at row {row} of {source}",
            "Feature, target and weight columns hold a value in every row",
            f"Declare a fill value, e.g. `Schema(..., fill={fill})`, or drop the rows upstream",
            column=name,
        )
    )


def _fill_nulls(
    array: pa.Array,
    name: str,
    schema: Schema,
    ctx: tuple[str, int, str],
    row_of: Any = None,
) -> Any:
    """Fills nulls with the declared value, or raises naming the row.

    ``row_of`` maps the index of a list element's value to the row that holds it.
    """
    if array.null_count == 0:
        return array
    fill = schema.fill_value(name)
    if fill is None:
        source, offset, caller = ctx
        first = int(pc.index(pc.is_null(array), True).as_py())
        row = row_of(first) if row_of is not None else first
        raise _null_error(name, offset + row, array.type, source, caller)
    try:
        return pc.fill_null(array, pa.scalar(_row_fill(array.type, fill), type=array.type))
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as err:
        source, _, caller = ctx
        raise SchemaError(
            message(
                caller,
                f"cannot fill the nulls of column {name!r} of type {array.type} in {source} "
                f"with {fill!r} ({err})",
                "A `fill` value is a value of the column's type",
                f"Pass e.g. `fill={{{name!r}: {example_fill(array.type)}}}`, or cast the column "
                "upstream",
                fill=fill,
            )
        ) from err


def _row_fill(arrow_type: pa.DataType, fill: Any) -> Any:
    """The value of a null row: ``fill``, ``fill`` repeated for fixed-size lists, else []."""
    if pat.is_fixed_size_list(arrow_type):
        return [_row_fill(arrow_type.value_type, fill)] * arrow_type.list_size
    if pat.is_list(arrow_type) or pat.is_large_list(arrow_type):
        return []
    return column_fill(value_type(arrow_type), fill)


def _plain(array: pa.Array, name: str, ctx: tuple[str, int, str]) -> pa.Array:
    if pat.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pat.is_decimal(array.type):  # through text: Arrow's direct cast is not correctly rounded
        return array.cast(pa.string()).cast(pa.float64())
    if is_converted_temporal(array.type):
        return temporal_ints(array, name, ctx)
    return array


def _fixed(array: pa.Array, name: str, schema: Schema, ctx: tuple[str, int, str]) -> np.ndarray:
    """A ``fixed_size_list`` column as ``(N, k)`` (nested: ``(N, a, b)``), level by level.

    Each level's nulls are filled (or reported) before it is flattened: ``flatten`` skips
    a null inner list's values, which would leave too few to reshape.
    """
    dims: list[int] = []
    values = array
    while pat.is_fixed_size_list(values.type):
        dims.append(values.type.list_size)
        per_row = int(np.prod(dims))
        values = _fill_nulls(
            _plain(values.flatten(), name, ctx), name, schema, ctx, lambda i, n=per_row: i // n
        )
    return _numbers(values).reshape(len(array), *dims)


def _numbers(values: pa.Array) -> np.ndarray:
    if is_text(values.type):
        return values.to_numpy(zero_copy_only=False)
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _variable(array: pa.Array, name: str, schema: Schema, ctx: tuple[str, int, str]) -> Any:
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    ends = np.cumsum(lengths)
    values = _numbers(
        _fill_nulls(
            _plain(array.flatten(), name, ctx),
            name,
            schema,
            ctx,
            lambda i: int(np.searchsorted(ends, i, side="right")),
        )
    )
    width = schema.length(name)
    if width is None:
        return tf.RaggedTensor.from_row_lengths(values, lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    positions = np.arange(width)
    keep = positions[None, :] < lengths[:, None]
    dense = aligned_empty((len(lengths), width), values.dtype)
    dense[...] = 0
    dense[keep] = values[(starts[:, None] + positions[None, :])[keep]]
    return dense


def column_array(column: Any, name: str, schema: Schema, ctx: tuple[str, int, str]) -> Any:
    """Converts one Arrow column to a NumPy array (or a ragged tensor for list columns).

    Args:
        column: A ``pa.Array`` or ``pa.ChunkedArray``.
        name: The column name.
        schema: The schema (fill values, padded lengths).
        ctx: ``(source, first_row, caller)`` for error messages.
    """
    column = classic(one_array(column))
    if pat.is_dictionary(column.type):  # its nulls may be in its dictionary, not its indices
        column = column.dictionary_decode()
    column = _fill_nulls(column, name, schema, ctx)
    kind = value_type(column.type)
    if pat.is_fixed_size_list(kind):
        return _fixed(_plain(column, name, ctx), name, schema, ctx)
    if pat.is_list(kind) or pat.is_large_list(kind):
        return _variable(_plain(column, name, ctx), name, schema, ctx)
    return _numbers(_plain(column, name, ctx))


#: Byte alignment of the arrays :func:`aligned_empty` makes: ``tf.data`` takes a NumPy
#: buffer aligned to 64 bytes from Python as it is, and copies any other.
ALIGNMENT = 64


#: From this many bytes on, :func:`aligned_empty` maps the buffer's memory itself: glibc's
#: ``malloc`` maps every block this large afresh anyway (its largest dynamic ``mmap``
#: threshold), while smaller blocks freed and allocated again reuse its heap's pages.
MAPPED_BYTES = 32 << 20


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting at a multiple of :data:`ALIGNMENT` bytes.

    NumPy aligns its buffers to 16 bytes; ``Dataset.from_generator`` copies each array the
    generator yields unless its buffer is aligned to 64 (measured: a streamed chunk of
    65,536 rows of 32 float32 columns cost 10 ms more per chunk unaligned).

    A buffer of :data:`MAPPED_BYTES` or more is an anonymous ``mmap`` (page-aligned): NumPy
    advises its large buffers for transparent huge pages, and where the kernel compacts
    memory to fault those in (``defrag=madvise``, a common default) each fresh block cost
    up to seconds of system time at the start of a run (a ``fit`` over 100,000 x 512
    float32 Parquet rows: first step 4.1-5.7 s, 3.0 s with mapped buffers). Its pages are
    faulted in when it is mapped (``MAP_POPULATE`` where the platform has it), in one system
    call rather than a fault per page: every caller writes the whole buffer (65,536 x 512
    float32 copied into one: 86-89 ms shared as before, 58-62 ms private and populated).
    While a trainer's call runs, a mapping of the same size that nothing refers to any more
    is used again instead (:func:`~fitpipe.columnar.recycle.mapped`).
    """
    dtype = np.dtype(dtype)
    if dtype.hasobject or dtype.itemsize == 0:
        return np.empty(shape, dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes >= max(MAPPED_BYTES, 1):
        return mapped(nbytes).view(dtype).reshape(shape)
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


#: The fewest rows :func:`stack_columns` writes per block, and the fewest bytes per block.
STACK_BLOCK_ROWS = 2048
STACK_BLOCK_BYTES = 256 << 10

#: The fewest columns :func:`stack_columns` transposes with TensorFlow instead of NumPy.
#: Measured on 65,536 rows (float32, 2 cores): 512 columns 324 -> 64 ms, 128 columns
#: 26 -> 13 ms, 64 columns 5.3 -> 4.8 ms; 32 columns 2.9 -> 4.0 ms (NumPy's blocks win).
WIDE_COLUMNS = 64

#: Bytes of rows :func:`stack_columns` transposes with TensorFlow at a time.
TRANSPOSE_BLOCK_BYTES = 16 << 20

#: Arrays :func:`tensor_array` made, by ``id``: the tensor whose memory each one is.
_BACKING: dict[int, tf.Tensor] = {}


def tensor_array(tensor: tf.Tensor) -> np.ndarray:
    """A CPU tensor's memory as a read-only NumPy array (no copy), its tensor kept.

    :func:`backing_tensor` gives the tensor back for the array, so a trainer can hand the
    rows to TensorFlow without a copy (a read-only array cannot go through DLPack).
    """
    array = np.asarray(tensor)
    key = id(array)
    _BACKING[key] = tensor
    weakref.finalize(array, _BACKING.pop, key, None)
    return array


def backing_tensor(array: Any) -> tf.Tensor | None:
    """The tensor whose whole memory ``array`` is (made by :func:`tensor_array`), or None."""
    return _BACKING.get(id(array))


def as_tensor(leaf: Any) -> tf.Tensor:
    """A NumPy array as a tensor, sharing its memory when TensorFlow can (aligned, numeric).

    TensorFlow copies any array it converts (about 1 GB/s, 0.1 s for a 65,536 x 512 float32
    block); through DLPack it takes an aligned, contiguous array as it is, and an array over
    a tensor's memory (wide columns, stacked by TensorFlow) is that tensor.
    """
    tensor = backing_tensor(leaf)
    if tensor is None:
        tensor = _shared(leaf)
    return owned_tensor(leaf) if tensor is None else tensor


def _numeric(leaf: Any) -> bool:
    return isinstance(leaf, np.ndarray) and bool(leaf.size) and leaf.dtype.kind in "biufc"


def _shared(leaf: Any) -> tf.Tensor | None:
    """A tensor over ``leaf``'s own memory (DLPack), or None where TensorFlow cannot take it."""
    if not (_numeric(leaf) and leaf.flags.c_contiguous and leaf.ctypes.data % ALIGNMENT == 0):
        return None
    try:
        return tf.experimental.dlpack.from_dlpack(leaf.__dlpack__())
    except (BufferError, TypeError, ValueError):  # read-only, or a dtype DLPack lacks
        return None


def join_rows(leaves: Sequence[Any]) -> np.ndarray:
    """``np.concatenate(leaves)`` written into :func:`aligned_empty` memory.

    A fresh NumPy buffer of 131 MB (65,536 x 512 float32) took 0.3-1.0 s to join into on a
    machine that compacts memory for huge pages, 0.05-0.06 s mapped. Leaves NumPy cannot
    join into one buffer (scalars, unequal trailing shapes) get ``np.concatenate``'s error.
    Leaves are whatever ``np.concatenate`` takes: a batch a Python source yields may hold
    TensorFlow tensors (read as arrays over their memory, not copied before the join).
    """
    leaves = [leaf if isinstance(leaf, np.ndarray) else np.asarray(leaf) for leaf in leaves]
    first = leaves[0]
    if first.ndim == 0 or any(leaf.shape[1:] != first.shape[1:] for leaf in leaves):
        return np.concatenate(leaves)
    shape = (sum(len(leaf) for leaf in leaves), *first.shape[1:])
    return np.concatenate(leaves, out=aligned_empty(shape, np.result_type(*leaves)))


def take_rows_into(leaf: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``leaf[rows]`` (rows along the first axis) written into :func:`aligned_empty` memory.

    ``np.take`` with ``out=`` buffers the result in a temporary as large as ``out`` unless
    ``mode`` is ``"clip"`` or ``"wrap"`` (16,384 rows of 512 float32: 19-25 ms and 32 MiB
    from NumPy's allocator, against 8-12 ms and none); the rows are checked to be in range
    first (one pass over the indices), so clipping never changes one.

    On a source that is not C-contiguous (a pandas frame's column-major ``to_numpy()``,
    ``x[:, ::2]``, a Fortran-ordered array) ``np.take`` first copies the *whole* source
    contiguous, for every call: a shuffled epoch of such an array cost its size times its
    blocks (6,000,000 x 32 from pandas, batch 4,096: 38.8 s of 40.1 in ``np.take``, 980 MiB
    above its start, against 1.8 s contiguous). Its rows are gathered by indexing instead,
    through a temporary the size of the result.
    """
    rows = np.asarray(rows)
    low, high = (int(rows.min()), int(rows.max())) if rows.size else (0, -1)
    if low < -len(leaf) or high >= len(leaf):
        raise IndexError(f"row index out of range for {len(leaf)} rows")
    if low < 0:
        rows = rows % len(leaf)
    out = aligned_empty((len(rows), *leaf.shape[1:]), leaf.dtype)
    if not leaf.flags.c_contiguous:
        np.copyto(out, leaf[rows])
        return out
    return np.take(leaf, rows, axis=0, out=out, mode="clip")


def owned_tensor(leaf: Any) -> Any:
    """A tensor of a copy of ``leaf`` (a caller's array), copied once into fitpipe's memory.

    TensorFlow copies an array it converts into a fresh NumPy buffer (and again when that
    buffer is not aligned to 64 bytes), and NumPy advises a large one for transparent huge
    pages: on a machine that compacts memory to fault those in, the first conversion of
    65,536 x 512 float32 rows in a process took 0.15-0.87 s (0.05 s later). The copy here
    goes into :func:`aligned_empty` (in native byte order), which TensorFlow then takes as
    it is: 0.08-0.11 s the first time. Leaves that are not numeric NumPy arrays are
    converted by TensorFlow.
    """
    if not _numeric(leaf):
        return tf.convert_to_tensor(leaf)
    copy = aligned_empty(leaf.shape, leaf.dtype.newbyteorder("="))
    np.copyto(copy, leaf)
    shared = _shared(copy)
    return tf.convert_to_tensor(copy) if shared is None else shared


def _transposed(parts: list[np.ndarray]) -> np.ndarray:
    """``np.stack(parts, axis=-1)``: blocks of rows transposed by TensorFlow into fitpipe's memory.

    Copying each column's rows into one column-major block is cache-friendly; TensorFlow's
    tiled transpose then writes the rows (65,536 x 512 float32: 15 + 50 ms, against
    0.26-0.32 s for NumPy writing the rows in blocks of rows). A block of
    :data:`TRANSPOSE_BLOCK_BYTES` at a time, copied into :func:`aligned_empty` memory: the
    whole table transposed at once took a new 128 MiB from TensorFlow's allocator at every
    read, which it had no free region for after the previous fit (the step's allocations
    split the one it freed), and faulting it in cost 0.5 s of a held Parquet ``fit`` of
    those rows. The copy out adds 15-30 ms to those rows' 50 ms once memory is warm. The
    result is read-only, over a tensor of that memory (:func:`tensor_array`), which a
    trainer holds as it is.
    """
    first = parts[0]
    dtype = np.result_type(*parts)
    out = aligned_empty((*first.shape, len(parts)), dtype)
    step = max(1, TRANSPOSE_BLOCK_BYTES // max(1, out[:1].nbytes))
    order = [*range(1, first.ndim + 1), 0]
    for start in range(0, len(first), step):
        rows = slice(start, start + step)
        columns = aligned_empty((len(parts), *first[rows].shape), dtype)
        for i, part in enumerate(parts):
            columns[i] = part[rows]
        # as_tensor: the block as it is (through DLPack); np.asarray: no copy (.numpy() copies)
        out[rows] = np.asarray(tf.transpose(as_tensor(columns), order))
    return tensor_array(as_tensor(out))


def _wide(parts: list[Any]) -> bool:
    first = parts[0]
    return (
        len(parts) >= WIDE_COLUMNS
        and first.size > 0
        and all(p.shape == first.shape and p.dtype.kind in "biuf" for p in parts)
    )


def stack_columns(parts: list[Any], block_rows: int | None = None) -> Any:
    """``np.stack(parts, axis=-1)``, written a block of rows at a time.

    Stacking columns into rows is a transpose: each column's values land ``len(parts)``
    apart. Written whole, every value of a wide table touches a new cache line (65,536 rows
    of 512 float32 columns took 0.46-0.51 s); in blocks of at least
    :data:`STACK_BLOCK_ROWS` rows and :data:`STACK_BLOCK_BYTES` bytes, each block's rows
    stay in cache while every column is written into them (0.28 s; 32 columns: 10 -> 5 ms).
    From :data:`WIDE_COLUMNS` numeric columns on, TensorFlow transposes them instead
    (:func:`_transposed`: 0.06 s), and the result is a read-only array over the tensor's
    memory (:func:`tensor_array`). Either way the values are those of ``np.stack``.

    Args:
        parts: Equally shaped columns (NumPy arrays; anything else is passed to ``np.stack``).
        block_rows: Rows per block (default: from the row's size, as above; given, NumPy
            writes the blocks whatever the width).
    """
    first = parts[0] if parts else None
    if not all(isinstance(p, np.ndarray) for p in parts) or first is None or first.ndim == 0:
        return np.stack(parts, axis=-1)
    if block_rows is None and _wide(parts):
        return _transposed(parts)
    out = aligned_empty((*first.shape, len(parts)), np.result_type(*parts))
    row_bytes = max(1, out[:1].nbytes)
    step = block_rows or max(STACK_BLOCK_ROWS, STACK_BLOCK_BYTES // row_bytes)
    for start in range(0, max(len(first), 1), step):
        block = [p[start : start + step] for p in parts]
        np.stack(block, axis=-1, out=out[start : start + step])
    return out


def role_arrays(
    table: pa.Table | pa.RecordBatch,
    spec: RoleSpec | None,
    schema: Schema,
    ctx: tuple[str, int, str],
) -> Any:
    """Converts the columns of one role to its tensor structure (one array, stacked, or dict)."""
    if spec is None:
        return None

    def one(columns: str | tuple[str, ...]) -> Any:
        if isinstance(columns, str):
            return column_array(table.column(columns), columns, schema, ctx)
        parts = [column_array(table.column(c), c, schema, ctx) for c in columns]
        return stack_columns(parts)

    if isinstance(spec, Named):
        return {name: one(columns) for name, columns in spec.items}
    return one(spec)


def table_roles(
    table: pa.Table | pa.RecordBatch,
    schema: Schema,
    source: str,
    first_row: int = 0,
    caller: str = "fit",
    targets: bool = True,
) -> tuple[Any, Any, Any]:
    """Converts a table's feature, target and weight columns to ``(x, y, sample_weight)``."""
    ctx = (source, first_row, caller)
    x = role_arrays(table, schema.features, schema, ctx)
    y = role_arrays(table, schema.targets, schema, ctx) if targets else None
    weight = schema.sample_weight
    sw = column_array(table.column(weight), weight, schema, ctx) if weight and targets else None
    return x, y, sw
