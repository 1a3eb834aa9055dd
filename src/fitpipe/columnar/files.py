"""The files of a Parquet source: found and checked from their footers, before a read.

(:mod:`~fitpipe.columnar.sources` opens them as a dataset.)

Every check is one pass over the files and, per file, one pass over the schema's columns:
linear in both. A column whose type differs between files is unified the way Arrow promotes
types (``int32`` with ``int64`` is ``int64``, an integer with a float is a float, a column of
nulls takes the other files' type, text dictionary-encoded or as views in one file and plain
in another is plain text); other types are an error naming the column,
both types and both files. A passthrough column, written to ``predict``'s output as stored,
is not promoted from integers to floats (ids past 2**53 would be rounded): integers in one
file and floats in another are an error too.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.types as pat

from fitpipe.columnar.storage import display_path, hidden_below, is_uri
from fitpipe.columnar.types import all_null_error, convertible, duplicate_error, unknown_column
from fitpipe.columnar.uri_globs import expand_uri
from fitpipe.errors import SchemaError, message
from fitpipe.schemas import Role, Schema, column_listing

__all__ = [
    "INT96_UNIT",
    "WILDCARDS",
    "ColumnTypes",
    "check_selectors",
    "expand_paths",
    "file_error",
    "glob_cut",
    "is_glob",
    "is_parquet",
    "is_parquet_path",
    "missing_in_file",
    "missing_in_first_file",
    "parquet_format",
]

_SUFFIXES = (".parquet", ".pq", ".parq")
WILDCARDS = "*?["

#: Legacy INT96 timestamps (Spark's default, Hive, Impala) are read in microseconds, the unit
#: Spark's own timestamps have, rather than Arrow's default nanoseconds: the same instant then
#: converts to the same int64 whichever way it was stored, and dates before 1677 or after 2262
#: do not overflow.
INT96_UNIT = "us"


def parquet_format() -> pads.ParquetFileFormat:
    """The Parquet format fitpipe opens files with (INT96 timestamps in :data:`INT96_UNIT`)."""
    return pads.ParquetFileFormat(
        read_options=pads.ParquetReadOptions(coerce_int96_timestamp_unit=INT96_UNIT)
    )


def is_parquet_path(x: Any) -> bool:
    """A path that names Parquet data: existing, a glob, or with a Parquet suffix."""
    if not isinstance(x, (str, os.PathLike)):
        return False
    path = os.fspath(x)
    return isinstance(path, str) and (
        path.lower().endswith(_SUFFIXES) or is_glob(path) or is_uri(path) or os.path.exists(path)
    )


def is_parquet(x: Any) -> bool:
    """True for a Parquet path, glob, list of paths or ``pyarrow.dataset.Dataset``."""
    if isinstance(x, pads.Dataset) or is_parquet_path(x):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(is_parquet_path(p) for p in x)


def expand_paths(x: Any, caller: str = "fit") -> list[str]:
    """The paths of ``x`` (one path or a list), globs expanded in sorted order.

    A URI's glob is matched against the keys listed under the folder above it
    (:func:`~fitpipe.columnar.uri_globs.expand_uri`).
    """
    paths = [os.fspath(p) for p in (x if isinstance(x, (list, tuple)) else [x])]
    found: list[str] = []
    for path in paths:
        if is_uri(path):
            found.extend(expand_uri(path, caller))
        elif is_glob(path):
            found.extend(_shown(path, sorted(glob.glob(path, recursive=True))))
        else:
            found.append(path)
    return found


def _unqueried(path: str) -> str:
    """A path without a URI's query (``?`` starts one there; in a local path it is a wildcard)."""
    return path.partition("?")[0] if is_uri(path) else path


def is_glob(path: str) -> bool:
    """A glob: a wildcard in a local path, or before a URI's query."""
    return any(c in _unqueried(path) for c in WILDCARDS)


def glob_cut(pattern: str) -> int:
    """The length of a glob's fixed folders with their last slash (0: none).

    ``data/*/part-*.parquet`` gives 5 (``data/``), ``*.parquet`` 0.
    """
    fixed = _unqueried(pattern)
    wild = min((i for i, c in enumerate(fixed) if c in WILDCARDS), default=len(fixed))
    return pattern.rfind("/", 0, wild) + 1


