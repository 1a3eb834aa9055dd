"""Declared structure of the data: fields, roles and the batch unpacking rule."""

from fitpipe.schemas.roles import (
    Role,
    find_namedtuple,
    is_namedtuple,
    pack_roles,
    reject_namedtuple,
    split_roles,
)

__all__ = [
    "Role",
    "find_namedtuple",
    "is_namedtuple",
    "pack_roles",
    "reject_namedtuple",
    "split_roles",
]
