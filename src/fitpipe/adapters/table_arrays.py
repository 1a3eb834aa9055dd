"""An Arrow table without a schema: one 2-D input of all its columns, as Keras reads it.

Keras reads a ``pyarrow.Table``, a ``RecordBatch`` or a Polars DataFrame through
``np.asarray``: its columns, in order, stacked into one array of their common NumPy dtype. So
does fitpipe, through its own conversion of columns (the values of ``np.stack``), with the
checks NumPy does not make: every column holds numbers (or booleans), and no null, which
NumPy would make NaN silently (and a column of integers floats).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from fitpipe.adapters.arrow_leaves import fill_nulls_fix, first_null_column, null_refusal
from fitpipe.adapters.base import AdaptRequest
from fitpipe.columnar import column_array, example_fill, stack_columns, value_type
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message, raw
from fitpipe.schemas import OTHER_COLUMNS, Schema, column_listing

__all__ = ["table_array"]

#: Read for no column: the schema the columns are converted with (no fill, no lengths).
_ALL_COLUMNS = Schema(features=[OTHER_COLUMNS])


def _holds_numbers(arrow_type: pa.DataType) -> bool:
    kind = value_type(arrow_type)  # a dictionary's values, in the classic layout
    return bool(pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind))


def _received(table: pa.Table, source: str) -> Any:
    names = column_listing(table.column_names)
    return raw(f"{source} of {table.num_rows} rows and columns {names}")


def _schema_fix(request: AdaptRequest, what: str) -> str:
    """The clause offering ``schema=``: none for ``*_on_batch``, which take no schema."""
    if request.one_batch:
        return ""
    return f", or pass `schema=` to read the columns by role ({what})"


def _check_numbers(table: pa.Table, request: AdaptRequest, source: str) -> None:
    other = [f"{f.name} ({f.type})" for f in table.schema if not _holds_numbers(f.type)]
    if not other and table.num_columns:
        return
    shown = ", ".join(other[:8]) + (f" and {len(other) - 8} more" if len(other) > 8 else "")
    what = f"columns of other types than numbers: {shown}" if other else "no columns"
    fix = (
        "Cast those columns to numbers or drop them upstream (pyarrow: `table.cast(...)`, "
        "`table.drop_columns(...)`; Polars: `pl.col(...).cast(pl.Float64)`, `df.drop(...)`; "
        "SQL: `CAST(... AS DOUBLE)`)"
        if other
        else "Pass a table with feature columns"
    )
    why = "decimals, times and strings are converted there; a string column is an input of its own"
    raise FitpipeTypeError(
        message(
            request.caller,
            f"cannot read `x`, a {source} with {what}, as one array",
            "Without a schema a table is one 2-D input of all its columns, so they must all "
            "hold numbers or booleans",
            fix + _schema_fix(request, why),
            x=_received(table, source),
        )
    )


def _check_nulls(table: pa.Table, request: AdaptRequest, source: str) -> None:
    found = first_null_column(table)
    if found is None:
        return
    name, _ = found
    kind = table.schema.field(name).type
    fix = (
        fill_nulls_fix(kind, frame=True)
        + " or drop the column"
        + _schema_fix(
            request, f"`fitpipe.Schema(..., fill={{{name!r}: {example_fill(kind)}}})` fills them"
        )
    )
    shown = _received(table, source)
    raise FitpipeValueError(null_refusal(request.caller, "x", *found, fix, shown))


def table_array(table: pa.Table, request: AdaptRequest, source: str) -> np.ndarray:
    """``table``'s columns, in order, as one 2-D array of their common NumPy dtype.

    Args:
        table: The table (a record batch or a Polars frame read into one).
        request: The request (caller, ``one_batch``: the fixes offered).
        source: What the table is (``"Table"``, ``"DataFrame"``), for messages.

    Raises:
        FitpipeTypeError: A column holds no numbers (strings, dates, lists), or there is none.
        FitpipeValueError: A column holds a null (named, with its row).
    """
    _check_numbers(table, request, source)
    _check_nulls(table, request, source)
    ctx = (source, 0, request.caller)
    parts = [
        column_array(column, name, _ALL_COLUMNS, ctx)
        for name, column in zip(table.column_names, table.columns, strict=True)
    ]
    stacked: np.ndarray = stack_columns(parts)
    return stacked