def _shown(pattern: str, matches: list[str]) -> list[str]:
    """A glob's matches, less those below a name starting '.' or '_' it does not name so.

    As a folder's listing skips such names (Spark's ``_temporary/`` of a job still
    writing, ``_SUCCESS``, ``.crc`` files), so does a glob below its fixed part:
    ``data/**/*.parquet`` read ``data/_temporary/0/part-0.parquet``. A pattern that names
    one (``data/_staging/*.parquet``, ``data/_*.parquet``) keeps it.
    """
    cut = glob_cut(pattern)
    return [
        path
        for path in matches
        if not (path.startswith(pattern[:cut]) and hidden_below(path[cut:], pattern[cut:]))
    ]


def file_error(path: str, err: Exception, caller: str) -> Exception:
    """The error for a file Arrow cannot read (or whose values do not fit the source's types).

    An error of the operating system (a file deleted, moved or made unreadable after the
    source was planned) stays one, of its own type (``FileNotFoundError``, ...), so that
    ``except OSError`` catches it: it said the file was corrupt, as a ``SchemaError``.
    (Arrow's own ``OSError`` of a corrupt page carries no ``errno``: that one is worded so.)
    """
    if isinstance(err, OSError) and err.errno and not isinstance(err, pa.ArrowException):
        text = message(
            caller,
            f"cannot read the Parquet file {path} ({err.strerror or err})",
            "Every file of the source stays where and as it was found while it is read",
            "Check that nothing moves, rewrites, deletes or locks the files during the run "
            "(write a new export under a new name)",
            path=path,
        )
        try:
            return type(err)(err.errno, text)
        except Exception:  # an OSError subclass built otherwise: worded as any other
            pass
    return SchemaError(
        message(
            caller,
            f"cannot read the Parquet file {path} ({err})",
            "Every file of the source is a complete Parquet file whose columns hold values "
            "of the types the source gives them",
            "Replace or remove the file if it is corrupt or truncated; rewrite it if its "
            "values do not fit the column types of the other files",
            path=path,
        )
    )


def file_identity(dataset: pads.Dataset) -> tuple[tuple[str, int, int], ...] | None:
    """Each file's path, size and modification time (ns): what names the dataset's content.

    None when a file's filesystem gives no modification time.
    """
    files = getattr(dataset, "files", None)
    if not files:
        return None
    infos = dataset.filesystem.get_file_info(files)
    if any(info.mtime_ns is None or info.size is None for info in infos):
        return None
    return tuple((info.path, int(info.size), int(info.mtime_ns)) for info in infos)


def missing_in_file(
    column: str, names: list[str], path: str, having: str, caller: str
) -> SchemaError:
    """The error for a column the schema uses that one file lacks though ``having`` holds it.

    Args:
        column: The missing column.
        names: The columns of the file that lacks it.
        path: The file that lacks it.
        having: A file of the same source that holds it.
        caller: The public method being run.
    """
    return SchemaError(
        message(
            caller,
            f"cannot find column {column!r} in {path}, though other files of the source have "
            f"it ({having})",
            "Every file of the source holds the columns the schema uses; "
            f"{path} has columns {column_listing(names)}",
            "Rewrite the files that lack the column (add it, with nulls and a `fill` value "
            "if need be), read only the files that have it, or leave it out of the schema",
            column=column,
        )
    )


def missing_in_first_file(dataset: pads.Dataset, column: str, caller: str) -> SchemaError | None:
    """The error for a column the first file lacks but a later file holds; None otherwise.

    Arrow's dataset schema is the first file's: a column added to later files (schema
    evolution) is missing from it. Reads footers until a file holding the column is found.
    """
    try:
        fragments = list(dataset.get_fragments())
        filesystem = dataset.filesystem
    except (AttributeError, ValueError, pa.ArrowException):
        return None
    if len(fragments) < 2:
        return None
    try:
        first = fragments[0].physical_schema.names
        for fragment in fragments[1:]:
            if column in fragment.physical_schema.names:
                first_path = display_path(filesystem, fragments[0].path)
                having = display_path(filesystem, fragment.path)
                return missing_in_file(column, first, first_path, having, caller)
    except (pa.ArrowException, OSError):  # (an unreadable file is worded when planned)
        return None
    return None


