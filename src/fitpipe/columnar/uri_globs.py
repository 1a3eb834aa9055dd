"""Globs in object store URIs: the keys a URI glob matches, listed from the folder above it.

``*`` matches within a name, ``**/`` any folders, ``[...]`` one character of a set; ``?`` is
not a wildcard in a URI (it starts the query, which each match keeps). The glob is written as
the URI is (percent-encoded, see :mod:`fitpipe.columnar.storage`): ``%5B`` is a ``[``, no
wildcard.
"""

from __future__ import annotations

import re
import urllib.parse

from fitpipe.columnar.storage import (
    files_below,
    filesystem_of,
    hidden_below,
    parse_uri,
    store_path,
)

__all__ = ["expand_uri", "uri_glob_matches"]


def _literal(text: str) -> str:
    return re.escape(urllib.parse.unquote(text))


def _set_end(glob: str, start: int) -> int:
    """The end of the set ``[...]`` at ``start`` (past its ``]``), as fnmatch reads it; 0: none.

    A ``]`` first in the set (after a ``!``) is one of its characters.
    """
    first = start + 1 + (glob[start + 1 : start + 2] == "!")
    end = glob.find("]", first + 1)
    return end + 1 if end > 0 else 0


def _pattern(glob: str) -> re.Pattern[str]:
    """A regular expression for a glob as written (percent-encoded).

    ``*`` matches within a name, ``**/`` any folders, ``[...]`` a set; the other text is
    percent-decoded (``%5B`` is a ``[``, no wildcard).
    """
    out, i, start = [], 0, 0
    while i < len(glob):
        if glob.startswith("**/", i):
            token, end = "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            token, end = ".*", i + 2
        elif glob[i] == "*":
            token, end = "[^/]*", i + 1
        elif glob[i] == "[" and (end := _set_end(glob, i)) > 0:
            body = urllib.parse.unquote(glob[i + 1 : end - 1])
            negated = body[:1] == "!"
            token = "[" + "^" * negated + re.sub(r"([\\\[\]^])", r"\\\1", body[negated:]) + "]"
        else:
            i += 1
            continue
        out += [_literal(glob[start:i]), token]
        i = start = end
    return re.compile("".join(out) + _literal(glob[start:]) + r"\Z")


def expand_uri(uri: str, caller: str) -> list[str]:
    """``uri``, or with a glob the URIs of the files it matches in sorted order.

    ``*`` matches within a name, ``**/`` any folders, ``[...]`` one character of a set; ``?``
    is not a wildcard in a URI (it starts the query, which each match keeps). As a folder's
    listing, a match below a name starting '.' or '_' is skipped unless the glob names it so.

    Raises:
        DataMismatchError: The store refuses to list the folder above the glob.
    """
    location = parse_uri(uri, caller)
    if location.glob is None:
        return [uri]
    filesystem = filesystem_of(location, caller)
    folder = location.glob_folder
    pattern, cut = _pattern(location.glob), len(folder) + 1 if folder else 0
    below = urllib.parse.unquote(location.glob)[cut:]
    return [
        location.uri_of(path)
        for path in files_below(filesystem, folder, uri, caller)
        if pattern.match(path) and not hidden_below(path[cut:], below)
    ]


def uri_glob_matches(glob: str, uri: str, caller: str = "predict") -> bool:
    """Whether ``uri`` is a key the URI glob ``glob`` matches (as :func:`expand_uri` lists)."""
    pattern, (store, path) = parse_uri(glob, caller), store_path(uri, caller)
    if pattern.glob is None or store_path(glob, caller)[0] != store:
        return False
    return _pattern(pattern.glob).match(path) is not None
