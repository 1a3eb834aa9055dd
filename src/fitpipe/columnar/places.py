"""Where a path or URI points, in one form that compares: is an output one of the input's files?

``predict``'s output must not replace (or, for ``fitpipe predict``, join) the data it reads.
Both ask :func:`input_collision`, which compares every path in one normalized form
(:class:`Place`): a local path (or ``file://`` URI) absolute with its links resolved; a URI
as its store and ``bucket/key``, without its query (``?endpoint_override=...``) or trailing
slashes. So ``s3://b/in/``, ``s3://b/in`` and ``s3://b/in?endpoint_override=h:9000`` are one
prefix, and ``s3://b/in/a.parquet`` a key inside it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from typing import Any

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fitpipe.columnar.files import expand_paths, glob_cut, is_glob
from fitpipe.columnar.storage import (
    CHECK,
    display_path,
    hidden_below,
    is_uri,
    local_file_path,
    store_path,
    uri_info,
)
from fitpipe.columnar.tables import TableFinder
from fitpipe.columnar.uri_globs import uri_glob_matches

__all__ = ["Place", "input_collision", "place_of"]


@dataclasses.dataclass(frozen=True)
class Place:
    """A normalized location: ``store`` is "" for a local path (see :func:`place_of`)."""

    store: str
    path: str

    def below(self, folder: Place) -> str | None:
        """The part of this path below ``folder`` (``sub/a.parquet``); None if not below it."""
        base = folder.path.rstrip("/") + "/"
        if self.store != folder.store or not self.path.startswith(base):
            return None
        return self.path[len(base) :]


def place_of(path: str | os.PathLike[str]) -> Place:
    """The :class:`Place` of a local path, ``file://`` URI or object store URI."""
    given = os.fspath(path)
    local = local_file_path(given)
    if local is None and is_uri(given):
        return Place(*store_path(given))
    return Place("", os.path.realpath(os.path.abspath(local or given)))


def _input_paths(x: Any) -> list[str]:
    """The paths (files, folders, globs, URIs) of a path input ``x``; [] for other inputs."""
    entries = x if isinstance(x, (list, tuple)) else [x]
    if not entries or not all(isinstance(e, (str, os.PathLike)) for e in entries):
        return []
    paths = [os.fspath(e) for e in entries]
    return paths if all(isinstance(p, str) for p in paths) else []


def _table_files(x: Any) -> tuple[list[str], list[str]]:
    """The table folders and files of a columnar input (a Delta or Iceberg table, a dataset).

    A Delta table's files are those of its loaded version; an Iceberg table's or scan's,
    those its snapshot lists (none where it cannot be planned: reading it says why).
    """
    package = type(x).__module__.split(".", 1)[0]
    if package == "deltalake" and hasattr(x, "file_uris"):
        return [x.table_uri], list(x.file_uris())
    if package == "pyiceberg" and (hasattr(x, "scan") or hasattr(x, "plan_files")):
        scan = x.scan() if hasattr(x, "scan") else x
        try:
            files = [task.file.file_path for task in scan.plan_files()]
        except Exception:  # (an unknown snapshot: the read refuses it)
            files = []
        return [scan.table_metadata.location], files
    if isinstance(x, pads.FileSystemDataset):
        return [], [display_path(x.filesystem, path) for path in x.files]
    return [], []


def _columnar_collision(target: Place, x: Any) -> str | None:
    """How an output collides with a columnar input's table folder or files; None if not."""
    roots, files = _table_files(x)
    for root in roots:
        if target == place_of(root) or target.below(place_of(root)) is not None:
            return f"lies in the folder of the input table {root}"
    for path in files:
        if place_of(path) == target:
            return f"is the input file {path}"
    return None


def _glob_matches(glob: str, output: str, target: Place) -> bool:
    """Whether the output is a file the input glob would match (once written)."""
    if is_uri(glob) and local_file_path(glob) is None:
        return uri_glob_matches(glob, output)
    pattern = local_file_path(glob) or glob
    cut = glob_cut(pattern)  # the fixed folders, links resolved as the output's are
    fixed = os.path.realpath(os.path.abspath(pattern[:cut] or "."))
    if target.store != "":
        return False
    rest = target.path[len(fixed) + 1 :].split("/") if target.path.startswith(fixed + "/") else []
    wild = pattern[cut:].split("/")
    if "**" in pattern[cut:]:  # any folders: as glob.glob(recursive=True) does, or more
        return bool(rest) and fnmatch.fnmatch("/".join(rest), pattern[cut:].replace("**/", "*"))
    # "*" within a name, as glob.glob matches: one name of the path per part of the glob
    return len(rest) == len(wild) and all(map(fnmatch.fnmatch, rest, wild))


def _kind(path: str, caller: str, doing: str = "read") -> pafs.FileType:
    """What is at a path or URI (a file, a folder, nothing)."""
    if is_uri(path) and local_file_path(path) is None:
        return uri_info(path, caller, doing)[2].type
    local = os.path.realpath(local_file_path(path) or path)
    if os.path.isdir(local):
        return pafs.FileType.Directory
    return pafs.FileType.File if os.path.isfile(local) else pafs.FileType.NotFound


def input_collision(output: str, x: Any, folders: bool, caller: str) -> str | None:
    """How ``output`` collides with the files of the input ``x``; None where it does not.

    Refused: one of the input's files; a file the read of an input folder takes (an
    existing one, unless a name below the folder starts with '.' or '_', as a read skips);
    with ``folders``, any file inside an input folder or matching an input glob, since the
    next read would take it as input. For a columnar input (a Delta or Iceberg table, a
    ``pyarrow.dataset.FileSystemDataset``): one of its files, or any file inside the
    table's folder. And any file inside a Delta Lake or Iceberg table's folder, whatever
    the input: it would be a stray file of the table.

    Returns:
        The collision, worded after "`output` that" (``is the input file data/a.parquet``).
    """
    target = place_of(output)
    table = TableFinder(caller).around(output, is_file=True)
    if table is not None:
        return f"lies in the folder of the {table.kind} table {table.root}"
    where = _columnar_collision(target, x)
    if where is not None:
        return where
    for given in _input_paths(x):
        if folders and is_glob(given) and _glob_matches(given, output, target):
            return f"matches the input glob {given}"
        for path in expand_paths(given, caller):
            found = place_of(path)
            if found == target:
                return f"is the input file {path}"
            rest = target.below(found)
            if rest is None or _kind(path, caller) != pafs.FileType.Directory:
                continue
            if folders:
                return f"is inside the input folder {path}"
            if not hidden_below(rest) and _kind(output, caller, CHECK) == pafs.FileType.File:
                return f"is a file the input folder {path} holds"
    return None
