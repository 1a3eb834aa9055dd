"""Whether a file read again is the file planned: a streamed source is read every epoch.

A local file's ``stat`` is compared; an object's size and ETag (:class:`FileWatch`).
"""

from __future__ import annotations

import errno
import os
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

__all__ = ["FileWatch", "file_status"]


def file_status(path: str) -> tuple[int, ...]:
    """A local file's size, modification and change times (ns), device and inode.

    The change time (``st_ctime_ns`` on POSIX) moves at every write and cannot be set back;
    a file replaced by another (written, then renamed over it) has another inode.
    """
    info = os.stat(path)
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_dev, info.st_ino)


def _status_of(path: str) -> tuple[int, ...] | None:
    """:func:`file_status`, or None for a file gone (reading it says so, of its own type)."""
    try:
        return file_status(path)
    except OSError:
        return None


def _object_status(filesystem: Any, path: str) -> tuple[Any, ...] | None:
    """An object's size and entity tag (ETag), from one request for its head.

    Its modification time where the store gives no tag (an object store's has whole
    seconds: a rewrite of the same size within one would go unseen, an ETag would not).
    None where it cannot be asked (reading it says why) or the store tells neither.

    Raises:
        FileNotFoundError: The object is gone.
    """
    try:
        with filesystem.open_input_file(path) as handle:
            size, head = handle.size(), handle.metadata()
        tag = head.get("ETag") or head.get("Last-Modified")
        if tag is None:
            tag = filesystem.get_file_info(path).mtime_ns
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException):
        return None
    return None if tag is None else (size, tag)


class FileWatch:
    """Refuses to read a file again once it was rewritten (a streamed file, every epoch).

    A streamed file is read again every epoch, by the row groups its footer listed when
    planned: read from a rewritten file, they were pages of another layout (pyarrow's
    "Couldn't deserialize thrift", which said the file was corrupt) or, laid out alike,
    other rows, silently. A local file's :func:`file_status` is taken when planned and
    compared at each read (a ``stat``); an object's size and ETag at its first streamed read,
    and compared at each later one (a request for the object's head beside the reads of its
    column chunks: a few milliseconds, against a row group's read).

    Args:
        fragment: The file's fragment.
    """

    __slots__ = ("_filesystem", "_local", "_path", "_status")

    def __init__(self, fragment: Any) -> None:
        self._filesystem = getattr(fragment, "filesystem", None)
        self._local = isinstance(self._filesystem, pafs.LocalFileSystem)
        self._path: str = fragment.path
        self._status = _status_of(self._path) if self._local else None

    def check(self, streamed: bool) -> None:
        """Raises an ``OSError`` (``ESTALE``, see :func:`file_error`) if the file changed.

        ``streamed``: a read of a pass of a stream (read again every epoch). An object read
        once (``predict``, rows held in memory) is not asked about: it costs a request.
        """
        if self._filesystem is None or not (self._local or streamed):
            return
        if self._local:
            now: tuple[Any, ...] | None = _status_of(self._path)
        else:
            try:
                now = _object_status(self._filesystem, self._path)
            except FileNotFoundError as gone:
                if self._status is None:
                    return  # (reading it says so)
                text = "the file was deleted after it was planned"
                raise FileNotFoundError(errno.ENOENT, text) from gone
        if now is None or self._status is None:
            self._status = self._status or now  # (an object: its first read)
            return
        if now != self._status:
            was = self._status[0]
            size = "" if now[0] == was else f": {was:,} -> {now[0]:,} bytes"
            raise OSError(errno.ESTALE, f"the file was rewritten after it was planned{size}")
