"""Parquet sources planned from metadata: files, row groups and rows.

A plan lists a source's pieces (row groups, in file path order; a filtered dataset is one
ordered scan) with their row counts, the Arrow schema unified over the files, and the
declared :class:`~fitpipe.schemas.Schema` resolved and checked against it, before any data
is read. :func:`read_span` reads rows of it (footers: :mod:`~fitpipe.columnar.footers`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fitpipe.columnar.files import ColumnTypes, check_selectors, file_error, missing_in_first_file
from fitpipe.columnar.sources import open_dataset
from fitpipe.columnar.storage import display_path
from fitpipe.columnar.table_columns import FileColumns, Located, TableColumns, read_located
from fitpipe.columnar.types import check_arrow_schema, convertible, field_types
from fitpipe.columnar.watch import FileWatch
from fitpipe.errors import FitpipeError
from fitpipe.schemas import Mode, Role, Schema

__all__ = [
    "ParquetPlan",
    "Piece",
    "Span",
    "plan_source",
    "read_pool",
    "read_span",
    "source_columns",
    "source_name",
    "spans",
]


@dataclasses.dataclass(frozen=True)
class Piece:
    """A unit read at once: one row group (or a whole filtered scan).

    Attributes:
        source: The file (or dataset) it comes from, for messages.
        rows: Its rows.
        read: Returns its rows' columns as record batches or tables; its second argument
            asks for reads buffered a column chunk at a time (:func:`scan_options`).
        start: The row of ``source`` it starts at (messages name a row of its file).
    """

    source: str
    rows: int
    read: Callable[[list[str], bool], Iterator[Any]]
    start: int = 0


@dataclasses.dataclass(frozen=True)
class ParquetPlan:
    """The pieces of a source in order, its Arrow schema, and the schema resolved against it.

    ``local_files``: the files a source given by path(s) holds on the local filesystem, as
    planned (empty for a ``pyarrow.dataset.Dataset`` given whole, another filesystem, or a
    plan rebuilt from another worker's bytes): what names its content, with their status.
    """

    pieces: tuple[Piece, ...]
    arrow_schema: pa.Schema
    schema: Schema
    local_files: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """All rows of the plan."""
        return sum(p.rows for p in self.pieces)


def source_columns(x: Any, caller: str) -> list[str]:
    """The columns of a Parquet source (path, folder, glob, list, dataset), from metadata."""
    return list(open_dataset(x, caller).schema.names)


#: Threads reading footers at once: an object store answers each in tens of milliseconds, so
#: planning thousands of files waits on many at a time (pyarrow releases the GIL meanwhile).
FOOTER_THREADS = 16


@dataclasses.dataclass(frozen=True)
class _Footer:
    """What planning needs of one file's footer."""

    fragment: Any
    where: str  # the path for messages (a URI in an object store)
    physical: pa.Schema
    groups: tuple[tuple[int, int, int], ...]  # (row group id, rows, row of the file it starts)
    keys: frozenset[str]  # its partition keys


def _footer(fragment: Any, where: str, caller: str) -> _Footer:
    """Reads one file's footer: its schema, and the rows of each of its row groups."""
    try:
        physical = fragment.physical_schema
        meta = fragment.metadata
        starts = [0]
        for i in range(meta.num_row_groups):
            starts.append(starts[-1] + meta.row_group(i).num_rows)
        if fragment.num_row_groups == meta.num_row_groups:  # the whole file (the usual case)
            held: Iterable[int] = range(meta.num_row_groups)
        else:  # a fragment of some row groups (a dataset made from a _metadata file)
            held = [info.id for info in fragment.row_groups]
        groups = tuple((i, starts[i + 1] - starts[i], starts[i]) for i in held)
    except (pa.ArrowInvalid, OSError) as err:
        raise file_error(where, err, caller) from err
    keys = frozenset(pads.get_partition_keys(fragment.partition_expression))
    return _Footer(fragment, where, physical, groups, keys)


def _read_footers(dataset: pads.Dataset, caller: str, threads: int | None = None) -> list[_Footer]:
    """The footer of each file in the dataset's order, read by ``threads`` threads at once.

    The dataset's order is the order of the paths given, a folder's files in path order (as
    Arrow lists them): rows keep the order the caller gave. The order, the result and the
    first error (in that order) do not depend on ``threads``.
    """
    filesystem = getattr(dataset, "filesystem", None)
    fragments = list(dataset.get_fragments())
    wheres = [f.path if filesystem is None else display_path(filesystem, f.path) for f in fragments]
    count = min(FOOTER_THREADS if threads is None else threads, len(fragments))
    if count <= 1:
        return [_footer(f, w, caller) for f, w in zip(fragments, wheres, strict=True)]
    with concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix="fitpipe-footers") as pool:
        return list(pool.map(lambda f, w: _footer(f, w, caller), fragments, wheres))


