"""Dicts of arrays: named inputs of a model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fitpipe.adapters.arrays import ArrayFamilyAdapter, is_array_like


def holds_arrays(value: Any) -> bool:
    """Tells whether ``value`` is a non-empty list/tuple/dict whose leaves are all arrays."""
    if isinstance(value, Mapping):
        items: Any = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return False
    items = list(items)
    return bool(items) and all(is_array_like(v) or holds_arrays(v) for v in items)


class MappingAdapter(ArrayFamilyAdapter):
    """Takes a dict mapping input names to arrays/tensors."""

    name = "mapping"
    accepts = "a dict mapping input names to arrays/tensors"

    def can_adapt(self, x: Any) -> bool:
        """True for mappings whose values are arrays (empty ones too, to explain the error)."""
        return isinstance(x, Mapping) and (not x or holds_arrays(x))
