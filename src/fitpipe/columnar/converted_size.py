"""The size of a Parquet source once converted, read from its Arrow schema, not its data.

:func:`converted_bytes` sums the bytes of the arrays the columns a mode reads convert to, so
that a source can be held in memory or streamed before a row is read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from fitpipe.columnar.parquet import ParquetPlan
from fitpipe.columnar.temporal import is_converted_temporal
from fitpipe.schemas import Mode, Named, Role, Schema

__all__ = ["converted_bytes"]


def _converted(arrow_type: pa.DataType, length: int | None) -> tuple[np.dtype, int] | None:
    """The NumPy dtype a column of ``arrow_type`` converts to and its values per row.

    As ``fitpipe.columnar.convert`` converts it: numbers and booleans keep their width,
    dates and times become int64, decimals float64, dictionaries their values, fixed-size
    lists their values times the list size, and lists padded to a declared ``length`` that
    many values. None for any other type (variable width: text, ragged lists).
    """
    if pa.types.is_fixed_size_list(arrow_type):
        inner = _converted(arrow_type.value_type, None)
        return None if inner is None else (inner[0], inner[1] * arrow_type.list_size)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _converted(arrow_type.value_type, None) if length is not None else None
        return None if inner is None or length is None else (inner[0], inner[1] * length)
    if pa.types.is_dictionary(arrow_type):
        return _converted(arrow_type.value_type, length)
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    if any(test(arrow_type) for test in numeric):
        return np.dtype(arrow_type.to_pandas_dtype()), 1
    if is_converted_temporal(arrow_type):
        return np.dtype(np.int64), 1
    if pa.types.is_decimal(arrow_type):
        return np.dtype(np.float64), 1
    return None


def _groups(schema: Schema, roles: tuple[Role, ...]) -> Iterator[str | tuple[str, ...]]:
    """The column groups each converted to one array: a column, or columns stacked."""
    for role, spec in ((Role.FEATURE, schema.features), (Role.TARGET, schema.targets)):
        if role in roles and spec is not None:
            yield from (cols for _, cols in spec.items) if isinstance(spec, Named) else [spec]
    if Role.WEIGHT in roles and schema.sample_weight:
        yield schema.sample_weight


def _column_converted(plan: ParquetPlan, schema: Schema, name: str) -> tuple[np.dtype, int] | None:
    index = plan.arrow_schema.get_field_index(name)
    if index < 0:
        return None
    return _converted(plan.arrow_schema.field(index).type, schema.length(name))


def converted_bytes(plan: ParquetPlan, schema: Schema, mode: Mode) -> float:
    """The bytes of the arrays the columns read convert to; inf if not of fixed width.

    Exact for the dtypes the conversion makes (float32 stays 4 bytes a value); columns
    stacked into one array take the width of their common dtype (``np.result_type``).
    """
    total = 0
    for group in _groups(schema, mode.roles):
        names = (group,) if isinstance(group, str) else group
        found = [_column_converted(plan, schema, name) for name in names]
        known = [f for f in found if f is not None]
        if len(known) < len(found):
            return math.inf
        total += np.result_type(*(f[0] for f in known)).itemsize * sum(f[1] for f in known)
    return total * plan.rows
