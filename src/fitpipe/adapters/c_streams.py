"""Arrow C stream exporters (Polars, DuckDB) read into one table, or a clear error.

pyarrow imports a C stream's schema whole: one column of a format it cannot import (Polars'
``Int128`` is ``'_pli128'``) fails the import, even a column the schema never uses, with a
raw ``ArrowInvalid`` naming no column. The stream's own schema is read here (the C data
interface's structs, read-only) to name the columns of that format in fitpipe's error.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pyarrow as pa

from fitpipe.errors import SchemaError, message, raw

__all__ = ["array_batch", "exports_array_only", "stream_fields", "stream_table"]


class _Schema(ctypes.Structure):
    """``struct ArrowSchema`` of the Arrow C data interface."""


_Schema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_Schema))),
    ("dictionary", ctypes.POINTER(_Schema)),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(_Schema))),
    ("private_data", ctypes.c_void_p),
]


class _Stream(ctypes.Structure):
    """``struct ArrowArrayStream`` of the Arrow C stream interface (the calls used here)."""

    _fields_ = [
        ("get_schema", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Schema))),
        ("get_next", ctypes.c_void_p),
        ("get_last_error", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


def _capsule_pointer(capsule: Any, name: bytes) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return int(get(capsule, name) or 0)


def stream_fields(x: Any) -> list[tuple[str, str]]:
    """``(name, format)`` of each top-level column of ``x``'s C stream ([] if unreadable).

    Format strings are the C data interface's (``'g'`` float64, ``'_pli128'`` Polars'
    Int128); the stream is exported afresh and released unread.
    """
    try:
        capsule = x.__arrow_c_stream__()
        pointer = _capsule_pointer(capsule, b"arrow_array_stream")
    except (AttributeError, TypeError, ValueError):
        return []
    if not pointer:
        return []
    stream = _Stream.from_address(pointer)
    schema = _Schema()
    if stream.get_schema(pointer, ctypes.byref(schema)) != 0:
        return []
    try:
        children = [schema.children[i].contents for i in range(schema.n_children)]
        return [((c.name or b"").decode(), (c.format or b"").decode()) for c in children]
    finally:
        if schema.release:
            schema.release(ctypes.byref(schema))


def _one_array(x: Any, kind: str, caller: str, interface: str) -> SchemaError:
    """The error of an exporter of one array (not a struct of columns) read as a table."""
    name = type(x).__name__
    return SchemaError(
        message(
            caller,
            f"cannot read {name} as a table: its `{interface}` is one array (of Arrow type "
            f"{kind}), not a table of columns",
            "A table exports a struct, one field per column",
            "Pass it as an array (e.g. `pyarrow.chunked_array(x)` or `pyarrow.array(x)`), or "
            "wrap it in a table, e.g. `pyarrow.table({'name': pyarrow.chunked_array(x)})`",
            x=raw(f"{name} exporting `{interface}` of type {kind}"),
        )
    )


def exports_array_only(x: Any) -> bool:
    """Whether ``x`` exports ``__arrow_c_array__`` alone (no stream, no NumPy array)."""
    kind = type(x)
    return (
        hasattr(kind, "__arrow_c_array__")
        and not hasattr(kind, "__arrow_c_stream__")
        and not hasattr(kind, "__array__")
        and not isinstance(x, (pa.Array, pa.ChunkedArray))
    )


def array_batch(x: Any, caller: str) -> pa.RecordBatch:
    """An ``__arrow_c_array__`` exporter of a struct array as a record batch, or an error."""
    try:
        return pa.record_batch(x)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError) as err:
        try:
            kind = str(pa.array(x).type)
        except (pa.ArrowException, TypeError, ValueError):
            kind = f"unreadable: {err}"
        raise _one_array(x, kind, caller, "__arrow_c_array__") from err


def _unreadable(x: Any, err: Exception, caller: str) -> SchemaError:
    one = re.search(r"describes non-struct type (.*)$", str(err))
    if one is not None:
        return _one_array(x, one.group(1), caller, "__arrow_c_stream__")
    found = re.search(r"format string: '([^']*)'", str(err))
    kind = found.group(1) if found else None
    named = [name for name, form in stream_fields(x) if kind is not None and form == kind]
    columns = ", ".join(repr(name) for name in named)
    if named:
        detail = f"column{'s' if len(named) > 1 else ''} {columns} of format {kind!r}"
    else:
        detail = str(err)
    example = repr(named[0]) if named else "'name'"
    received: dict[str, Any] = {"columns": named} if len(named) > 1 else {}
    if len(named) == 1:
        received = {"column": named[0]}
    return SchemaError(
        message(
            caller,
            f"cannot read the Arrow C stream of {type(x).__name__} ({detail})",
            "pyarrow imports a stream's columns all at once, so every column must be of a "
            "type Arrow knows, even one the schema does not use",
            f"Cast or drop such columns before passing the data, e.g. in Polars "
            f"`df.drop({example})` or `df.with_columns(pl.col({example}).cast(pl.Int64))`",
            **received,
        )
    )


def stream_table(x: Any, caller: str) -> pa.Table:
    """``pa.table(x)`` for a C stream exporter, or a SchemaError naming what Arrow refused."""
    try:
        return pa.table(x)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
        raise _unreadable(x, err, caller) from err
