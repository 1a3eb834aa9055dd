"""Temporal columns as int64 counts in one unit, whatever unit they were stored in.

Timestamps of any unit (s, ms, us, ns) and any time zone (Arrow holds their instants in UTC)
become microseconds since 1970-01-01 UTC; durations and times of day become microseconds;
dates (``date32`` and ``date64``) become days since 1970-01-01. So the same instant is the
same number from an Arrow table, a pandas ``datetime64[ns]`` column or a Parquet file
written in any unit (legacy INT96 included). A finer unit is floored: a nanosecond
timestamp becomes the microsecond it falls in, before 1970 too (Arrow's unsafe cast would
truncate toward 1970 instead), and a ``date64`` the day its milliseconds fall in. A coarser
unit is multiplied, and a value beyond int64 microseconds (about 292,000 years either side
of 1970) is an error naming the column and the row, never a wrapped number.

A fill value of such a column is in the same units: a whole number of microseconds (days for
dates), an int or a float, converted to the column's own unit before its nulls are filled
(:func:`unit_fill`); one that is no whole count of that unit is refused.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from fitpipe.errors import SchemaError, message

__all__ = ["MICROS_PER_SECOND", "is_converted_temporal", "temporal_ints", "unit_fill"]

#: Microseconds in a second: the unit timestamps, durations and times of day convert to.
MICROS_PER_SECOND = 1_000_000

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_MS_PER_DAY = 86_400_000
_INT64_MAX = 2**63 - 1


def is_converted_temporal(arrow_type: pa.DataType) -> bool:
    """Tells whether a column of ``arrow_type`` is a timestamp, date, time or duration.

    Intervals (months, days and nanoseconds in one value) are not: no one count holds them.
    """
    return bool(pat.is_temporal(arrow_type) and not pat.is_interval(arrow_type))


def _micros_factor(arrow_type: pa.DataType) -> tuple[int, int]:
    """``(multiply, divide)``: a count of the type's unit to microseconds (days for dates)."""
    if pat.is_date32(arrow_type):
        return 1, 1
    if pat.is_date64(arrow_type):
        return 1, _MS_PER_DAY
    per_second = _PER_SECOND[arrow_type.unit]
    if per_second >= MICROS_PER_SECOND:
        return 1, per_second // MICROS_PER_SECOND
    return MICROS_PER_SECOND // per_second, 1


def _floored(ints: pa.Array, divide: int) -> pa.Array:
    """``floor(ints / divide)`` (Arrow's integer division truncates toward zero)."""
    if divide == 1:
        return ints
    quotient = pc.divide(ints, divide)
    behind = pc.less(pc.subtract(ints, pc.multiply(quotient, divide)), 0)
    return pc.if_else(behind, pc.subtract(quotient, 1), quotient)


def _range_error(
    ints: pa.Array, multiply: int, arrow_type: pa.DataType, name: str, ctx: tuple[str, int, str]
) -> SchemaError:
    source, offset, caller = ctx
    limit = _INT64_MAX // multiply
    outside = pc.or_(pc.greater(ints, limit), pc.less(ints, -limit))
    row = int(pc.index(outside, True).as_py())
    value = ints[row].as_py()
    return SchemaError(
        message(
            caller,
            f"cannot convert column {name!r} of type {arrow_type} to int64 microseconds: "
            f"row {offset + row} of {source} holds {value} {arrow_type.unit}, out of range",
            "Timestamps, durations and times of day become int64 microseconds, which hold "
            "about 292,000 years either side of 1970",
            "Drop or clip such rows upstream, or cast the column to int64 upstream to read "
            "its counts as they are",
            column=name,
        )
    )


def temporal_ints(array: pa.Array, name: str, ctx: tuple[str, int, str]) -> pa.Array:
    """A temporal column as int64 microseconds (days for dates), nulls kept.

    Args:
        array: A timestamp, date, time or duration array (see :func:`is_converted_temporal`).
        name: The column name, for messages.
        ctx: ``(source, first_row, caller)`` for messages.

    Raises:
        SchemaError: A value is beyond the range of int64 microseconds.
    """
    kind = array.type
    if pat.is_date32(kind) or pat.is_time32(kind):
        ints = array.cast(pa.int32()).cast(pa.int64())  # no direct cast to int64 for these
    else:
        ints = array.cast(pa.int64())
    multiply, divide = _micros_factor(kind)
    if multiply == 1:
        return _floored(ints, divide)
    try:
        return pc.multiply_checked(ints, multiply)
    except pa.ArrowInvalid:
        raise _range_error(ints, multiply, kind, name, ctx) from None


def unit_fill(arrow_type: pa.DataType, fill: Any) -> Any:
    """A fill value in the unit of ``arrow_type``'s values, given in converted units.

    An int fill of a timestamp, time or duration column is microseconds, of a date column
    days, and so is a float fill that is a whole number: it becomes an int count of the
    column's own unit, so that it converts back to itself. Any other fill is returned as it is.

    Raises:
        ValueError: The fill is not a whole count of the column's unit (e.g. 1,500
            microseconds for a column in milliseconds, 2.5 days), or not finite.
    """
    if not is_converted_temporal(arrow_type) or isinstance(fill, bool):
        return fill
    unit = "days" if pat.is_date(arrow_type) else "microseconds"
    if isinstance(fill, float):
        if not fill.is_integer():  # the column converts to whole microseconds (days)
            raise ValueError(f"{fill} {unit} is not a whole number of {unit}")
        fill = int(fill)
    if not isinstance(fill, int):
        return fill
    multiply, divide = _micros_factor(arrow_type)
    if multiply == 1:
        return fill * divide
    if fill % multiply:
        raise ValueError(f"{fill} {unit} is not a whole count of the column's unit")
    return fill // multiply
