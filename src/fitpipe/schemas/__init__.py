"""Declared structure of the data: schemas of columns, roles and the batch unpacking rule."""

from fitpipe.schemas.roles import (
    Role,
    find_namedtuple,
    is_namedtuple,
    pack_roles,
    reject_namedtuple,
    split_roles,
)
from fitpipe.schemas.schema import Columns, Schema

__all__ = [
    "Columns",
    "Role",
    "Schema",
    "find_namedtuple",
    "is_namedtuple",
    "pack_roles",
    "reject_namedtuple",
    "split_roles",
]
