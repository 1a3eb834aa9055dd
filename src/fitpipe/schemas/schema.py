r"""``Schema``: which columns of columnar data are features, targets, weights and passthrough.

For ``features`` and ``targets``: a column name is one tensor; a list of names is stacked
along the last axis into one tensor; a dict maps model input (or output) names to a name or a
list. ``sample_weight`` is one column; ``passthrough`` columns are carried to prediction
output. ``fill`` gives the value that replaces nulls in a column (otherwise a null is an
error) and ``lengths`` the length that variable-length list columns are padded or truncated
to (otherwise they become ragged tensors).

A fill value is a bool, int, float (NaN and infinities too), str or bytes: exactly what
:meth:`Schema.to_dict` writes as JSON and :meth:`Schema.from_dict` reads back to an equal
schema (bytes as ``{"bytes": "<base64>"}``; a NaN fill equals any other NaN fill).

Wherever a column name goes, a selector may go too: a glob (``"px*"``), a regular expression
after ``re:`` (``"re:px\d+"``) or :data:`~fitpipe.schemas.columns.OTHER_COLUMNS` (every
column no other entry uses). Selectors are expanded against the data's columns in file order
when the schema meets the data (see :mod:`fitpipe.schemas.columns` and :meth:`Schema.resolve`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fitpipe.errors import FitpipeTypeError, FitpipeValueError, SchemaError, message
from fitpipe.schemas.columns import REGEX_PREFIX, compile_regex
from fitpipe.schemas.naming import schema_caller
from fitpipe.schemas.roles import Role

__all__ = ["Columns", "Named", "RoleSpec", "Schema"]

#: One column, or several stacked along the last axis.
Columns = str | tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Named:
    """A role given as a dict: model input (or output) names, each with its columns."""

    items: tuple[tuple[str, Columns], ...]


#: A role's columns: one tensor, or named tensors.
RoleSpec = Columns | Named


def _check_regex(name: str, where: str) -> None:
    if not name.startswith(REGEX_PREFIX):
        return
    try:
        compile_regex(name)
    except re.error as err:
        raise FitpipeValueError(
            message(
                schema_caller("Schema"),
                f"got an invalid regular expression for {where} ({err})",
                f"A selector starting with {REGEX_PREFIX!r} is a Python regular expression "
                "matched against whole column names",
                'Fix the expression, e.g. "re:px\\d+"',
                **{where: name},
            )
        ) from err


def _name(value: Any, where: str) -> str:
    """A column name: a non-empty str (a number is not taken for its text)."""
    if not isinstance(value, str):
        raise FitpipeTypeError(
            message(
                schema_caller("Schema"),
                f"got a column name for {where} that is not a str",
                "Column names are non-empty strings",
                'Pass the name as the data spells it, e.g. "id"',
                **{where: value},
            )
        )
    if not value:
        raise SchemaError(
            message(
                schema_caller("Schema"),
                f"got an empty column name for {where}",
                "Column names are non-empty strings",
                'Pass the name as the data spells it, e.g. "id"',
                **{where: value},
            )
        )
    _check_regex(value, where)
    return value


def _columns(value: Any, where: str) -> Columns:
    if isinstance(value, str):
        return _name(value, where)
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return tuple(_name(name, where) for name in value)
    raise FitpipeTypeError(
        message(
            schema_caller("Schema"),
            f"got an invalid column list for {where}",
            "Columns are a name, or a non-empty list of names stacked along the last axis",
            'Pass e.g. "age" or ["age", "income"]',
            **{where: value},
        )
    )


def _role(value: Any, where: str) -> RoleSpec | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        if not value:
            raise FitpipeTypeError(
                message(
                    schema_caller("Schema"),
                    f"got an empty dict for {where}",
                    "A dict maps model input or output names to columns",
                    "Add the names",
                    **{where: value},
                )
            )
        return Named(tuple((str(k), _columns(v, f"{where}[{k!r}]")) for k, v in value.items()))
    return _columns(value, where)


def _flat(spec: RoleSpec | None) -> Iterator[str]:
    if spec is None:
        return
    groups = [cols for _, cols in spec.items] if isinstance(spec, Named) else [spec]
    for columns in groups:
        yield from (columns,) if isinstance(columns, str) else columns


def _plain(spec: RoleSpec | None) -> Any:
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, Named):
        return {name: cols if isinstance(cols, str) else list(cols) for name, cols in spec.items}
    return list(spec)


def _items(values: Any, where: str) -> list[tuple[str, Any]]:
    """The entries of a ``fill`` or ``lengths`` mapping (None: none), keyed by column name."""
    if values is None:
        return []
    if not isinstance(values, Mapping):
        raise FitpipeTypeError(
            message(
                schema_caller("Schema"),
                f"got a `{where}` that is not a dict",
                f"`{where}` maps column names to values",
                f'Pass e.g. `{where}={{"age": 0}}`, or leave it out',
                **{where: values},
            )
        )
    return [(_name(k, f"{where} key"), v) for k, v in values.items()]


def _passthrough(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, Sequence):
        raise FitpipeTypeError(
            message(
                schema_caller("Schema"),
                "got a `passthrough` that is not a list of column names",
                "`passthrough` names the columns carried to prediction output",
                'Pass e.g. `passthrough=["id"]`',
                passthrough=value,
            )
        )
    return tuple(_name(c, "passthrough") for c in names)


#: The types a fill value may have: what a schema's JSON holds and reads back as it was.
FILL_TYPES = (bool, int, float, str, bytes)


def _fill(column: str, value: Any) -> Any:
    """A fill value: a bool, int, float, str or bytes (checked against its column later)."""
    if isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()
    for kind in FILL_TYPES:  # bool before int: bool is an int
        if isinstance(value, kind):
            plain: Any = kind  # subclasses (IntEnum, str enums) as their plain value
            return plain(value)
    raise FitpipeTypeError(
        message(
            schema_caller("Schema"),
            f"got a `fill` value for column {column!r} that is not a bool, int, float, str "
            "or bytes",
            "A fill value replaces each null of its column and is saved with the schema, so "
            "it is one of the values JSON holds (bytes written as base64)",
            f"Pass e.g. `fill={{{column!r}: 0}}` (a decimal column takes a float or a str "
            "such as '0.5')",
            fill=value,
        )
    )


def _saved_fill(value: Any) -> Any:
    """A fill value as :meth:`Schema.to_dict` writes it (bytes tagged, as base64)."""
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    return value


def _read_fill(column: Any, value: Any) -> Any:
    """A fill value as :meth:`Schema.to_dict` wrote it: ``{"bytes": base64}`` is bytes."""
    if not (isinstance(value, Mapping) and set(value) == {"bytes"}):
        return value
    try:
        return base64.b64decode(value["bytes"], validate=True)
    except (binascii.Error, TypeError, ValueError) as err:
        raise SchemaError(
            message(
                schema_caller("Schema.from_dict"),
                f"got an invalid bytes fill for column {column!r} ({err})",
                'A bytes fill is written as {"bytes": "<base64 text>"}',
                "Write the value's base64, e.g. `base64.b64encode(value)`",
                fill=dict(value),
            )
        ) from err


def _same(value: Any) -> Any:
    """A fill value as equality sees it: every NaN the same (NaN != NaN otherwise)."""
    return ("nan",) if isinstance(value, float) and math.isnan(value) else value


def _length(column: Any, value: Any) -> int:
    """A padded length: a positive int."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0:
        return int(value)
    raise FitpipeValueError(
        message(
            schema_caller("Schema"),
            f"got an invalid length for column {column!r} in `lengths`",
            "A length is a positive int: list columns are padded with 0 or truncated to it",
            f"Pass e.g. `lengths={{{column!r}: 8}}`, or leave the column out to read it ragged",
            lengths={column: value},
        )
    )