def _row_group_pieces(
    dataset: pads.Dataset,
    schemas: tuple[Schema, Schema],
    roles: tuple[Role, ...],
    caller: str,
    threads: int | None,
    written: bool,
    table: TableColumns | None = None,
) -> tuple[list[Piece], pa.Schema]:
    """The row groups of every file, and the dataset schema with types unified over files.

    The columns ``roles`` read are checked; passthrough columns no other role reads are
    carried as they are (of any type, nulls only included). Where the passthrough columns
    are ``written`` (``predict(..., output=)``), each keeps integers or floats in every file.
    ``schemas``: the schema given and as resolved (its selectors checked against every
    file's columns: :func:`~fitpipe.columnar.files.check_selectors`). A ``table``'s columns
    are found in each file by its metadata (one a file lacks reads as nulls).
    """
    given, schema = schemas
    converted = schema.columns([role for role in roles if role is not Role.PASSTHROUGH])
    passthrough = schema.columns((Role.PASSTHROUGH,))
    carried = set(passthrough) - set(converted)
    types = ColumnTypes(schema.columns(roles), caller, carried, passthrough if written else ())
    footers = _read_footers(dataset, caller, threads)
    if table is None and given is not schema:  # selectors were resolved on the first file
        held = [(f.where, {*f.physical.names, *f.keys}) for f in footers]
        check_selectors(given, held, dataset.schema.names, roles, caller)
    found: list[FileColumns | None] = []
    for footer in footers:
        partitions = set(footer.keys)
        if table is None:
            types.add(footer.physical, partitions, footer.where)
            found.append(None)
            continue
        located = table.located(footer.physical, partitions)
        names = set(footer.physical.names)  # (a partition value's key is no file column)
        lacking = {name for name, where in located.items() if where not in names}
        types.add(table.as_logical(footer.physical, located), partitions | lacking, footer.where)
        found.append(FileColumns(table, footer.fragment, located))
    arrow_schema = types.unified(dataset.schema if table is None else table.schema)
    pieces = [
        piece
        for footer, columns in zip(footers, found, strict=True)
        for piece in group_pieces(
            footer.where, footer.groups, footer.fragment, arrow_schema, columns
        )
    ]
    return pieces, arrow_schema


def group_pieces(
    where: str,
    groups: Iterable[tuple[int, int, int]],
    fragment: Any,
    schema: pa.Schema,
    columns: FileColumns | None = None,
) -> list[Piece]:
    """The pieces of a file's row groups, read with ``schema``.

    Args:
        where: The file, for messages.
        groups: ``(group, rows, start)`` of the row groups read, in order: ``start`` is the
            row of the file the group starts at (messages name a row of the file).
        fragment: The file's fragment.
        schema: The dataset's schema.
        columns: Where a table's columns are in the file (None: by name, a plain file).
    """
    watch = FileWatch(fragment)
    return [
        Piece(where, rows, _GroupReader(fragment, group, schema, watch, columns), start)
        for group, rows, start in groups
    ]


def read_pool() -> pa.MemoryPool:
    """The memory pool fitpipe reads Parquet into: the system allocator's (``malloc``).

    pyarrow's default pool (mimalloc) keeps large arenas advised for transparent huge pages;
    where the kernel compacts memory to fault them in (``defrag=madvise``, a common
    default), the first read of a 200 MB row group spent 1-5 s in the kernel, and NumPy's
    own huge pages after it were slow to come by too. Read through ``malloc``, the same read
    took 0.35-0.43 s; later reads were no slower in paired runs (100,000 x 512 float32).
    """
    return pa.system_memory_pool()


