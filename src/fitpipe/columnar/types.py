"""Which Arrow types a schema's columns may have, checked before the first step."""

from __future__ import annotations

import decimal
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from fitpipe.columnar.temporal import is_converted_temporal, unit_fill
from fitpipe.errors import SchemaError, message
from fitpipe.schemas import Named, Role, Schema, closest_column, column_listing

__all__ = [
    "EXPECTED_TYPES",
    "all_null_error",
    "check_arrow_schema",
    "check_fill",
    "checked_schema",
    "classic",
    "classic_table",
    "classic_type",
    "column_fill",
    "convertible",
    "duplicate_error",
    "example_fill",
    "field_types",
    "fill_type",
    "is_text",
    "named_columns",
    "one_array",
    "unknown_column",
    "value_type",
]

EXPECTED_TYPES = (
    "integers, floats, decimals, bool, fixed_size_list or list of those, string/binary, "
    "dictionary-encoded columns, timestamps, dates, times of day and durations"
)


def classic_type(arrow_type: pa.DataType) -> pa.DataType:
    """``arrow_type`` in Arrow's classic layout: views and run-end encoding undone.

    ``string_view`` and ``binary_view`` (how Polars hands over its strings, kept in Parquet
    files written from such tables) become ``large_string`` and ``large_binary``; list views
    large lists; a run-end encoded column its values' type; dictionaries and lists keep
    their form, their values converted the same way.
    """
    if pat.is_run_end_encoded(arrow_type):
        return classic_type(arrow_type.value_type)
    if pat.is_string_view(arrow_type):
        return pa.large_string()
    if pat.is_binary_view(arrow_type):
        return pa.large_binary()
    if pat.is_list_view(arrow_type) or pat.is_large_list_view(arrow_type):
        return pa.large_list(classic_type(arrow_type.value_type))
    nested = (pat.is_dictionary, pat.is_list, pat.is_large_list, pat.is_fixed_size_list)
    if not any(test(arrow_type) for test in nested):
        return arrow_type
    values = classic_type(arrow_type.value_type)
    if values == arrow_type.value_type:  # as it is (a list's field keeps its name)
        return arrow_type
    if pat.is_dictionary(arrow_type):
        return pa.dictionary(arrow_type.index_type, values, arrow_type.ordered)
    if pat.is_fixed_size_list(arrow_type):
        return pa.list_(values, arrow_type.list_size)
    return (pa.list_ if pat.is_list(arrow_type) else pa.large_list)(values)


