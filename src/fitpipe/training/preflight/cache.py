"""Remembering the pre-flight scan of rows in memory, so ``fit`` called again does not rescan.

Fitting in chunks calls ``fit`` many times over the same arrays, and the scan costs 2-6 s per
GB each time. A scan is kept for the same objects (identity, held by weak reference, so a
reused ``id`` never matches) with the same data pointer, shape, dtype and strides, and the
same *fingerprint*: per column (the trailing axes flattened), the wrapping sum of the
values' bit patterns (columns side by side in 8-byte lanes, summed as one, when a row's bytes
are a multiple of 8). The fingerprint is one read of the data at memory speed (about 0.2 s
per GB, against 2-6 s for the scan) and changes with any in-place edit of a single value;
only edits that cancel exactly in a column's sum, or that move values within a column, go
unseen, and moving values within a column changes none of the statistics the check judges
(NaN and infinity counts, minima and maxima, constant columns, class counts).

Tensors (dense, ragged, sparse) are immutable: their identity is enough. Leaves of other
types (strings, objects) are not fingerprinted, and their scans are not kept.

Rows read from Parquet files (held in memory) are new arrays at every ``fit``: their scan is
kept for the same files (path, size and modification time of each) whose rows have the same
shapes, dtypes and column sums, so fitting again over an unchanged file does not rescan.
"""

from __future__ import annotations

import collections
import copy
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["ScanCache", "fingerprint"]

_UINTS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_KEPT = 8


def _array_print(array: np.ndarray) -> tuple[Any, ...] | None:
    """The fingerprint of one NumPy array (None when it cannot be made)."""
    uint = _UINTS.get(array.dtype.itemsize)
    if uint is None or array.dtype.kind not in "biuf" or array.ndim == 0:
        return None
    if array.flags.c_contiguous:
        columns = array.reshape(array.shape[0], -1) if array.shape[0] else array.reshape(0, 1)
        sums = _column_sums(columns, uint)
    else:
        # column-major or strided (a pandas frame's values, ``x[:, ::2]``, the first rows of
        # either): summed where it lies, as bit patterns of the same width; a contiguous
        # copy (or a reshape, which copies such an array) cost a copy of the data
        sums = array.view(uint).sum(axis=0, dtype=np.uint64).reshape(-1)
    pointer = array.__array_interface__["data"][0]
    return (pointer, array.shape, array.dtype.str, array.strides, sums.tobytes())


def _column_sums(columns: np.ndarray, uint: Any) -> np.ndarray:
    """Wrapping sums of a C-ordered 2-D array's bit patterns, by column (or 8-byte lane)."""
    if columns.shape[1] * columns.dtype.itemsize % 8 == 0:
        # 8-byte lanes (2, 4 or 8 columns each), summed as one: half or fewer adds (64,000
        # x 512 float32: 16-18 -> 12-14 ms); moving values within a column keeps a lane's sum too
        uint = np.uint64
    return columns.view(uint).sum(axis=0, dtype=np.uint64)


def fingerprint(leaves: list[Any]) -> tuple[Any, ...] | None:
    """The fingerprint of the given leaves, in order; None when one cannot be made."""
    prints: list[Any] = []
    for leaf in leaves:
        if isinstance(leaf, (tf.Tensor, tf.RaggedTensor, tf.SparseTensor)):
            prints.append(("tensor", id(leaf)))
            continue
        if not isinstance(leaf, np.ndarray):
            return None
        found = _array_print(leaf)
        if found is None:
            return None
        prints.append(found)
    return tuple(prints)


def _same(refs: list[Any], leaves: list[Any]) -> bool:
    return len(refs) == len(leaves) and all(
        r() is leaf for r, leaf in zip(refs, leaves, strict=True)
    )


class ScanCache:
    """The last few scans, each for the leaves it scanned (held by weak reference)."""

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[Any, tuple[list[Any], Any]] = (
            collections.OrderedDict()
        )

    def scan(self, structure: Any, extra: Any, run: Callable[[], Any], files: Any = None) -> Any:
        """The result of ``run()`` over ``structure``'s leaves, from the cache when it holds it.

        Args:
            structure: What is scanned (nested arrays and tensors).
            extra: Anything else the result depends on (column names), hashable.
            run: Scans, returning the result (kept as a copy; each caller gets its own).
            files: The identity of the files the leaves were just read from (see
                ``fitpipe.columnar.file_identity``), or None. With it, the leaves are new
                objects each call: a scan is kept for the same files with the same
                fingerprinted values (data pointers aside), not for the same objects.
        """
        leaves = [leaf for leaf in tf.nest.flatten(structure) if leaf is not None]
        try:
            refs = [weakref.ref(leaf) for leaf in leaves]
        except TypeError:  # a leaf without weak references: scanned every time
            return run()
        printed = fingerprint(leaves)
        if printed is None:
            return run()
        key: Any = (printed, extra)
        if files is not None:  # the files and the values, wherever the values now lie
            if any(p[0] == "tensor" for p in printed):
                return run()
            key, refs = (files, tuple((p[1], p[2], p[4]) for p in printed), extra), []
        entry = self._entries.get(key)
        if entry is not None and (files is not None or _same(entry[0], leaves)):
            self._entries.move_to_end(key)
            return copy.deepcopy(entry[1])
        result = run()
        self._entries[key] = (refs, copy.deepcopy(result))
        while len(self._entries) > _KEPT:
            self._entries.popitem(last=False)
        return result

    def clear(self) -> None:
        """Forgets every scan."""
        self._entries.clear()