#: Bytes of a column chunk read from a local file at a time (:func:`scan_options`).
LOCAL_READ_BUFFER = 1 << 20


def scan_options(filesystem: Any, buffered: bool = True) -> pads.ParquetFragmentScanOptions | None:
    """How fitpipe reads row groups of files on ``filesystem``: ``buffered``, where local.

    By default pyarrow reads all of a row group's column chunks into its default pool
    before decoding them (pre-buffering, which saves round trips to object stores): 190 MiB
    for one 65,536-row group of 512 float32 columns, fresh memory at every read (huge pages
    faulted in by the read; 4% of a streamed ``fit``'s CPU samples). Streamed from a local
    file, pass after pass, each column chunk is read through a buffer of
    :data:`LOCAL_READ_BUFFER` bytes instead (66-79 ms against 70-78 ms a read once the
    process has run a while, and nothing held but the decoded columns). A file read once
    (held rows, the pre-flight scan, ``predict``) keeps pyarrow's default: in a process
    that had just run other work the first buffered read was slower (a held 64,000 x 512
    file: 0.32-0.36 s against 0.24-0.26 s, first step 0.3-0.5 s later in the grid). Other
    file systems (object stores) keep pyarrow's default (None), and so does a read not
    ``buffered``.
    """
    if not buffered or not isinstance(filesystem, pafs.LocalFileSystem):
        return None
    return pads.ParquetFragmentScanOptions(
        pre_buffer=False, use_buffered_stream=True, buffer_size=LOCAL_READ_BUFFER
    )


class _GroupReader:
    """Reads one row group of a file (its fragment made only when read).

    ``watch``: the file's :class:`~fitpipe.columnar.watch.FileWatch` (one for all its row
    groups): a file rewritten since it was planned is refused, not read by its old footer.
    ``columns``: where a table's columns are in the file (:mod:`~fitpipe.columnar.table_columns`;
    None: by name).
    """

    __slots__ = ("columns", "fragment", "group", "schema", "watch")

    def __init__(
        self,
        fragment: Any,
        group: int,
        schema: pa.Schema,
        watch: FileWatch,
        columns: FileColumns | None = None,
    ) -> None:
        self.fragment, self.group, self.schema, self.watch = fragment, group, schema, watch
        self.columns = columns

    def types(self, column: str) -> tuple[pa.DataType, pa.DataType] | None:
        """The type ``column`` is stored as in the file and the type it is read as."""
        if self.schema.get_field_index(column) < 0:
            return None
        if self.columns is not None:
            found = self.columns.stored_type(column)
            return None if found is None else (found, self.schema.field(column).type)
        stored = self.fragment.physical_schema
        if stored.get_field_index(column) < 0:
            return None
        return stored.field(column).type, self.schema.field(column).type

    def __call__(self, columns: list[str], buffered: bool = False) -> Iterator[Any]:
        self.watch.check(buffered)
        part = self.fragment.subset(row_group_ids=[self.group])
        options = {
            "memory_pool": read_pool(),
            "fragment_scan_options": scan_options(part.filesystem, buffered),
        }
        if self.columns is not None:
            located: Located = self.columns.located()
            yield read_located(part, columns, self.schema, located, **options)
            return
        yield part.to_table(columns=columns, schema=self.schema, **options)


class _ScanReader:
    """Reads a whole (filtered) dataset as one ordered scan."""

    __slots__ = ("dataset",)

    def __init__(self, dataset: pads.Dataset) -> None:
        self.dataset = dataset

    def __call__(self, columns: list[str], buffered: bool = False) -> Iterator[Any]:
        options = scan_options(getattr(self.dataset, "filesystem", None), buffered)
        yield from self.dataset.to_batches(
            columns=columns, memory_pool=read_pool(), fragment_scan_options=options
        )


#: The source of the one piece of a filtered dataset, in messages.
SCAN_SOURCE = "the filtered dataset"