def classic(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``column`` in Arrow's classic layout (:func:`classic_type`): as it is when it is.

    Arrow's kernels for rows (take, filter, sort) and for dictionaries have no cases for
    views in pyarrow 26; fitpipe converts such columns once, where it reads them.
    """
    target = classic_type(column.type)
    if target == column.type:
        return column
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([classic(chunk) for chunk in column.chunks], target)
    if pat.is_run_end_encoded(column.type):
        return classic(pc.run_end_decode(column))
    if pat.is_dictionary(column.type):  # ordered or not, as the type says (a Polars Enum is)
        values = classic(column.dictionary)
        return pa.DictionaryArray.from_arrays(column.indices, values, ordered=target.ordered)
    if pat.is_list_view(column.type) or pat.is_large_list_view(column.type):
        return _list_of_view(column, target)
    return column.cast(target)


def _list_of_view(column: pa.Array, target: pa.DataType) -> pa.Array:
    """A list view as a list: each row's values gathered in row order.

    pyarrow 26's cast from a list view gives an invalid list (its last offset is 0).
    """
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    sizes = np.where(nulls, 0, column.sizes.to_numpy(zero_copy_only=False)).astype("int64")
    starts = column.offsets.to_numpy(zero_copy_only=False).astype("int64")
    ends = np.cumsum(sizes)
    rows = np.repeat(np.arange(len(sizes)), sizes)
    picks = starts[rows] + np.arange(int(ends[-1]) if len(ends) else 0) - (ends - sizes)[rows]
    values = classic(column.values.take(pa.array(picks, pa.int64())))
    offsets = pa.array(np.concatenate([[0], ends]), pa.int64())
    mask = pa.array(nulls) if nulls.any() else None
    return pa.LargeListArray.from_arrays(offsets, values, mask=mask).cast(target)


def classic_table(table: pa.Table) -> pa.Table:
    """``table`` with every column in Arrow's classic layout (the same table when it is)."""
    if all(classic_type(field.type) == field.type for field in table.schema):
        return table
    return pa.table({name: classic(table.column(name)) for name in table.column_names})


def value_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a column is read as: dictionary columns as their values, layouts classic."""
    arrow_type = classic_type(arrow_type)
    if pat.is_dictionary(arrow_type):
        return arrow_type.value_type
    return arrow_type


def one_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one array: a chunked column of one chunk is that chunk, not a copy.

    pyarrow's ``combine_chunks`` copies every value even of a single chunk (pyarrow 26): a
    row group read whole is one chunk per column, and converting it copied each column once
    more into fresh memory (0.09-0.24 s for 64,000 x 512 float32). Columns of several
    chunks are joined as before (zero chunks: an empty array of the column's type).
    """
    if not isinstance(column, pa.ChunkedArray):
        return column
    if column.num_chunks == 1:
        return column.chunk(0)
    return column.combine_chunks()


def _scalar(arrow_type: pa.DataType) -> bool:
    return bool(
        pat.is_integer(arrow_type)
        or pat.is_floating(arrow_type)
        or pat.is_boolean(arrow_type)
        or is_converted_temporal(arrow_type)
        or pat.is_decimal(arrow_type)
    )


def is_text(arrow_type: pa.DataType) -> bool:
    """Tells whether a column of ``arrow_type`` holds strings or bytes.

    In any of Arrow's layouts: ``string_view`` is how Polars hands over its strings.
    """
    return bool(
        pat.is_string(arrow_type)
        or pat.is_large_string(arrow_type)
        or pat.is_string_view(arrow_type)
        or pat.is_binary(arrow_type)
        or pat.is_large_binary(arrow_type)
        or pat.is_binary_view(arrow_type)
    )


def example_fill(arrow_type: pa.DataType) -> str:
    """A fill value of a column's type, as the fix of an error words it.

    Of its innermost values' type: ``''`` for strings and bytes, ``False`` for booleans (Arrow
    and Polars refuse ``0`` there), ``0`` for numbers, decimals and times.
    """
    kind = fill_type(arrow_type)
    if is_text(kind):
        return "''"
    return "False" if pat.is_boolean(kind) else "0"


def convertible(arrow_type: pa.DataType) -> bool:
    """Tells whether fitpipe can turn a column of ``arrow_type`` into a tensor."""
    arrow_type = value_type(arrow_type)
    if _scalar(arrow_type) or is_text(arrow_type):
        return True
    if pat.is_fixed_size_list(arrow_type):  # of fixed shape: no variable-length lists inside
        inner = value_type(arrow_type.value_type)
        return not (pat.is_list(inner) or pat.is_large_list(inner)) and convertible(inner)
    if pat.is_list(arrow_type) or pat.is_large_list(arrow_type):
        return _scalar(value_type(arrow_type.value_type))
    return False


def _stackable(arrow_type: pa.DataType) -> bool:
    return _scalar(value_type(arrow_type))


def field_types(arrow_schema: pa.Schema) -> tuple[dict[str, pa.DataType], set[str]]:
    """The type of each column by name, and the names that occur more than once (one pass)."""
    types: dict[str, pa.DataType] = {}
    repeated: set[str] = set()
    for field in arrow_schema:
        if field.name in types:
            repeated.add(field.name)
        types[field.name] = field.type
    return types, repeated


def unknown_column(column: str, names: Sequence[str], source: str, caller: str) -> SchemaError:
    """The error for a column the schema uses that the data lacks, with the closest match.

    Args:
        column: The missing column.
        names: The data's columns in file order.
        source: The file or object the data comes from.
        caller: The public method being run.

    Returns:
        The error, naming the closest column ("did you mean ...?") when one is close, and the
        data's columns in file order, cut to a readable length.

    """
    guess = closest_column(column, names)
    hint = f" (did you mean {guess!r}?)" if guess is not None else ""
    return SchemaError(
        message(
            caller,
            f"cannot find column {column!r} in {source}{hint}",
            f"The schema uses it; the data has columns {column_listing(names)}",
            "Fix the column name in the `fitpipe.Schema` (or select columns with a pattern "
            'such as "px*"), or select other data',
            column=column,
        )
    )


def duplicate_error(column: str, source: str, caller: str, used: bool = True) -> SchemaError:
    """The error for a column name that occurs more than once in ``source``.

    ``used``: the schema uses the column; else Arrow could not open the files at all.
    """
    expected = (
        "Each column the schema uses has a name no other column of the data has"
        if used
        else "Arrow opens a Parquet source only when its first file has no two columns of "
        "one name, used by the schema or not"
    )
    return SchemaError(
        message(
            caller,
            f"found two columns named {column!r} in {source}",
            expected,
            "Rename or drop one of them upstream",
            column=column,
        )
    )


def _fill_error(column: str, fill: Any, found: pa.DataType, source: str, caller: str) -> Any:
    return SchemaError(
        message(
            caller,
            f"cannot fill the nulls of column {column!r} of type {found} in {source} with {fill!r}",
            "A `fill` value is a value of the column's type (for list columns: of their "
            "values' type)",
            f"Pass e.g. `fill={{{column!r}: {example_fill(found)}}}`, or cast the column upstream",
            fill=fill,
        )
    )


def fill_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a fill value takes for a column: its innermost value type."""
    arrow_type = value_type(arrow_type)
    while (
        pat.is_list(arrow_type)
        or pat.is_large_list(arrow_type)
        or pat.is_fixed_size_list(arrow_type)
    ):
        arrow_type = value_type(arrow_type.value_type)
    return arrow_type


def column_fill(arrow_type: pa.DataType, fill: Any) -> Any:
    """A schema's fill value as a value of ``arrow_type`` (a column's innermost value type).

    Fill values are in converted units: a float or str fill of a decimal column is that
    decimal (the column becomes float64), an int fill of a float column a float (checked to
    be exact by :func:`check_fill`), an int or whole float fill of a temporal column
    microseconds (days for dates, see :func:`~fitpipe.columnar.temporal.unit_fill`).

    Raises:
        ValueError: The fill is no value of the type (Arrow's own checks come after).
    """
    if pat.is_decimal(arrow_type) and isinstance(fill, float | str):
        try:
            return decimal.Decimal(repr(fill) if isinstance(fill, float) else fill)
        except decimal.InvalidOperation as err:
            raise ValueError(f"{fill!r} is not a decimal number") from err
    if pat.is_floating(arrow_type) and isinstance(fill, int):
        return float(fill)  # Arrow refuses ints beyond 2**24 for float32, exact or not
    return unit_fill(arrow_type, fill)


def _kept(target: pa.DataType, fill: Any, scalar: pa.Scalar) -> bool:
    """Tells whether ``scalar`` (``fill`` as a value of ``target``) is still ``fill``.

    An int fill must be exact, whatever the column (Arrow truncates 1.5 to 1 for an integer
    column, and rounds 2049 to 2048 for a float16 one); a float fill of a float column is
    rounded to its precision, but a finite one beyond its range (an infinity) is refused.
    """
    if pat.is_integer(target) or (pat.is_floating(target) and isinstance(fill, int)):
        return bool(scalar.as_py() == fill)
    if pat.is_floating(target):
        return math.isfinite(scalar.as_py()) or not math.isfinite(fill)
    return True


def check_fill(schema: Schema, types: dict[str, pa.DataType], source: str, caller: str) -> None:
    """Checks that each declared fill value is a value of its column's type, exactly."""
    for column, fill in schema.fill:
        if column not in types:
            continue
        target = fill_type(types[column])
        try:
            exact = _kept(target, fill, pa.scalar(column_fill(target, fill), type=target))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            exact = False
        if not exact:
            raise _fill_error(column, fill, types[column], source, caller)


def named_columns(schema: Schema, roles: Sequence[Role]) -> list[str]:
    """The columns data read in ``roles`` must have, without repeats.

    Those the roles read, the passthrough columns (in every call: a misspelt one would be
    missing from prediction output), and the ``fill`` and ``lengths`` keys, but for columns
    of roles not read (a target's fill, in prediction data without targets).
    """
    unread = set(schema.columns([r for r in Role if r not in roles and r is not Role.PASSTHROUGH]))
    keyed = [k for k, _ in (*schema.fill, *schema.lengths) if k not in unread]
    return list(dict.fromkeys([*schema.columns(roles), *schema.passthrough, *keyed]))


def all_null_error(column: str, source: str, caller: str) -> SchemaError:
    """The error of a used column of Arrow type ``null``: no value says what it holds.

    Args:
        column: The column.
        source: Where it is of type null (the object, or the files of a Parquet source).
        caller: The public method being run.
    """
    return SchemaError(
        message(
            caller,
            f"cannot convert column {column!r} of {source}: it is of Arrow type null (every "
            "value is missing, e.g. a Polars column of all None), which says nothing of the "
            "type its values have",
            "A column used for training has a type of values, even where all are null (a "
            "`fill` then fills them)",
            "Cast it upstream to its values' type (e.g. Polars `pl.col(name).cast(pl.Float64)`, "
            "pyarrow `table.set_column(i, name, column.cast(pyarrow.float64()))`), or leave "
            "it out of the schema",
            column=column,
        )
    )


def check_arrow_schema(
    schema: Schema,
    arrow_schema: pa.Schema,
    source: str,
    roles: Sequence[Role] = (Role.FEATURE, Role.TARGET, Role.WEIGHT, Role.PASSTHROUGH),
    caller: str = "fit",
) -> None:
    """Checks that every column the roles use exists and converts, before any step runs.

    Passthrough columns and ``fill``/``lengths`` keys must exist too (:func:`named_columns`).

    One pass over the data's columns and one over the schema's: linear in both.

    Args:
        schema: The declared schema.
        arrow_schema: The data's Arrow schema.
        source: The file or object the data comes from, for messages.
        roles: The roles to check (prediction needs no targets).
        caller: The public method being run.

    Raises:
        SchemaError: Naming the column, the source, and the expected and found types.
    """
    types, repeated = field_types(arrow_schema)
    used = set(schema.columns(tuple(r for r in roles if r != Role.PASSTHROUGH)))
    for column in named_columns(schema, roles):
        if column not in types:
            raise unknown_column(column, arrow_schema.names, source, caller)
    for column in schema.columns(roles):
        found = types[column]
        if column in repeated:
            raise duplicate_error(column, source, caller)
        if column in used and pat.is_null(found):
            raise all_null_error(column, source, caller)
        if column in used and not convertible(found):
            raise SchemaError(
                message(
                    caller,
                    f"cannot convert column {column!r} of type {found} in {source}",
                    f"Columns used for training are {EXPECTED_TYPES}",
                    "Cast the column upstream, or leave it out of the schema",
                    column=column,
                )
            )
    for stacked in _stacked_groups(schema, roles):
        for column in stacked:
            found = types[column]
            if not _stackable(found):
                raise SchemaError(
                    message(
                        caller,
                        f"cannot stack column {column!r} of type {found} in {source}",
                        "A list of columns is stacked along the last axis, so each must "
                        "hold one number per row",
                        "Give list or string columns a tensor of their own",
                        column=column,
                    )
                )
    check_fill(schema, types, source, caller)


def checked_schema(
    schema: Schema,
    arrow_schema: pa.Schema,
    source: str,
    roles: Sequence[Role] = (Role.FEATURE, Role.TARGET, Role.WEIGHT, Role.PASSTHROUGH),
    caller: str = "fit",
) -> Schema:
    """Resolves the schema's selectors against the data's columns, then checks it.

    Args:
        schema: The declared schema (selectors allowed).
        arrow_schema: The data's Arrow schema.
        source: The file or object the data comes from, for messages.
        roles: The roles that are read.
        caller: The public method being run.

    Returns:
        The schema naming plain columns, checked by :func:`check_arrow_schema`.

    Raises:
        SchemaError: For a selector matching nothing, a missing or unconvertible column.

    """
    resolved = schema.resolve(arrow_schema.names, source, caller, roles)
    check_arrow_schema(resolved, arrow_schema, source, roles, caller)
    return resolved


def _stacked_groups(schema: Schema, roles: Sequence[Role]) -> list[tuple[str, ...]]:
    groups: list[tuple[str, ...]] = []
    specs = [schema.features if Role.FEATURE in roles else None]
    specs.append(schema.targets if Role.TARGET in roles else None)
    for spec in specs:
        if spec is None:
            continue
        parts = [cols for _, cols in spec.items] if isinstance(spec, Named) else [spec]
        groups.extend(cols for cols in parts if not isinstance(cols, str))
    return groups
