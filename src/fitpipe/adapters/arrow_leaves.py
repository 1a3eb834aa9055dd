"""Arrow data given where an array is (a column, a table, a Polars Series): no nulls.

NumPy has no nulls: converting an Arrow column (``np.asarray`` of a ``pyarrow.Array`` or
``ChunkedArray``, a Polars Series, a table's columns) makes a null NaN and a column of
integers with one floats, silently. fitpipe drops nothing silently: a null in Arrow data read
as an array is refused, naming its column and row.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from fitpipe.columnar import classic, example_fill, fill_type, one_array, value_type
from fitpipe.errors import FitpipeValueError, message, raw

__all__ = [
    "arrow_data",
    "check_arrow_nulls",
    "fill_nulls_fix",
    "first_null",
    "first_null_column",
    "null_refusal",
]

ArrowData: TypeAlias = pa.Array | pa.ChunkedArray | pa.Table


def arrow_data(value: Any) -> ArrowData | None:
    """``value`` as Arrow data when it is Arrow data or exports it; else None.

    pyarrow arrays, chunked arrays, tables and record batches as they are; objects exporting
    the Arrow C interfaces (a Polars Series or DataFrame) imported without a copy. pandas
    objects (which export a stream too) are read by pandas' rules, and data Arrow cannot
    import is left to NumPy's conversion (None).
    """
    if isinstance(value, (pa.Array, pa.ChunkedArray, pa.Table)):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    kind = type(value)
    if (getattr(kind, "__module__", "") or "").startswith("pandas"):
        return None
    try:
        if hasattr(kind, "__arrow_c_array__"):
            return pa.array(value)
        if hasattr(kind, "__arrow_c_stream__"):
            shape = getattr(value, "shape", None)
            return pa.chunked_array(value) if len(shape or ()) == 1 else pa.table(value)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return None


def first_null(column: pa.Array | pa.ChunkedArray) -> int | None:
    """The first row of ``column`` holding a null, or None.

    A null row, a null value of a dictionary, or a null inside a row of fixed-size lists (a
    Polars ``Array`` column: NumPy makes it NaN in the row's array).
    """
    nested = pat.is_dictionary(column.type) or pat.is_fixed_size_list(column.type)
    if column.null_count == 0 and not nested:
        return None
    found = np.flatnonzero(_null_rows(classic(one_array(column))))
    return int(found[0]) if found.size else None


def _null_rows(array: pa.Array) -> np.ndarray:
    """Per row, whether it is null or holds a null (in fixed-size lists, at any depth)."""
    if pat.is_dictionary(array.type):  # its nulls may be in its dictionary, not its indices
        array = array.dictionary_decode()
    rows = np.zeros(len(array), bool)
    if array.null_count:
        rows |= array.is_null().to_numpy(zero_copy_only=False)
    if pat.is_fixed_size_list(array.type) and len(array):
        size = array.type.list_size
        values = array.values.slice(array.offset * size, len(array) * size)  # (offset kept)
        rows |= _null_rows(values).reshape(len(array), size).any(axis=1)
    return rows


def null_refusal(caller: str, path: str, column: str | None, row: int, fix: str, shown: Any) -> str:
    """The message refusing a null at ``row`` (of ``column``, a table's) of Arrow data.

    ``shown``: the data, as shown after "Received:" (a :func:`fitpipe.errors.raw` text).
    """
    where = "it holds" if column is None else f"its column {column!r} holds"
    return message(
        caller,
        f"cannot read `{path}` as an array: {where} a null at row {row}",
        "An array has no nulls: NumPy would make them NaN (and integers floats) silently",
        fix,
        **{path: shown},
    )


def _size(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is None:
        return f"{len(value)} rows"
    return f"shape {tuple(shape)}"


def fill_nulls_fix(arrow_type: pa.DataType, frame: bool = False) -> str:
    """The fix filling the nulls of a column of ``arrow_type``, with a value of its type.

    ``''`` for strings, ``False`` for booleans, ``0`` for numbers (Arrow's ``fill_null``
    refuses a value of another type); a list column's nulls may be in its rows, which
    ``fill_null`` of the column does not reach. ``frame``: the data is a table (Polars'
    ``df.fill_null``), not a column.
    """
    value = example_fill(arrow_type)
    if fill_type(arrow_type) != value_type(arrow_type):  # lists
        return f"Fill the nulls first (null rows and nulls inside rows, e.g. with {value})"
    polars = f"df.fill_null({value})" if frame else f".fill_null({value})"
    arrow = f"pyarrow.compute.fill_null(column, {value})"
    return f"Fill the nulls first (e.g. `{arrow}`, Polars' `{polars}`)"


def first_null_column(data: ArrowData) -> tuple[str | None, int] | None:
    """The first column of ``data`` holding a null (None: one column) and its row; None."""
    columns: list[tuple[str | None, Any]] = [(None, data)]
    if isinstance(data, pa.Table):
        columns = list(zip(data.column_names, data.columns, strict=True))
    for name, column in columns:
        row = first_null(column)
        if row is not None:
            return name, row
    return None


def _column(data: ArrowData, name: str | None) -> pa.Array | pa.ChunkedArray:
    return data if name is None or not isinstance(data, pa.Table) else data.column(name)


def check_arrow_nulls(value: Any, caller: str, path: str) -> None:
    """Refuses a null in Arrow data read as an array (a column, a table's columns).

    Raises:
        FitpipeValueError: ``value`` is or exports Arrow data that holds a null.
    """
    data = arrow_data(value)
    found = None if data is None else first_null_column(data)
    if found is not None:
        fix = fill_nulls_fix(_column(data, found[0]).type) + " or drop the rows that hold them"
        shown = raw(f"{type(value).__name__} of {_size(value)}")
        raise FitpipeValueError(null_refusal(caller, path, *found, fix, shown))
