r"""Column selectors of a :class:`~fitpipe.schemas.Schema`, and column lists as errors show them.

Wherever a schema takes a column name it also takes a selector, expanded against the data's
columns in file order when the schema meets the data:

* a glob, ``"px*"`` or ``"band_[0-3]"`` (``*``, ``?`` and ``[...]`` as in
  :func:`fnmatch.fnmatchcase`): every column it matches. A string that is itself a column of
  the data is that column, even when it holds those characters;
* a regular expression after the prefix ``re:``, ``"re:px\d+"``: every column it matches
  in full (:func:`re.fullmatch`);
* :data:`OTHER_COLUMNS`: every column that no other entry of the schema uses.

A selector stands for a list of columns, stacked along the last axis like a list of names,
even when it matches one column. A selector that matches nothing is an error.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Sequence

__all__ = [
    "OTHER_COLUMNS",
    "REGEX_PREFIX",
    "closest_column",
    "column_listing",
    "is_selector",
    "matching_columns",
]

#: "Every column that no other entry of the schema uses", in the data's file order.
OTHER_COLUMNS = "<other columns>"

#: The prefix of a regular-expression selector: ``"re:px\\d+"``.
REGEX_PREFIX = "re:"

_GLOB_CHARS = frozenset("*?[")

#: Columns shown by name in a message before the rest are counted.
LISTED_COLUMNS = 12


def is_selector(name: str) -> bool:
    """Tells whether ``name`` is a selector (glob, ``re:`` expression, ``OTHER_COLUMNS``)."""
    return (
        name == OTHER_COLUMNS
        or name.startswith(REGEX_PREFIX)
        or any(ch in _GLOB_CHARS for ch in name)
    )


def compile_regex(selector: str) -> re.Pattern[str]:
    """The compiled expression of an ``re:`` selector (raises ``re.error`` when invalid)."""
    return re.compile(selector[len(REGEX_PREFIX) :])


def matching_columns(selector: str, names: Sequence[str]) -> list[str]:
    """The columns of ``names`` a glob or ``re:`` selector matches, in the order of ``names``.

    Args:
        selector: A glob, or ``re:`` followed by a regular expression.
        names: The data's columns in file order.

    Returns:
        The matches (empty when none).

    """
    if selector.startswith(REGEX_PREFIX):
        pattern = compile_regex(selector)
        return [n for n in names if pattern.fullmatch(n)]
    return [n for n in names if fnmatch.fnmatchcase(n, selector)]


def column_listing(names: Sequence[str], limit: int = LISTED_COLUMNS) -> str:
    """The columns in their order, cut to ``limit`` names and a count of the others.

    Args:
        names: Columns in file order.
        limit: Names shown before the rest are counted.

    Returns:
        E.g. ``"'id', 'px0', 'px1' ... and 62 more (65 columns)"``.

    """
    shown = ", ".join(repr(n) for n in names[:limit])
    if len(names) <= limit:
        return f"[{shown}]"
    return f"[{shown}, ... and {len(names) - limit} more] ({len(names)} columns)"


def closest_column(name: str, names: Sequence[str]) -> str | None:
    """The column of ``names`` closest to ``name`` (a likely typo), or None."""
    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    if not found:  # case alone differs: "PX10" for "px10"
        lower = {n.lower(): n for n in names}
        return lower.get(name.lower())
    return found[0]