def _scan_piece(dataset: pads.Dataset, caller: str) -> Piece:
    return Piece(SCAN_SOURCE, int(dataset.count_rows()), _ScanReader(dataset))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector while a plan's objects are made.

    A plan makes a few objects per row group and none of them cycles; a million row groups
    would otherwise start a full collection over the process's (TensorFlow's) heap many
    times, more than doubling the planning time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _unconvertible(arrow_type: pa.DataType) -> bool:
    """A type no file can make convertible (a null column takes the other files' type)."""
    return not convertible(arrow_type) and not pa.types.is_null(arrow_type)


def source_name(x: Any, name: str | None = None) -> str:
    """How messages word a source: ``name``, else the path, or "the dataset"."""
    if name is not None:
        return str(name)
    return x if isinstance(x, str) else "the dataset" if isinstance(x, pads.Dataset) else str(x)


def plan_source(
    x: Any,
    schema: Schema,
    caller: str,
    mode: Mode = Mode.TRAIN,
    name: str | None = None,
    threads: int | None = None,
    written: bool = False,
    table: TableColumns | None = None,
    resolved: Schema | None = None,
) -> ParquetPlan:
    """Plans the pieces of a Parquet source from metadata and checks the schema against it.

    One pass over the files' footers, read by ``threads`` threads at once (default
    :data:`FOOTER_THREADS`; the plan is the same for any count); per file, one pass over the
    columns the schema reads in ``mode``. ``name`` words the source in messages (default:
    the path, or "the dataset"). ``written``: the passthrough columns are written as stored
    (``predict(..., output=)``), so one holding integers in one file and floats in another
    is refused. A ``table`` (a table format's files) gives the source's columns and where
    each file holds them (:mod:`~fitpipe.columnar.table_columns`). ``resolved``: ``schema``
    resolved already for ``mode``'s roles, taken as it is (None: resolved here).
    """
    dataset = open_dataset(x, caller)
    roles = mode.roles
    name = source_name(x, name)
    columns = dataset.schema if table is None else table.schema
    given = schema
    schema = schema.resolve(columns.names, name, caller, roles) if resolved is None else resolved
    needed = schema.columns(roles)
    types, repeated = field_types(columns)
    for column in needed:  # missing in the first file, repeated, or of a type never converted
        if column not in types and table is None:
            missing = missing_in_first_file(dataset, column, caller)
            if missing is not None:
                raise missing
        if column not in types or column in repeated or _unconvertible(types[column]):
            check_arrow_schema(schema, columns, name, roles, caller)
    try:
        with _collector_paused():
            pieces, arrow_schema = _row_group_pieces(
                dataset, (given, schema), roles, caller, threads, written, table
            )
    except ValueError as err:
        if isinstance(err, FitpipeError) or "filtered" not in str(err):
            raise
        pieces, arrow_schema = [_scan_piece(dataset, caller)], dataset.schema
    check_arrow_schema(schema, arrow_schema, name, roles, caller)
    local = not isinstance(x, pads.Dataset) and isinstance(dataset.filesystem, pafs.LocalFileSystem)
    return ParquetPlan(tuple(pieces), arrow_schema, schema, tuple(dataset.files) if local else ())


@dataclasses.dataclass(frozen=True)
class Span:
    """Rows ``lo:hi`` of one piece; ``first`` is the global index of the piece's first row."""

    piece: Piece
    first: int  # global index of the piece's first row
    lo: int
    hi: int


def spans(plan: ParquetPlan, start: int, stop: int) -> list[Span]:
    """The pieces' parts that hold rows ``start:stop`` of the plan, in order."""
    spans, offset = [], 0
    for piece in plan.pieces:
        lo, hi = max(start - offset, 0), min(stop - offset, piece.rows)
        if lo < hi:
            spans.append(Span(piece, offset, lo, hi))
        offset += piece.rows
    return spans


def read_span(span: Span, columns: list[str], buffered: bool = False) -> Iterator[pa.Table]:
    """Reads the span's rows of ``columns``, as tables (``buffered``: see :func:`scan_options`)."""
    seen = 0
    for part in span.piece.read(columns, buffered):
        table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
        lo, hi = max(span.lo - seen, 0), min(span.hi - seen, table.num_rows)
        if lo < hi:
            yield table.slice(lo, hi - lo)
        seen += table.num_rows
        if seen >= span.hi:
            return