@dataclasses.dataclass(frozen=True, init=False, eq=False)
class Schema:
    """Declared roles of the columns of a table, stream or Parquet dataset.

    Args:
        features: Model inputs: a column, a list of columns (stacked), or a dict of those by
            input name.
        targets: Model targets, in the same forms (None for prediction-only data).
        sample_weight: A column of per-sample weights.
        passthrough: Columns carried to prediction output unchanged.
        fill: Value replacing nulls, by column; a null in any other used column is an error.
            A bool, int, float, str or bytes (for timestamp, duration and time columns an
            int of microseconds, for dates of days).
        lengths: Length that variable-length list columns are padded (with 0) or truncated
            to, by column; list columns not named here become ragged tensors.
    """

    features: RoleSpec
    targets: RoleSpec | None
    sample_weight: str | None
    passthrough: tuple[str, ...]
    fill: tuple[tuple[str, Any], ...]
    lengths: tuple[tuple[str, int], ...]

    def __init__(
        self,
        features: Any,
        targets: Any = None,
        sample_weight: str | None = None,
        passthrough: Sequence[str] | None = (),
        fill: Mapping[str, Any] | None = None,
        lengths: Mapping[str, int] | None = None,
    ) -> None:
        role = _role(features, "features")
        if role is None:
            raise FitpipeTypeError(
                message(
                    schema_caller("Schema"),
                    "needs `features`",
                    "Every schema names the model inputs",
                    'Pass e.g. `features=["x1", "x2"]`',
                    features=features,
                )
            )
        set_ = object.__setattr__
        set_(self, "features", role)
        set_(self, "targets", _role(targets, "targets"))
        if sample_weight is not None and not isinstance(sample_weight, str):
            raise FitpipeTypeError(
                message(
                    schema_caller("Schema"),
                    "got a `sample_weight` that is not one column name",
                    "`sample_weight` names one column of weights",
                    'Pass e.g. "weight"',
                    sample_weight=sample_weight,
                )
            )
        if sample_weight is not None:
            _name(sample_weight, "sample_weight")
        set_(self, "sample_weight", sample_weight)
        set_(self, "passthrough", _passthrough(passthrough))
        set_(self, "fill", tuple(sorted((k, _fill(k, v)) for k, v in _items(fill, "fill"))))
        lengths_ = sorted((k, _length(k, v)) for k, v in _items(lengths, "lengths"))
        set_(self, "lengths", tuple(lengths_))

    def _key(self) -> tuple[Any, ...]:
        fill = tuple((k, _same(v)) for k, v in self.fill)
        return (
            self.features,
            self.targets,
            self.sample_weight,
            self.passthrough,
            fill,
            self.lengths,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    # ------------------------------------------------------------------------- queries
    def columns(self, roles: Sequence[Role] = tuple(Role)) -> list[str]:
        """Names every column the given roles use, without repeats, in declaration order.

        Args:
            roles: The roles to list (default: all).
        """
        parts = {
            Role.FEATURE: lambda: _flat(self.features),
            Role.TARGET: lambda: _flat(self.targets),
            Role.WEIGHT: lambda: [self.sample_weight] if self.sample_weight else [],
            Role.PASSTHROUGH: lambda: self.passthrough,
        }
        found: dict[str, None] = {}  # a dict keeps order and finds repeats in O(1)
        for role in roles:
            found.update(dict.fromkeys(parts[role]()))
        return list(found)

    @functools.cached_property
    def _fill_by_column(self) -> dict[str, Any]:
        return dict(self.fill)

    @functools.cached_property
    def _length_by_column(self) -> dict[str, int]:
        return dict(self.lengths)

    def resolve(
        self,
        columns: Sequence[str],
        source: str = "the data",
        caller: str = "fit",
        roles: Sequence[Role] = tuple(Role),
    ) -> Schema:
        """This schema with its selectors expanded against the data's columns.

        Args:
            columns: The data's column names, in file order.
            source: The file or object the columns come from, for messages.
            caller: The public method being run, for messages.
            roles: The roles that are read; a selector of another role matching nothing is
                dropped instead of being an error.

        Returns:
            A schema naming plain columns (this one when it has no selectors).

        Raises:
            SchemaError: When a selector of a role that is read matches nothing.

        """
        from fitpipe.schemas.forms import resolve_schema

        return resolve_schema(self, columns, source, caller, roles)

    def fill_value(self, column: str) -> Any:
        """The declared null replacement of ``column``, or None.

        Args:
            column: A column name.
        """
        return self._fill_by_column.get(column)

    def length(self, column: str) -> int | None:
        """The declared padded length of list column ``column``, or None (ragged).

        Args:
            column: A column name.
        """
        return self._length_by_column.get(column)

    # ------------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict that :meth:`from_dict` turns back into an equal schema.

        Fill values are written as they are, but bytes as ``{"bytes": "<base64>"}``.
        """
        return {
            "features": _plain(self.features),
            "targets": _plain(self.targets),
            "sample_weight": self.sample_weight,
            "passthrough": list(self.passthrough),
            "fill": {column: _saved_fill(value) for column, value in self.fill},
            "lengths": dict(self.lengths),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Builds a schema from :meth:`to_dict`'s output (or a parsed TOML/JSON table).

        Args:
            data: The keys of :meth:`to_dict` (only ``features`` is required; a None value is
                the key left out).

        Raises:
            FitpipeTypeError: For unknown keys, a missing ``features`` or values of the wrong
                type.
            SchemaError: For an empty column name or an invalid bytes fill.
        """
        if not isinstance(data, Mapping):
            raise FitpipeTypeError(
                message(
                    schema_caller("Schema.from_dict"),
                    f"got a {type(data).__name__}, not a dict",
                    "A schema is a dict of the keys `Schema.to_dict` writes",
                    'Pass e.g. `{"features": ["age", "income"], "targets": "label"}`',
                    data=data,
                )
            )
        known = {"features", "targets", "sample_weight", "passthrough", "fill", "lengths"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FitpipeTypeError(
                message(
                    schema_caller("Schema.from_dict"),
                    f"got unknown keys {unknown}",
                    f"A schema has the keys {sorted(known)}",
                    "Remove or rename them",
                    data=dict(data),
                )
            )
        given = {key: value for key, value in data.items() if value is not None}
        fill = given.get("fill")
        if isinstance(fill, Mapping):
            given["fill"] = {k: _read_fill(k, v) for k, v in fill.items()}
        return cls(given.pop("features", None), **given)

    def to_json(self) -> str:
        """The schema as JSON text."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Parses :meth:`to_json`'s output.

        Args:
            text: The JSON text.

        Raises:
            SchemaError: For text that is not JSON (and what :meth:`from_dict` raises).
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:
            raise SchemaError(
                message(
                    "Schema.from_json",
                    f"cannot parse the text as JSON ({err})",
                    "The text is a JSON object of the keys `Schema.to_json` writes",
                    'Fix the text, e.g. \'{"features": ["age", "income"], "targets": "label"}\'',
                    text=text,
                )
            ) from err
        return cls.from_dict(data)
