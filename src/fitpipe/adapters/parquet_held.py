"""Parquet rows read whole: joined into fitpipe's memory, kept for the calls that follow.

A script's ``fit`` then ``evaluate`` of one file read and converted it at each call: at
65,536 x 512 float32 the read was 0.25-0.85 s of CPU of calls taking 0.4-1.1 s. The rows a
call read are kept (:func:`fitpipe.columnar.keep`) under what names their content: every
file's status (path, size, modification and change times, device and inode), the schema
resolved against the files, the roles read (``fit`` and ``evaluate`` read the same;
``predict`` reads features alone, or takes them from rows ``fit`` or ``evaluate`` read) and
the ``split_by`` column. A file written again is read again, even at the same size and
modification time: its change time moved (it cannot be set back). A file that changed less
than :data:`RACY_SECONDS` before it was read is also summed (a CRC-32 of its bytes, mapped,
not decoded: 48 ms of CPU for a 191 MB file of 65,536 x 513 float32, against 0.2-0.8 s to
read and convert it), and summed again before its rows are used, since a second write within
the filesystem's timestamp resolution can leave even the change time as it was. The rows are
kept only while calls follow each other (let go a few seconds after the last one, with the
recycled buffers, :mod:`fitpipe.columnar.recycle`), and dropped as soon as a call reads
other rows. Datasets passed as ``pyarrow.dataset.Dataset`` (which may be filtered, or come
from a table format), files not on the local filesystem and systems without a change time
(Windows) are read at every call.
"""

from __future__ import annotations

import mmap
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from fitpipe.adapters.base import ArraySource
from fitpipe.columnar import (
    ParquetPlan,
    as_tensor,
    file_status,
    join_rows,
    keep,
    kept,
    tensor_array,
)
from fitpipe.schemas import Mode

__all__ = ["held_source", "join_leaves"]


def join_leaves(*leaves: np.ndarray) -> np.ndarray:
    """The row groups' arrays of one leaf joined into fitpipe's memory, held as they are.

    Numbers are joined by NumPy into mapped memory (:func:`join_rows`) and handed on over a
    tensor of it (:func:`tensor_array`): a trainer holds them without a copy. Joined by
    ``tf.concat``, every read of the rows took a new region from TensorFlow's allocator.
    """
    if len(leaves) == 1:
        return leaves[0]
    joined = join_rows(leaves)
    return tensor_array(as_tensor(joined)) if joined.dtype.kind in "biuf" else joined


#: A file whose status changed this recently when it was read is also summed (CRC-32 of its
#: bytes), and summed again before its kept rows are used: a write within the filesystem's
#: timestamp resolution of the last one can leave its size and times as they were (git's
#: "racily clean" index entries). Older changes are told by the status alone.
RACY_SECONDS = 2.0


def held_source(
    plan: ParquetPlan, mode: Mode, key_column: str | None, read: Callable[[], ArraySource]
) -> ArraySource:
    """The rows of ``plan`` read whole: those a call just before read, else ``read()``."""
    key = _content_key(plan, mode, key_column)
    if key is None:
        return read()
    if mode is Mode.PREDICT:  # the features alone: rows that `fit` or `evaluate` read hold them
        wider = _kept_rows((*key[:3], Mode.TRAIN.roles, None), drop_others=False)
        if wider is not None:
            return ArraySource(wider.x, None, None, wider.num_samples)
    rows = _kept_rows(key)
    if rows is not None:
        return rows
    sums = _sums(key[1]) if _racy(key[1]) else None  # summed before the read it names
    source = read()
    keep(key, (sums, source))
    return source


def _kept_rows(key: tuple[Any, ...], drop_others: bool = True) -> ArraySource | None:
    """The rows kept under ``key``, if their files still hold them.

    Rows read from a file that had changed lately were summed then: summed again here. Else
    a status as it was when they were read tells that the file is unchanged.
    """
    found = kept(key, drop_others)
    if found is None:
        return None
    stored, rows = found
    return rows if stored is None or stored == _sums(key[1]) else None


def _content_key(plan: ParquetPlan, mode: Mode, key_column: str | None) -> tuple[Any, ...] | None:
    """What names the rows the plan reads to (each file's status), or None where not known."""
    if not plan.local_files or os.name != "posix":  # elsewhere: no change time
        return None
    files = tuple(_status(path) for path in plan.local_files)
    key = ("parquet rows", files, plan.schema, mode.roles, key_column)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _status(path: str) -> tuple[Any, ...]:
    """A file's path and :func:`~fitpipe.columnar.file_status`."""
    return (path, *file_status(path))


def _racy(files: tuple[tuple[Any, ...], ...]) -> bool:
    """Whether a file changed within :data:`RACY_SECONDS` of now."""
    now = time.time_ns()
    return any(now - status[3] < RACY_SECONDS * 1e9 for status in files)


def _sums(files: tuple[tuple[Any, ...], ...]) -> tuple[int, ...]:
    return tuple(checksum(status[0]) for status in files)


def checksum(path: str) -> int:
    """The CRC-32 of a local file's bytes, summed where the page cache holds them (mapped)."""
    with open(path, "rb") as handle:
        if not os.fstat(handle.fileno()).st_size:
            return zlib.crc32(b"")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)
