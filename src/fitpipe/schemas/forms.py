"""The forms ``schema=`` takes, and a schema's selectors resolved against the data's columns.

:func:`as_schema` accepts a :class:`Schema`, a mapping (what :meth:`Schema.from_dict` takes)
or the path of a schema file (JSON as :meth:`Schema.to_json` writes, or TOML with the same
keys). :func:`resolve_schema` expands globs, ``re:`` expressions and
:data:`~fitpipe.schemas.columns.OTHER_COLUMNS` (see :mod:`fitpipe.schemas.columns`) into the
data's column names, in file order. A caller that resolved a schema already passes the result
on (``fitpipe inspect`` hands it to the plan as ``AdaptRequest.resolved_schema``) rather than
resolving it twice.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Union

from fitpipe.errors import FitpipeTypeError, SchemaError, message
from fitpipe.schemas.columns import (
    OTHER_COLUMNS,
    column_listing,
    is_selector,
    matching_columns,
)
from fitpipe.schemas.naming import named_for
from fitpipe.schemas.roles import Role
from fitpipe.schemas.schema import Named, RoleSpec, Schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SchemaLike", "as_schema", "resolve_schema"]

#: What ``schema=`` takes: a schema, a mapping for :meth:`Schema.from_dict`, or a file path.
SchemaLike = Union[Schema, Mapping[str, Any], str, "os.PathLike[str]"]

_ALL_ROLES = tuple(Role)


def _read_schema_file(path: str, caller: str) -> Any:
    if not os.path.isfile(path):
        what = "is a folder" if os.path.isdir(path) else "does not exist: no such file"
        raise SchemaError(
            message(
                caller,
                f"cannot read the schema file {path!r}: it {what}",
                "A `schema` given as a path names a JSON file (as `Schema.to_json` writes) "
                "or a TOML file with the same keys",
                "Check the path, or pass a `fitpipe.Schema` or a dict",
                schema=path,
            )
        )
    try:
        with open(path, "rb") as handle:
            if path.lower().endswith(".toml"):
                return tomllib.load(handle)
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise SchemaError(
            message(
                caller,
                f"cannot read the schema file {path!r} ({err})",
                "A schema file is JSON (as `Schema.to_json` writes) or TOML with the same keys",
                "Fix the file",
                schema=path,
            )
        ) from err


def as_schema(value: Any, caller: str) -> Schema | None:
    """Turns what was given as ``schema=`` into a :class:`Schema` (None stays None).

    Args:
        value: A ``Schema``, a mapping of its keys, a path to a schema file, or None.
        caller: The public method being run, for messages.

    Returns:
        The schema, or None.

    Raises:
        SchemaError: When the file cannot be read or the mapping is not a valid schema.
        FitpipeTypeError: For any other type.

    """
    if value is None or isinstance(value, Schema):
        return value
    if isinstance(value, (str, os.PathLike)):
        data = _read_schema_file(os.fspath(value), caller)
        where = f"the schema file {os.fspath(value)!r}"
    elif isinstance(value, Mapping):
        data, where = value, "the `schema` mapping"
    else:
        raise FitpipeTypeError(
            message(
                caller,
                f"got a `schema` of type {type(value).__name__}",
                "`schema` is a `fitpipe.Schema`, a dict of its keys (as `Schema.from_dict` "
                "takes) or the path of a schema JSON file",
                'Pass e.g. `schema={"features": "px*", "targets": "label"}`',
                schema=value,
            )
        )
    if not isinstance(data, Mapping):
        raise SchemaError(
            message(
                caller,
                f"cannot use {where}: it holds a {type(data).__name__}, not a table of keys",
                "A schema has the keys features, targets, sample_weight, passthrough, fill "
                "and lengths",
                "Write it as an object of those keys",
                schema=value,
            )
        )
    if isinstance(value, Mapping):
        with named_for(caller):  # its errors name the bad key or value, and `caller`
            return Schema.from_dict(data)
    try:
        return Schema.from_dict(data)
    except (TypeError, ValueError) as err:
        raise SchemaError(
            message(
                caller,
                f"cannot use {where}",
                f"It must hold a valid schema, but: {str(err).rstrip('.')}",
                "Fix the file",
                schema=os.fspath(value),
            )
        ) from err


# ----------------------------------------------------------------------------- resolution
class _Resolver:
    """Expands the selectors of one schema against one table's columns."""

    def __init__(
        self, names: Sequence[str], source: str, caller: str, roles: Sequence[Role]
    ) -> None:
        self.names = list(names)
        self.present = set(self.names)
        self.source = source
        self.caller = caller
        self.roles = tuple(roles)

    def columns(self, entry: str | tuple[str, ...], role: Role) -> Any:
        """One tensor's columns with globs and expressions expanded; None when all dropped."""
        if isinstance(entry, str) and (entry in self.present or not is_selector(entry)):
            return entry
        found: list[str] = []
        for name in (entry,) if isinstance(entry, str) else entry:
            if name == OTHER_COLUMNS:
                found.append(name)  # expanded once every other column is known
            elif name in self.present or not is_selector(name):
                found.append(name)
            else:
                found.extend(self.matches(name, role))
        return found or None

    def matches(self, selector: str, role: Role, what: str | None = None) -> list[str]:
        """The columns ``selector`` matches; a SchemaError when none does and ``role`` is read."""
        found = matching_columns(selector, self.names)
        if not found and role in self.roles:
            raise SchemaError(
                message(
                    self.caller,
                    f"found no column matching {selector!r} in {self.source}",
                    f"The schema's {what or role.value + ' columns'} select by pattern; the "
                    f"data has columns {column_listing(self.names)}",
                    "Fix the pattern (globs use * ? [...]; regular expressions start with "
                    "`re:` and must match a whole name)",
                    pattern=selector,
                )
            )
        return found

    def role(self, spec: RoleSpec | None, role: Role) -> Any:
        """A role's spec in plain form (str, list or dict), selectors expanded."""
        if spec is None:
            return None
        if isinstance(spec, Named):
            items = {name: self.columns(cols, role) for name, cols in spec.items}
            kept = {k: v for k, v in items.items() if v is not None}
            return kept or None
        return self.columns(spec, role)

    def fill_in_other(self, value: Any, used: set[str]) -> Any:
        """Replaces :data:`OTHER_COLUMNS` with the columns no other entry uses."""
        if isinstance(value, dict):
            return {k: self.fill_in_other(v, used) for k, v in value.items()}
        if not isinstance(value, list) or OTHER_COLUMNS not in value:
            return value
        rest = [n for n in self.names if n not in used]
        if not rest:
            raise SchemaError(
                message(
                    self.caller,
                    f"found no column left for `fitpipe.OTHER_COLUMNS` in {self.source}",
                    "It stands for every column no other entry of the schema uses; the data "
                    f"has columns {column_listing(self.names)}",
                    "Name the columns instead, or check the data",
                    used=sorted(used),
                )
            )
        out: list[str] = []
        for name in value:
            out.extend(rest if name == OTHER_COLUMNS else [name])
        return out


