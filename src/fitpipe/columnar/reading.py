"""Reading a plan's pieces once, and the errors of a read that fails.

A piece is read with the source's schema: each column has the type its types unify to over
the files (an int64 column beside a float one is read as double). A value that does not fit
that type (an integer past 2**53 read as a double) fails the read: the error names the
column, the type it is read as and the type the file stores, not an unreadable file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from fitpipe.columnar.files import file_error
from fitpipe.columnar.parquet import Piece
from fitpipe.errors import SchemaError, message

__all__ = ["read_error", "read_piece"]


def read_piece(piece: Piece, columns: list[str], caller: str) -> Iterator[pa.Table]:
    """Reads a piece's ``columns`` once, as tables; an error names the file (and column).

    Raises:
        SchemaError: A column's values do not fit its type, or the file is corrupt.
        OSError: The file went away or became unreadable (worded, of its own type).
    """
    try:
        for part in piece.read(columns, False):  # once: not buffered
            yield part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
    except (pa.ArrowException, OSError) as err:
        raise read_error(piece, columns, err, caller) from err


def read_error(piece: Piece, columns: list[str], err: Exception, caller: str) -> Exception:
    """The error of a failed read of ``columns`` of ``piece``.

    Where Arrow cannot read the columns together, each is read alone to find the one whose
    values do not fit the type the source gives it (its type unified over the files); an
    error of the operating system, or a file no column of which reads, is the file's
    (:func:`~fitpipe.columnar.files.file_error`).
    """
    column = _failing_column(piece, columns) if len(columns) > 1 else columns[0]
    if column is None or (isinstance(err, OSError) and err.errno):
        return file_error(piece.source, err, caller)
    found = getattr(piece.read, "types", lambda _: None)(column)
    if found is None or found[0] == found[1]:  # read as stored: no type to blame
        return SchemaError(
            message(
                caller,
                f"cannot read column {column!r} of {piece.source}: {err}",
                "Every file of the source is a complete Parquet file, left as it was when "
                "the source was planned",
                "Replace or remove the file if it is corrupt or truncated; if something "
                "rewrites or deletes it during the run, write a new export under a new name",
                column=column,
            )
        )
    merged = f" (stored there as {found[0]}) as {found[1]}, its type unified over the files"
    return SchemaError(
        message(
            caller,
            f"cannot read column {column!r} of {piece.source}{merged}: {err}",
            "A column's values fit the one type it has over every file of the source "
            "(integers beside floats are read as floats: exact up to 2**53 as float64)",
            "Rewrite the files so the column has one type in all of them (cast it where it "
            "is written), or leave it out of the schema",
            column=column,
        )
    )


def _failing_column(piece: Piece, columns: list[str]) -> str | None:
    """The first of ``columns`` that Arrow cannot read alone (None: each reads alone)."""
    for column in columns:
        try:
            for _ in piece.read([column], False):
                pass
        except (pa.ArrowException, OSError):
            return column
    return None