def check_selectors(
    given: Schema,
    files: Sequence[tuple[str, Collection[str]]],
    first: Sequence[str],
    roles: Sequence[Role],
    caller: str,
) -> None:
    """Refuses a selector that matches a column some files of the source lack.

    Arrow's dataset schema is the first file's, so ``given``'s selectors (globs, ``re:``
    expressions, ``OTHER_COLUMNS``) were resolved against ``first``, its columns. Here they
    are resolved over every file's columns (``files``: each file's path and columns,
    partition keys included, from the footers planning reads anyway): a column matched that
    some files lack is refused whatever the files' order (resolved against the first file
    only, it was left out unseen when a file lacking it came first).

    Raises:
        SchemaError: Naming the column, a file holding it and those lacking it.
    """
    if all(set(held) == set(files[0][1]) for _, held in files[1:]):
        return  # every file has the same columns
    names, seen = list(first), set(first)
    for _, held in files:
        extra = [column for column in held if column not in seen]
        names.extend(extra)
        seen.update(extra)
    named = set(given.columns(roles))  # plain names (a missing one is worded when planned)
    selected = given.resolve(names, "the source", caller, roles).columns(roles)
    for column in (c for c in selected if c not in named):
        lacking = [where for where, held in files if column not in held]
        if not lacking:
            continue
        having = next(where for where, held in files if column in held)
        raise SchemaError(
            message(
                caller,
                f"found column {column!r}, which a pattern of the schema matches, in {having}"
                f" but not in {len(lacking)} other file(s) of the source: "
                f"{column_listing(lacking, 4)}",
                "A pattern (a glob, an re: expression or OTHER_COLUMNS) selects the same "
                "columns in every file of a source: every file holds each column it matches "
                "in any file",
                "Rewrite the files that lack the column (add it, with nulls and a `fill` "
                "value if need be), read only the files that have it, or name the columns "
                "or narrow the pattern to leave it out",
                column=column,
            )
        )


def _number_leaves(kind: pa.DataType, path: str = "") -> dict[str, str]:
    """``"integer"`` or ``"float"`` for each number inside ``kind``, by its path in it.

    A list's values are ``path[]``, a struct's field ``path.name``, a map's keys and items
    ``path{k}`` and ``path{v}``, a dictionary's values the dictionary's own path.
    """
    if pat.is_integer(kind) or pat.is_floating(kind):
        return {path: "integer" if pat.is_integer(kind) else "float"}
    if pat.is_map(kind):
        return {**_number_leaves(kind.key_type, path + "{k}"),
                **_number_leaves(kind.item_type, path + "{v}")}  # fmt: skip
    if pat.is_list(kind) or pat.is_large_list(kind) or pat.is_fixed_size_list(kind):
        return _number_leaves(kind.value_type, path + "[]")
    if pat.is_dictionary(kind):
        return _number_leaves(kind.value_type, path)
    if pat.is_struct(kind):
        leaves: dict[str, str] = {}
        for field in kind:
            leaves.update(_number_leaves(field.type, f"{path}.{field.name}"))
        return leaves
    return {}


def _integers_meet_floats(first: pa.DataType, second: pa.DataType) -> bool:
    """True when a number is an integer in one type and a float in the other, at any depth."""
    one, other = _number_leaves(first), _number_leaves(second)
    return any(one[path] != other[path] for path in one.keys() & other.keys())


def _plain(kind: pa.DataType) -> pa.DataType:
    """A dictionary's value type, and a string or binary view's plain type; others as they are."""
    if pat.is_dictionary(kind):
        return _plain(kind.value_type)
    if pat.is_string_view(kind):
        return pa.string()
    if pat.is_binary_view(kind):
        return pa.binary()
    return kind


def _unified_type(column: str, one: pa.DataType, other: pa.DataType) -> pa.DataType:
    """The type Arrow promotes ``one`` and ``other`` to, their encodings set aside.

    Text dictionary-encoded in one file and plain (or a view) in another is read as plain
    text in every file, as pandas reads such a folder.

    Raises:
        pyarrow.ArrowException: The types do not unify.
    """
    kinds = (one, other)
    if _plain(one) != one or _plain(other) != other:
        kinds = (_plain(one), _plain(other))
    schemas = [pa.schema([pa.field(column, kind)]) for kind in kinds]
    return pa.unify_schemas(schemas, promote_options="permissive").field(0).type