def _flat_plain(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [c for v in value.values() for c in _flat_plain(v)]
    return list(value)


def _keyed(mapping: tuple[tuple[str, Any], ...], resolver: _Resolver, what: str) -> dict[str, Any]:
    """``fill`` or ``lengths`` with selector keys expanded to the columns they match.

    A selector that matches no column is a ``SchemaError`` where the data holds every role
    (``fit``, ``evaluate``); prediction data lacks the targets, so a selector meant for
    them may match nothing there.
    """
    out: dict[str, Any] = {}
    for key, value in mapping:
        if key in resolver.present or not is_selector(key):
            keys = [key]
        else:
            keys = resolver.matches(key, Role.TARGET, f"`{what}` keys")
        out.update(dict.fromkeys(keys, value))
    return out


def _check_one_other(schema: Schema, caller: str) -> None:
    uses = [c for c in _all_entries(schema) if c == OTHER_COLUMNS]
    if len(uses) > 1:
        raise SchemaError(
            message(
                caller,
                "got `fitpipe.OTHER_COLUMNS` more than once in the schema",
                "It stands for every column no other entry uses, so it can appear once",
                "Keep it in one role and name or select the other columns",
                schema=schema.to_dict(),
            )
        )


def _all_entries(schema: Schema) -> list[str]:
    plain = schema.to_dict()
    return [
        *_flat_plain(plain["features"]),
        *_flat_plain(plain["targets"]),
        *_flat_plain(plain["passthrough"]),
    ]


def has_selectors(schema: Schema) -> bool:
    """Tells whether the schema uses globs, ``re:`` expressions or ``OTHER_COLUMNS``."""
    keys = [k for k, _ in (*schema.fill, *schema.lengths)]
    return any(is_selector(c) for c in (*_all_entries(schema), *keys))


def resolve_schema(
    schema: Schema,
    names: Sequence[str],
    source: str = "the data",
    caller: str = "fit",
    roles: Sequence[Role] = _ALL_ROLES,
) -> Schema:
    """The schema with its selectors replaced by the columns they select, in file order.

    Args:
        schema: The declared schema.
        names: The data's columns in file order.
        source: The file or object the data comes from, for messages.
        caller: The public method being run.
        roles: The roles that are read: a selector of another role that matches nothing is
            dropped instead of being an error (prediction data has no target columns).

    Returns:
        A schema of plain column names (``schema`` itself when it has no selectors).

    Raises:
        SchemaError: When a selector of a role that is read matches nothing, or
            ``OTHER_COLUMNS`` appears twice.

    """
    if not has_selectors(schema):
        return schema
    return _resolved(schema, tuple(names), source, caller, roles)


def _resolved(
    schema: Schema, names: tuple[str, ...], source: str, caller: str, roles: Sequence[Role]
) -> Schema:
    _check_one_other(schema, caller)
    resolver = _Resolver(names, source, caller, roles)
    features = resolver.role(schema.features, Role.FEATURE)
    targets = resolver.role(schema.targets, Role.TARGET)
    passthrough = resolver.columns(schema.passthrough, Role.PASSTHROUGH) or []
    used = {
        c
        for c in (*_flat_plain(features), *_flat_plain(targets), *passthrough)
        if c != OTHER_COLUMNS
    }
    used.update([schema.sample_weight] if schema.sample_weight else [])
    features, targets, passthrough = (
        resolver.fill_in_other(part, used) for part in (features, targets, passthrough)
    )
    return Schema(
        features=features,
        targets=targets,
        sample_weight=schema.sample_weight,
        passthrough=passthrough,
        fill=_keyed(schema.fill, resolver, "fill"),
        lengths=_keyed(schema.lengths, resolver, "lengths"),
    )
