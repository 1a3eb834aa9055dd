"""Files that appear only when complete: Parquet written by row groups, and JSON.

A crash or a kill while writing leaves the previous file (or none), never a partial one.
A local file replaced keeps its permission mode; a path that is a symbolic link is written
through to the file it points at (the link stays); a ``file://`` URI is its local path. An
error of the operating system while writing (a full disk) is worded, naming the file, and
leaves any previous file as it was.

In an object store (a URI such as ``s3://bucket/predictions.parquet``) the file is written
to a hidden temporary key next to it (``.predictions.parquet.<random>.partial``), then moved
to its key (S3: a server-side copy, which makes the object appear whole, then the temporary
is deleted). A failure while writing deletes the temporary and leaves the key as it was; a
process killed while writing may leave the hidden temporary, which readers skip. pyarrow's
move (and delete) of the temporary re-creates its folder as an empty folder marker (``out/``,
as S3 consoles make; readers skip it): pyarrow 26 has no option to leave it out, and a
temporary at the bucket's top level, which would have no folder, needs write access there. S3 copies
an object of up to 5 GB in one request: larger prediction files need one output per part.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fitpipe.columnar.storage import (
    WRITE,
    is_uri,
    local_file_path,
    local_target,
    partial_key,
    resolve_uri,
)
from fitpipe.errors import FitpipeValueError, message

__all__ = ["write_atomically", "write_json_atomically"]


def _open_unnamed(folder: str) -> int | None:
    """A file with no name in ``folder`` (Linux ``O_TMPFILE``), or None where unsupported.

    A process killed while writing it leaves nothing behind: the file only gets a name once
    complete.
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o644)
    except OSError:
        return None


def _remove_stale(folder: str, name: str) -> None:
    """Removes partial files of ``name`` left by writers that were killed."""
    prefix, suffix = f".{name}.", ".partial"
    for entry in os.listdir(folder):
        pid = entry[len(prefix) : -len(suffix)]
        if not (entry.startswith(prefix) and entry.endswith(suffix) and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, entry))
        except OSError:
            continue


def _publish(fd: int, final: str, partial: str) -> None:
    """Gives the complete unnamed file ``fd`` its name, replacing any file already there."""
    source = f"/proc/self/fd/{fd}"
    folder = os.open(os.path.dirname(final), os.O_RDONLY)
    try:  # a directory fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which follows /proc
        try:
            os.link(source, os.path.basename(final), dst_dir_fd=folder)
        except FileExistsError:
            os.link(source, os.path.basename(partial), dst_dir_fd=folder)
            os.replace(partial, final)
    finally:
        os.close(folder)


def _write_tables(
    where: Any, tables: Iterator[pa.Table], progress: Callable[[int], None], final: str
) -> None:
    """Writes each table as a row group; no table at all is an error naming ``final``."""
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:  # (an error of the input or the model is raised as it is)
            with _writing(final):
                if writer is None:
                    writer = pq.ParquetWriter(where, table.schema)
                writer.write_table(table)
            progress(table.num_rows)
        if writer is None:
            raise FitpipeValueError(
                message(
                    "predict",
                    "got no rows to predict",
                    "The input has at least one row",
                    "Check the input",
                    output=final,
                )
            )
    finally:
        if writer is not None:
            with _writing(final):
                writer.close()


@contextlib.contextmanager
def _writing(final: str) -> Iterator[None]:
    """Words an error of the operating system while writing ``final`` (a full disk).

    It stays an ``OSError`` of its own type and ``errno``, so ``except OSError`` catches it.
    """
    try:
        yield
    except OSError as err:
        text = message(
            "predict",
            f"could not write {final} ({err.strerror or err})",
            "The folder of `output` has room for the whole file and stays writable while "
            "it is written",
            "Free some space (or choose another folder) and predict again; a file already "
            "at `output` was left as it was",
            output=final,
        )
        try:
            worded = type(err)(err.errno, text) if err.errno else OSError(text)
        except Exception:  # an OSError subclass built otherwise
            worded = OSError(err.errno, text)
        raise worded from err


def _keep_mode(fd: int | None, partial: str, target: str) -> None:
    """Gives the new file the permission mode of the file it replaces (if any)."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return
    if fd is not None:
        os.fchmod(fd, mode)
    else:
        os.chmod(partial, mode)


def _write_remote(uri: str, tables: Iterator[pa.Table], progress: Callable[[int], None]) -> str:
    """Writes to a hidden temporary key, then moves it to the URI's key (see the module)."""
    filesystem, final = resolve_uri(uri, "predict", WRITE)
    partial = partial_key(final)
    try:
        with filesystem.open_output_stream(partial) as stream:
            _write_tables(stream, tables, progress, uri)
        filesystem.move(partial, final)
    finally:
        with contextlib.suppress(OSError, pa.ArrowException):
            filesystem.delete_file(partial)
    return uri


def write_atomically(
    path: str | os.PathLike[str], tables: Iterator[pa.Table], progress: Callable[[int], None]
) -> str:
    """Writes tables as row groups of one Parquet file that appears only when complete.

    On Linux the file is written with no name (``O_TMPFILE``) and linked into place at the
    end, so even a killed process leaves no partial file. Elsewhere it is written under a
    temporary name and renamed; partial files of killed writers are removed by the next write.
    A URI of an object store is written to a temporary key and moved (see the module).
    """
    if is_uri(path) and local_file_path(path) is None:
        return _write_remote(str(path), tables, progress)
    final = os.fspath(path)
    target = local_target(final)
    folder, name = os.path.split(target)
    partial = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    _remove_stale(folder, name)
    fd = _open_unnamed(folder)
    try:
        if fd is not None:
            with os.fdopen(fd, "wb", closefd=False) as file:
                _write_tables(file, tables, progress, final)
                with _writing(final):
                    file.flush()
            with _writing(final):
                _keep_mode(fd, partial, target)
                _publish(fd, target, partial)
        else:
            _write_tables(partial, tables, progress, final)
            with _writing(final):
                _keep_mode(None, partial, target)
                os.replace(partial, target)
    finally:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return final


def write_json_atomically(path: str, data: dict[str, Any], sync: bool = True) -> None:
    """Writes ``data`` as JSON to ``path``, replacing it only once complete.

    Args:
        path: The file.
        data: JSON-serializable data.
        sync: Flush to disk before the file replaces the old one.
    """
    partial = f"{path}.{os.getpid()}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(data, file)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