class ColumnTypes:
    """The type of each needed column over the files seen so far, unified as Arrow promotes.

    Args:
        needed: The columns the schema reads.
        caller: The public method being run, for messages.
        carried: The needed columns carried unconverted (passthrough only): of any type.
        exact: The passthrough columns when written as stored: integers in one file and
            floats in another are refused (not promoted to floats), inside lists and
            structs too. A carried column not written is only looked for (its types are
            not unified: nothing reads it).
    """

    def __init__(
        self,
        needed: list[str],
        caller: str,
        carried: Iterable[str] = (),
        exact: Iterable[str] = (),
    ) -> None:
        self.needed = needed
        self.caller = caller
        self.carried = frozenset(carried)
        self.exact = frozenset(exact)
        self.types: dict[str, tuple[pa.DataType, str]] = {}  # column: (type, file holding it)
        self.holders: dict[str, str] = {}  # column: the first file holding it

    def add(self, physical: pa.Schema, partitions: set[str], path: str) -> None:
        """Checks one file's footer schema and unifies its column types with the others'."""
        for column in self.needed:
            index = physical.get_field_index(column)
            if index < 0:
                if len(physical.get_all_field_indices(column)) > 1:
                    raise duplicate_error(column, path, self.caller)
                if column in partitions:
                    continue
                having = self.holders.get(column)
                if having is not None:
                    raise missing_in_file(column, physical.names, path, having, self.caller)
                raise unknown_column(column, physical.names, path, self.caller)
            self.holders.setdefault(column, path)
            found = physical.field(index).type
            if column in self.carried and column not in self.exact:
                continue  # looked for, never read
            if column not in self.carried and not convertible(found) and not pat.is_null(found):
                raise self._unconvertible(column, found, path)
            known = self.types.get(column)
            if known is None or known[0] == found:
                self.types.setdefault(column, (found, path))
            else:
                self.types[column] = (self._unify(column, known, (found, path)), known[1])

    def _unconvertible(self, column: str, found: pa.DataType, path: str) -> SchemaError:
        return SchemaError(
            message(
                self.caller,
                f"cannot convert column {column!r} of type {found} in {path}",
                "Every file stores the schema's columns as numbers, bools, lists of "
                "numbers, strings or temporal values",
                "Rewrite or remove the file",
                column=column,
            )
        )

    def _unify(
        self, column: str, known: tuple[pa.DataType, str], found: tuple[pa.DataType, str]
    ) -> pa.DataType:
        if column in self.exact and _integers_meet_floats(known[0], found[0]):
            raise SchemaError(
                message(
                    self.caller,
                    f"found passthrough column {column!r} of type {known[0]} in {known[1]} but "
                    f"of type {found[0]} in {found[1]}",
                    "A passthrough column is written to `output` as stored, so it holds "
                    "integers in every file or floats in every file (integers past 2**53 "
                    "would not survive a float)",
                    "Rewrite the files so the column has one type (cast it where it is "
                    "written), or leave it out of `passthrough`",
                    column=column,
                )
            )
        try:
            kind = _unified_type(column, known[0], found[0])
        except (pa.ArrowException, TypeError) as err:
            raise SchemaError(
                message(
                    self.caller,
                    f"found column {column!r} of type {known[0]} in {known[1]} but of type "
                    f"{found[0]} in {found[1]}",
                    "A column has one type in every file, or types fitpipe unifies: integers "
                    "of several widths, integers and floats, timestamps of several units "
                    "(with one time zone in every file, or none in any), text or bytes stored "
                    "plain, dictionary-encoded or as views, nulls and any type",
                    "Rewrite the files so the column has one type (cast it where it is written)",
                    column=column,
                )
            ) from err
        if column not in self.carried and not convertible(kind) and not pat.is_null(kind):
            raise self._unconvertible(column, kind, found[1])
        return kind

    def unified(self, arrow_schema: pa.Schema) -> pa.Schema:
        """``arrow_schema`` with each needed column's unified type (one pass over its fields).

        Raises:
            SchemaError: A column read as a tensor holds only nulls in every file (a
                carried passthrough column may: it is written as stored).
        """
        for column, (kind, path) in self.types.items():
            if pat.is_null(kind) and column not in self.carried:
                raise all_null_error(column, f"{path} (and every other file)", self.caller)
        fields = [
            field.with_type(self.types[field.name][0])
            if field.name in self.types and self.types[field.name][0] != field.type
            else field
            for field in arrow_schema
        ]
        return pa.schema(fields, metadata=arrow_schema.metadata)
