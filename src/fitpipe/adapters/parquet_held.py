"""Parquet rows read whole: joined into fitpipe's memory, kept for the calls that follow.

A script's ``fit`` then ``evaluate`` of one file read and converted it at each call: at
65,536 x 512 float32 the read was 0.25-0.85 s of CPU of calls taking 0.4-1.1 s. The rows a
call read are kept (:func:`fitpipe.columnar.keep`) under what names their content: every
file's path, size, modification time (ns) and the CRC-32 of its bytes, the schema resolved
against the files, the roles read (``fit`` and ``evaluate`` read the same; ``predict`` reads
features alone) and the ``split_by`` column. A file written again is read again, even at the
same size and modification time: its bytes are summed at every call (mapped, not decoded:
48 ms of CPU for a 191 MB file of 65,536 x 513 float32, against 0.2-0.8 s to read and
convert it). The rows are kept only while calls follow each other (let go a few seconds
after the last one, with the recycled buffers, :mod:`fitpipe.columnar.recycle`), and
dropped as soon as a call reads other rows. Datasets passed as ``pyarrow.dataset.Dataset``
(which may be filtered, or come from a table format) and files not on the local filesystem
are read at every call.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fitpipe.adapters.base import ArraySource
from fitpipe.columnar import (
    ParquetPlan,
    as_tensor,
    file_identity,
    join_rows,
    keep,
    kept,
    open_dataset,
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


def held_source(
    x: Any,
    plan: ParquetPlan,
    mode: Mode,
    key_column: str | None,
    caller: str,
    read: Callable[[], ArraySource],
) -> ArraySource:
    """The rows of ``x`` read whole: those a call just before read, else ``read()``."""
    key = _content_key(x, plan, mode, key_column, caller)
    if key is None:
        return read()
    found = kept(key)
    if isinstance(found, ArraySource):
        return found
    source = read()
    keep(key, source)
    return source


def _content_key(
    x: Any, plan: ParquetPlan, mode: Mode, key_column: str | None, caller: str
) -> Hashable | None:
    """What names the rows ``x`` reads to, or None where that is not known."""
    if isinstance(x, pads.Dataset):
        return None
    dataset = open_dataset(x, caller)
    if not isinstance(dataset.filesystem, pafs.LocalFileSystem):
        return None
    files = file_identity(dataset)
    if files is None:
        return None
    sums = tuple(checksum(path) for path, _, _ in files)
    key = ("parquet rows", files, sums, plan.schema, mode.roles, key_column)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def checksum(path: str) -> int:
    """The CRC-32 of a local file's bytes, summed where the page cache holds them (mapped)."""
    with open(path, "rb") as handle:
        if not os.fstat(handle.fileno()).st_size:
            return zlib.crc32(b"")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)
