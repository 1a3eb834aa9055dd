"""Parquet sources opened as datasets: the files a path names, and their partition columns.

A source is a file, a folder, a glob or a list of those. Hive partition folders (``k=v``)
give columns only below what was passed, as Spark discovers partitions below the paths it
is given:

* a folder: the folders below it (``sales/`` holding ``country=DE/part-0.parquet`` has a
  column ``country``);
* a glob: the folders below its base, the folder before its first wildcard
  (``sales/*/*.parquet`` has ``country``; ``sales/country=DE/*.parquet`` has not);
* a file: none;
* a list: each of its paths as if passed alone.

A folder above them (``/data/y=1/export/part-0.parquet``) is never read as a partition, so
a file's own column ``y`` keeps its values.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fitpipe.columnar.files import expand_paths, file_error, glob_cut, is_glob, parquet_format
from fitpipe.columnar.storage import (
    display_path,
    is_uri,
    list_prefix,
    missing_what,
    parse_uri,
    resolve_uri,
    uri_info,
)
from fitpipe.columnar.tables import (
    listed_tables,
    local_kind,
    refuse_table_paths,
    refuse_tables_below,
)
from fitpipe.columnar.types import duplicate_error
from fitpipe.errors import DataMismatchError, SchemaError, message, missing_path_fix

__all__ = ["existing_paths", "glob_base", "open_dataset"]


def _files_of(paths: list[str]) -> Iterator[str]:
    """The files of ``paths``, a folder's in path order (names starting '.' or '_' skipped)."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d[0] not in "._")
            yield from (os.path.join(folder, n) for n in sorted(names) if n[0] not in "._")


def _duplicated(paths: list[str]) -> tuple[str, str] | None:
    """The first file with two columns of one name, and that name."""
    for path in _files_of(paths):
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError):
            continue
        seen: set[str] = set()
        for name in names:
            if name in seen:
                return path, name
            seen.add(name)
    return None


def _empty_error(x: Any, caller: str) -> DataMismatchError:
    return DataMismatchError(
        message(
            caller,
            f"found no Parquet files in {os.fspath(x) if isinstance(x, os.PathLike) else x}",
            "A Parquet folder holds at least one file (names starting with '.' or '_' are skipped)",
            "Check the path, or write the data first",
            x=x,
        )
    )


def _through_link(path: str) -> bool:
    return os.path.realpath(path) != os.path.abspath(path)


def _read_twice(files: list[str]) -> tuple[str, str] | None:
    """Two paths of one file, one of them through a link; else None.

    A folder holding a link to itself (or to a folder above it) lists its files again and
    again, pyarrow following the link some 40 levels deep: 24 rows were read as 970. One
    file named twice on purpose (a list giving it twice) is read twice, as asked.
    """
    seen: dict[tuple[int, int], str] = {}
    for path in files:
        try:
            info = os.stat(path)
        except OSError:  # (gone: reading it says so)
            continue
        first = seen.setdefault((info.st_dev, info.st_ino), path)
        if first != path and (_through_link(first) or _through_link(path)):
            return first, path
    return None


def _twice_error(paths: tuple[str, str], x: Any, caller: str) -> DataMismatchError:
    return DataMismatchError(
        message(
            caller,
            f"would read the file {os.path.realpath(paths[0])} twice, as {paths[0]} and as "
            f"{paths[1]}: a link leads to it again (two links to it, or a folder's link to "
            "itself or to a folder above it, which lists its files again and again)",
            "Each file of a source is read once, or its rows would count twice",
            "Remove the link, or pass the files or folders to read (a list or a glob)",
            x=x,
        )
    )


def _kind(path: str, caller: str) -> pafs.FileType:
    """What is at a path or URI: a file, a folder or nothing."""
    if is_uri(path):
        return uri_info(path, caller)[2].type
    if os.path.isdir(path):
        return pafs.FileType.Directory
    return pafs.FileType.File if os.path.exists(path) else pafs.FileType.NotFound


def glob_base(pattern: str) -> str:
    """The folder of ``pattern`` before its first wildcard ("" for one in the first name).

    ``data/*/part-*.parquet`` has base ``data``; partitions are read below it.
    """
    return pattern[: max(glob_cut(pattern) - 1, 0)]


