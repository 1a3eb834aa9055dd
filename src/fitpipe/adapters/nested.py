"""One walk over a nested structure (dicts, lists, tuples) that converts its leaves by path.

Adapters that convert the leaves of ``x``, ``y`` or ``sample_weight`` (the array family's
:func:`fitpipe.adapters.arrays.convert_structure`, a torch ``DataLoader``'s batches) share it:
each gives its own leaf conversion, which gets the leaf's path (``x['a'][0]``) for its error
messages, and says which values are leaves even though they look like structures, which
mappings it walks into, whether sequences keep their type, and what an empty one raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from fitpipe.schemas import is_namedtuple

__all__ = ["map_leaves"]


def _never(value: Any) -> bool:
    return False


def map_leaves(
    value: Any,
    path: str,
    leaf: Callable[[Any, str], Any],
    *,
    is_leaf: Callable[[Any], bool] = _never,
    mappings: type | tuple[type, ...] = Mapping,
    keep_types: bool = False,
    empty: Callable[[Any, str], Exception] | None = None,
) -> Any:
    """Rebuilds ``value`` with ``leaf(item, item_path)`` in place of each of its leaves.

    Mappings become dicts with the same keys (``path[key!r]``), lists and tuples sequences of
    their items (``path[i]``); anything else, or anything ``is_leaf`` takes, is a leaf.

    Args:
        value: The structure.
        path: The path of ``value`` itself (``"x"``), extended per level.
        leaf: Converts one leaf, given its path.
        is_leaf: Takes a value as a leaf before it is walked as a structure (a list of
            numbers that is one array, a sparse matrix that is a dict).
        mappings: The mapping types walked into (any other mapping is a leaf).
        keep_types: Whether lists and tuples keep their type (namedtuples rebuilt field by
            field); otherwise both become tuples.
        empty: Makes the error raised for an empty mapping, list or tuple (given it and its
            path); None walks them (they stay empty).

    Returns:
        The rebuilt structure.

    Raises:
        Exception: What ``empty`` makes, or what ``leaf`` raises.

    """

    def walk(value: Any, path: str) -> Any:
        if is_leaf(value):
            return leaf(value, path)
        if isinstance(value, mappings):
            if empty is not None and not value:
                raise empty(value, path)
            pairs = cast("Mapping[Any, Any]", value).items()
            return {k: walk(v, f"{path}[{k!r}]") for k, v in pairs}
        if isinstance(value, (list, tuple)):
            if empty is not None and not value:
                raise empty(value, path)
            items = [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if not keep_types:
                return tuple(items)
            return type(value)(*items) if is_namedtuple(value) else type(value)(items)
        return leaf(value, path)

    return walk(value, path)
