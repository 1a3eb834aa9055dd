"""Declared structure of the data: schemas of columns, roles and the batch unpacking rule."""

from fitpipe.schemas.columns import OTHER_COLUMNS, REGEX_PREFIX, closest_column, column_listing
from fitpipe.schemas.forms import SchemaLike, as_schema, resolve_schema
from fitpipe.schemas.roles import (
    Mode,
    Role,
    find_namedtuple,
    is_namedtuple,
    pack_roles,
    reject_namedtuple,
    split_roles,
)
from fitpipe.schemas.schema import Columns, Named, RoleSpec, Schema

__all__ = [
    "OTHER_COLUMNS",
    "REGEX_PREFIX",
    "Columns",
    "Mode",
    "Named",
    "Role",
    "RoleSpec",
    "Schema",
    "SchemaLike",
    "as_schema",
    "closest_column",
    "column_listing",
    "find_namedtuple",
    "is_namedtuple",
    "pack_roles",
    "reject_namedtuple",
    "resolve_schema",
    "split_roles",
]