def _expanded(x: Any, caller: str) -> list[tuple[str, list[str]]]:
    """Each path given, with the files and folders it names (a glob's matches)."""
    given = [os.fspath(p) for p in (x if isinstance(x, (list, tuple)) else [x])]
    found = [(path, expand_paths(path, caller)) for path in given]
    paths = [p for _, matched in found for p in matched]
    listed = {p for p in paths if is_uri(p)} - set(given)  # a glob's keys exist: no request
    kinds = {p: _kind(p, caller) for p in paths if p not in listed}
    missing = [p for p in paths if kinds.get(p) == pafs.FileType.NotFound]
    if not paths or missing:
        what = f"{missing[0]!r}: no such file or folder" if missing else f"{x!r}: no file matches"
        if missing and is_uri(missing[0]):
            what = f"{missing[0]!r}: {missing_what(missing[0], caller)}"
        expected = "A Parquet source is a file, a folder, a glob pattern or a list of those"
        fix = missing_path_fix(missing[0] if missing else given[0] if given else ".")
        if is_uri(missing[0] if missing else paths[0] if paths else x):
            fix = "Check the bucket, the key or prefix, and the endpoint in the environment"
        raise DataMismatchError(
            message(caller, f"cannot find the Parquet source {what}", expected, fix, x=x)
        )
    named = {(g, p): p in listed or kinds[p] == pafs.FileType.File for g, ps in found for p in ps}
    refuse_table_paths(((g, p, file) for (g, p), file in named.items()), caller)
    return found


def existing_paths(x: Any, caller: str) -> list[str]:
    """The files and folders of a path, glob or list; an error names the first missing one.

    Raises:
        DataMismatchError: A path does not exist, or a glob matches nothing.
    """
    return [path for _, matched in _expanded(x, caller) for path in matched]


@dataclasses.dataclass(frozen=True)
class _Part:
    """Files opened together: one folder, a prefix's or a glob's keys, or files given by name.

    ``base``: the folder partitions are read below (the folder itself, a glob's base);
    None where no partition is read (files given by name).
    """

    paths: list[str]
    base: str | None
    folder: bool = False


def _filesystem(paths: list[str], caller: str) -> pafs.FileSystem:
    """The one filesystem of ``paths`` (local, or one object store)."""
    if not any(is_uri(p) for p in paths):
        return pafs.LocalFileSystem()
    resolved = [resolve_uri(p, caller)[0] for p in paths if is_uri(p)]
    if len(resolved) < len(paths) or any(fs.type_name != resolved[0].type_name for fs in resolved):
        raise DataMismatchError(
            message(
                caller,
                "got paths of several filesystems",
                "The files of one source live in one store (all local, or all in one bucket)",
                "Copy the data to one place, or read the sources one at a time",
                x=paths,
            )
        )
    return resolved[0]


def _inside(path: str, caller: str) -> str:
    """A path as its filesystem names it (``bucket/key`` for a URI, percent-decoded)."""
    return parse_uri(path, caller).path if is_uri(path) else path


def _base(pattern: str, caller: str) -> str:
    """A glob's folder before its first wildcard, as its filesystem names it."""
    return parse_uri(pattern, caller).glob_folder if is_uri(pattern) else glob_base(pattern)


def _folder(path: str, caller: str) -> _Part | None:
    """The part of a folder (a prefix's keys, listed); None for a file.

    A URI ending with a slash is a prefix, though an object of the same name exists (a
    folder marker): pyarrow, which drops the slash, would read that object.
    """
    if not is_uri(path):
        return _Part([path], path, folder=True) if os.path.isdir(path) else None
    filesystem, inside, info = uri_info(path, caller)
    if info.type != pafs.FileType.Directory:
        return None
    files, listing = list_prefix(filesystem, inside, path, caller)
    shown = functools.partial(display_path, filesystem)
    refuse_tables_below(path, inside, files, listed_tables(listing).get, shown, caller)
    return _Part(files, inside)


def _parts(found: list[tuple[str, list[str]]], fs: pafs.FileSystem, caller: str) -> list[_Part]:
    """The parts the given paths open as; consecutive files given by name are one part."""
    parts: list[_Part] = []
    for given, matched in found:
        paths = [_inside(p, caller) for p in matched]
        if is_glob(given):
            local = isinstance(fs, pafs.LocalFileSystem)
            files = list(_files_of(paths)) if local else paths
            parts.append(_Part(files, _base(given, caller)))
        elif (folder := _folder(matched[0], caller)) is not None:
            parts.append(folder)
        elif parts and parts[-1].base is None:
            parts[-1].paths.append(paths[0])
        else:
            parts.append(_Part(paths, None))
    return parts


