"""Delta Lake and Iceberg tables' folders: what lies inside one is no plain Parquet data.

A table's folder keeps the files that later versions removed (a delete, an overwrite, a
compaction, until ``vacuum`` or ``expire_snapshots``): only the table's log or metadata says
which files hold its rows. So a Parquet path inside a table (the table's folder, a
partition folder of it, a glob or a file below it, as a path or a URI) is refused, and so is
an output written there (a stray file of the table, or one of its data files replaced).

A folder is a table's when it holds ``_delta_log/`` (Delta Lake) or ``metadata/`` with a
``*.metadata.json`` file (Iceberg). Every folder above a path is asked, up to the root (a
URI's bucket), each distinct folder once per :class:`TableFinder`: on an object store two
requests a folder (and a listing of ``metadata/`` where it exists). A folder the store does
not let us ask about counts as no table's. A folder given whole may hold a table below it:
its files' folders below it are asked too (:func:`refuse_tables_below`; on an object store
the folder's listing, which holds the tables' logs, answers without a request).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import posixpath
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.fs as pafs

from fitpipe.columnar.storage import filesystem_of, is_uri, local_file_path, parse_uri
from fitpipe.errors import DataMismatchError, message

__all__ = [
    "TableFinder",
    "TableFolder",
    "listed_tables",
    "local_kind",
    "refuse_table_paths",
    "refuse_tables_below",
]

DELTA, ICEBERG = "Delta Lake", "Iceberg"


@dataclasses.dataclass(frozen=True)
class TableFolder:
    """A table's folder: its ``kind`` (:data:`DELTA`, :data:`ICEBERG`) and ``root`` as named.

    ``root`` is a local path, or a URI (with the query of the URI it was found from).
    """

    kind: str
    root: str


def local_kind(folder: str) -> str | None:
    """The kind of table whose folder ``folder`` (a local path) is; None for none."""
    if os.path.isdir(os.path.join(folder, "_delta_log")):
        return DELTA
    if glob.glob(os.path.join(glob.escape(folder), "metadata", "*.metadata.json")):
        return ICEBERG
    return None


def _store_kind(filesystem: pafs.FileSystem, folder: str) -> str | None:
    try:
        log, metadata = filesystem.get_file_info([f"{folder}/_delta_log", f"{folder}/metadata"])
        if log.type == pafs.FileType.Directory:
            return DELTA
        if metadata.type != pafs.FileType.Directory:
            return None
        listed = filesystem.get_file_info(pafs.FileSelector(f"{folder}/metadata"))
    except (pa.ArrowException, OSError):  # (not ours to ask about: no table we can know of)
        return None
    return ICEBERG if any(i.path.endswith(".metadata.json") for i in listed) else None


def _above(folder: str, top: str) -> list[str]:
    """``folder`` and every folder above it, up to ``top`` (``/`` or a bucket)."""
    found = [folder]
    while found[-1] != top and posixpath.dirname(found[-1]) not in ("", found[-1]):
        found.append(posixpath.dirname(found[-1]))
    return found


class TableFinder:
    """Finds the table folder a path lies in, asking each distinct folder once."""

    def __init__(self, caller: str) -> None:
        """A finder whose store errors name ``caller``."""
        self.caller = caller
        self._seen: dict[tuple[str, str], str | None] = {}

    def around(self, path: str, is_file: bool | None = None) -> TableFolder | None:
        """The table folder ``path`` is or lies in; None where it lies in none.

        ``is_file``: whether ``path`` names a file (its folder is asked from its parent up);
        None to find out (a local path; a URI counts as a folder unless it is known a file).
        """
        local = local_file_path(path)
        if local is None and is_uri(path):
            location = parse_uri(path, self.caller)
            folder = posixpath.dirname(location.path) if is_file else location.path
            top = location.path.split("/", 1)[0] if location.buckets else "/"
            filesystem = filesystem_of(location, self.caller)
            for above in _above(folder, top):
                kind = self._asked(location.root, above, lambda f: _store_kind(filesystem, f))
                if kind is not None:
                    return TableFolder(kind, location.uri_of(above))
            return None
        real = os.path.realpath(os.path.abspath(local or path))
        start = os.path.dirname(real) if is_file or not os.path.isdir(real) else real
        for above in _above(start, "/"):
            kind = self._asked("", above, local_kind)
            if kind is not None:
                return TableFolder(kind, above)
        return None

    def _asked(self, store: str, folder: str, ask: Callable[[str], str | None]) -> str | None:
        key = (store, folder)
        if key not in self._seen:
            self._seen[key] = ask(folder)
        return self._seen[key]


def _fix(table: TableFolder) -> str:
    if table.kind == DELTA:
        python = f"`deltalake.DeltaTable({table.root!r})` (pip install deltalake)"
    else:
        python = (
            "`catalog.load_table(...)` or `pyiceberg.table.StaticTable.from_metadata(...)` "
            f"of the latest *.metadata.json in {table.root}/metadata (pip install pyiceberg)"
        )
    return (
        f"In Python, pass the table: {python}; the `fitpipe` command reads Parquet paths "
        "only: write the table's current rows to a Parquet folder outside it and pass that"
    )


def _is_root(path: str, table: TableFolder, caller: str) -> bool:
    if local_file_path(path) is None and is_uri(path):
        return parse_uri(path, caller).path == parse_uri(table.root, caller).path
    return os.path.realpath(os.path.abspath(local_file_path(path) or path)) == table.root


def refuse_table_paths(paths: Iterable[tuple[str, str, bool | None]], caller: str) -> None:
    """Refuses a Parquet path that is, or lies inside, a Delta Lake or Iceberg table's folder.

    Args:
        paths: Each path as given (a local path, a URI, a glob), a path it names (a glob's
            match) and whether that names a file (None: find out; see
            :meth:`TableFinder.around`).
        caller: The public method, for the message.

    Raises:
        DataMismatchError: Naming the path, the table's folder and how to read the table.
    """
    finder = TableFinder(caller)
    for given, path, is_file in paths:
        table = finder.around(path, is_file)
        if table is None:
            continue
        named = "it" if path == given else path
        where = "is the folder" if _is_root(path, table, caller) else "lies in the folder"
        raise _table_error(given, f"{named} {where}", table, caller)


def _table_error(given: str, what: str, table: TableFolder, caller: str) -> DataMismatchError:
    return DataMismatchError(
        message(
            caller,
            f"cannot read {given} as Parquet files: {what} of the {table.kind} table {table.root}",
            "A table's folder keeps files that later versions removed; only the table's "
            "log or metadata says which files hold its rows",
            _fix(table),
            path=given,
        )
    )


def listed_tables(listing: Iterable[str]) -> dict[str, str]:
    """The table folders a listing of every file below a folder shows (hidden names too).

    Returns:
        Each table's folder (as the listing names it) and its kind: a folder holding a
        ``_delta_log/`` file, or a ``metadata/*.metadata.json``.
    """
    found: dict[str, str] = {}
    for path in listing:
        parts = path.split("/")
        if "_delta_log" in parts[:-1]:
            found["/".join(parts[: parts.index("_delta_log")])] = DELTA
        elif len(parts) > 2 and parts[-2] == "metadata" and parts[-1].endswith(".metadata.json"):
            found.setdefault("/".join(parts[:-2]), ICEBERG)
    return found


def refuse_tables_below(
    given: str,
    base: str,
    files: Iterable[str],
    kind_of: Callable[[str], str | None],
    shown: Callable[[str], str],
    caller: str,
) -> None:
    """Refuses a folder's file that lies in a table's folder below the folder given.

    (The given folder and those above it are :func:`refuse_table_paths`'.)

    Args:
        given: The folder as given, for the message.
        base: Its path, as ``files`` name the files below it.
        files: The files read below it.
        kind_of: A folder's table kind (see :func:`listed_tables`), or None.
        shown: A folder or file as the user names it (a URI), for the message.
        caller: The public method, for the message.

    Raises:
        DataMismatchError: Naming the file, the table's folder and how to read the table.
    """
    kinds: dict[str, str | None] = {}
    top = base.rstrip("/")
    for path in files:
        folder = posixpath.dirname(path)
        while folder.startswith(top + "/"):
            if folder not in kinds:
                kinds[folder] = kind_of(folder)
            kind = kinds[folder]
            if kind is not None:
                table = TableFolder(kind, shown(folder))
                raise _table_error(given, f"{shown(path)} lies in the folder", table, caller)
            folder = posixpath.dirname(folder)