def _open_part(part: _Part, filesystem: pafs.FileSystem, caller: str) -> pads.Dataset:
    """Opens one part, its partitions read below its base; errors word the failing file."""
    source: Any = part.paths[0] if part.folder else part.paths
    options: dict[str, Any] = {"format": parquet_format(), "filesystem": filesystem}
    if part.base is not None:
        options["partitioning"] = "hive"
        if not part.folder:
            options["partition_base_dir"] = part.base
    try:
        dataset = pads.dataset(source, **options)
    except (pa.ArrowException, OSError) as err:
        if isinstance(err, pa.ArrowTypeError) and part.base is not None:
            clash = _partition_clash(part, filesystem, caller)
            if clash is not None:
                raise clash from err
        named = _failing_file(part, filesystem, err)
        if not isinstance(filesystem, pafs.LocalFileSystem):
            where = named or display_path(filesystem, part.paths[0])
            raise file_error(where, err, caller) from err
        duplicate = _duplicated(part.paths) if "duplicate" in str(err) else None
        if duplicate is not None:
            raise duplicate_error(duplicate[1], duplicate[0], caller, used=False) from err
        where = named or (part.paths[0] if part.folder else str(source))
        raise file_error(where, err, caller) from err
    if part.folder:  # (a local folder, listed by pyarrow: a table may lie below it)
        refuse_tables_below(source, source, dataset.files, local_kind, str, caller)
    return dataset


def _failing_file(part: _Part, filesystem: pafs.FileSystem, err: Exception) -> str | None:
    """The file of ``part`` that pyarrow's error names, as the user knows it (a URI).

    pyarrow quotes the file it failed on ('bucket/t/notes.txt', without the scheme); None
    when it names none of the part's.
    """
    below = part.base.rstrip("/") + "/" if part.base else None
    for quoted in re.findall(r"'([^']+)'", str(err)):
        if quoted in part.paths or (below is not None and quoted.startswith(below)):
            return display_path(filesystem, quoted)
    return None


def _keys_below(path: str, base: str) -> dict[str, str]:
    """The ``k=v`` folder names of ``path`` below ``base``, by key."""
    relative = path[len(base) :] if base and path.startswith(base) else path
    folders = relative.replace(os.sep, "/").strip("/").split("/")[:-1]
    return dict(name.split("=", 1) for name in folders if "=" in name)


def _partition_clash(part: _Part, filesystem: pafs.FileSystem, caller: str) -> Exception | None:
    """The error for a file storing a column its partition folder names with another type."""
    files = pads.dataset(part.paths[0] if part.folder else part.paths, filesystem=filesystem)
    for path in files.files:
        keys = _keys_below(path, part.base or "")
        if not keys:
            continue
        stored = pq.read_schema(path, filesystem=filesystem)
        for column in stored.names:
            if column in keys:
                return _clash_error(
                    column, stored.field(column).type, keys[column], path, filesystem, caller
                )
    return None


def _clash_error(
    column: str,
    stored: pa.DataType,
    value: str,
    path: str,
    filesystem: pafs.FileSystem,
    caller: str,
) -> SchemaError:
    where = display_path(filesystem, path)
    return SchemaError(
        message(
            caller,
            f"found column {column!r} stored as {stored} in {where}, below its partition "
            f"folder '{column}={value}', which gives the column another type",
            "A partition column comes from the folder names only: the files below a folder "
            f"'{column}=...' do not store a column {column!r}",
            f"Drop the column {column!r} from the files or rename the folders; to read the "
            "files' own values, without partition columns, pass "
            "`pyarrow.dataset.dataset(<path>, format='parquet')`",
            column=column,
        )
    )


def _union(datasets: list[pads.Dataset], filesystem: pafs.FileSystem) -> pads.Dataset:
    """One dataset of the parts' files in order; each keeps its own partition values.

    Its schema is the first part's, with the columns of later parts it lacks (partition
    columns, columns added later) appended: types are unified over the files when planned.
    """
    schema = datasets[0].schema
    for dataset in datasets[1:]:
        for field in dataset.schema:
            if field.name not in schema.names:
                schema = schema.append(field)
    fragments = [fragment for dataset in datasets for fragment in dataset.get_fragments()]
    return pads.FileSystemDataset(fragments, schema, parquet_format(), filesystem)


def open_dataset(x: Any, caller: str) -> pads.Dataset:
    """Opens a Parquet file, folder, glob or list of those as a ``pyarrow.dataset.Dataset``.

    Partition columns come from the folders below what was passed (see the module).

    Raises:
        DataMismatchError: A path does not exist, a folder holds no file, or a link leads
            to a file again.
        SchemaError: A file cannot be read, has two columns of one name, or stores a
            column that its partition folder names with another type.
    """
    if isinstance(x, pads.Dataset):
        return x
    found = _expanded(x, caller)
    filesystem = _filesystem([p for _, matched in found for p in matched], caller)
    parts = _parts(found, filesystem, caller)
    datasets = [_open_part(part, filesystem, caller) for part in parts]
    dataset = datasets[0] if len(datasets) == 1 else _union(datasets, filesystem)
    if not getattr(dataset, "files", True):
        raise _empty_error(x, caller)
    twice = _read_twice(dataset.files) if isinstance(filesystem, pafs.LocalFileSystem) else None
    if twice is not None:
        raise _twice_error(twice, x, caller)
    return dataset
