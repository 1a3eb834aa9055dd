"""Large buffers mapped once and used again while a trainer's call runs.

Every block a streamed pass converts, reorders or joins needs a buffer as large as the block
(65,536 rows of 512 float32 columns: 128 MiB), and a freshly mapped one costs the kernel a
zeroed page for every 4 KiB of it, again at every block of every pass. On a 2-core VM a
streamed 65,536 x 512 Parquet epoch spent 0.4 s of its 0.95 s of CPU in the kernel, most of
it clearing fresh pages (``perf``: ``clear_page_erms`` 22% of the run's samples).

While :func:`recycling` is entered (a trainer enters it for each ``fit``, ``evaluate`` and
``predict`` call), :func:`mapped` hands out a mapping of the same size that nothing refers
to any more instead of mapping a new one. Whether a mapping is free is read from Python's
reference count of its root array, which every view of it holds (NumPy points a view's
``base`` at the first array over the mapping), and so does every tensor TensorFlow made of
it through DLPack or ``tf.data`` (each holds the array it was handed): a mapping is handed out
again only when no array, view or tensor of it is left. The pool lets its mappings go
:data:`KEEP_SECONDS` after the last caller leaves :func:`recycling` (those still in use live
on as long as their arrays do), so that calls made one after the other (``fit`` then
``evaluate``, a script's fits) use each other's buffers, and memory is not held long after.
The free mappings it keeps are bounded in bytes (:func:`free_bound`), not only in number:
blocks of many sizes (a wide file's row groups joined into batches of another size) once
left eight free mappings of up to 156 MiB each (900 MiB) held for no block to come.

Rows a call read whole can be kept the same way (:func:`keep`, :func:`kept`): a ``fit`` then
an ``evaluate`` of one Parquet file read and converted it twice. A value is kept only inside
:func:`recycling`, let go with the pool's mappings, and let go at once when a call looks up
a value that is not kept: whatever no call in progress has used is dropped before the new
value is read, so memory never holds more than the calls in progress read.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import sys
import threading
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from fitpipe import limits

__all__ = [
    "KEEP_SECONDS",
    "RECYCLED_MAPPINGS",
    "free_bound",
    "free_bytes",
    "keep",
    "kept",
    "mapped",
    "recycling",
    "release",
    "trim_heap",
]

#: The most mappings the pool keeps track of at once (in use or free). A streamed pass has
#: a few blocks alive at a time (one being read ahead, one in the compiled loop, the
#: buffers a block is built in); mappings made when the pool is full are not tracked.
RECYCLED_MAPPINGS = 8

#: Seconds the pool keeps its mappings after the last caller left :func:`recycling`.
KEEP_SECONDS = 5.0

_lock = threading.Lock()
_users = 0
_pool: list[np.ndarray] = []
_timer: threading.Timer | None = None
#: Values kept by key, each with the generation of the calls that last used it.
_kept: dict[Hashable, tuple[int, Any]] = {}
#: Counts the times a first caller entered :func:`recycling` (calls overlapping share one).
_generation = 0


def _malloc_trim() -> Any:
    """The C library's ``malloc_trim`` (glibc), or None on another C library."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def trim_heap() -> None:
    """Gives the C heap's free pages back to the system (glibc; elsewhere nothing is done).

    Reading a wide row group makes many small allocations on pyarrow's threads (10,000
    columns: about 60 MiB a row group); glibc keeps the freed pages in its arenas, and a
    streamed ``fit`` of 12,000 x 10,000 float32 rows held 0.9 GiB of them after its end
    (``malloc_trim`` gave it back: 10-50 ms). Called when the pool lets go
    (:data:`KEEP_SECONDS` after the last call), not at every pass or call: the pages given
    back would be faulted in again by the next (streamed 64,000 x 512 ``fit`` calls in a
    row trained 5-10% slower trimmed at the end of each).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def free_bound(nbytes: int) -> int:
    """The bytes of free mappings the pool keeps while a mapping of ``nbytes`` is asked for.

    Half of ``limits.RESIDENT_BYTES_LIMIT``, and never less than two of the size asked for
    (blocks of one size, a pass's row groups, are used again whatever the limit).
    """
    return max(limits.RESIDENT_BYTES_LIMIT // 2, 2 * nbytes)


def _is_free(index: int) -> bool:
    """Whether the pool's list holds the only reference to its root at ``index`` (lock held).

    ``sys.getrefcount`` counts its own argument too.
    """
    return sys.getrefcount(_pool[index]) <= 2


def free_bytes() -> int:
    """The bytes of the tracked mappings nothing refers to any more."""
    with _lock:
        return sum(_pool[i].nbytes for i in range(len(_pool)) if _is_free(i))


def _trim(nbytes: int) -> None:
    """Lets free mappings go, oldest first, until they hold :func:`free_bound` bytes at most.

    The lock is held.
    """
    free = [i for i in range(len(_pool)) if _is_free(i)]
    held = sum(_pool[i].nbytes for i in free)
    dropped = set()
    for index in free:
        if held <= free_bound(nbytes):
            break
        held -= _pool[index].nbytes
        dropped.add(index)
    if dropped:
        _pool[:] = [root for i, root in enumerate(_pool) if i not in dropped]


def _anonymous_map(nbytes: int) -> mmap.mmap:
    """Private anonymous memory of ``nbytes``, faulted in at once where the platform can."""
    if not hasattr(mmap, "MAP_POPULATE"):
        return mmap.mmap(-1, nbytes)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    return mmap.mmap(-1, nbytes, flags=flags)


def _first_free(nbytes: int | None = None) -> int | None:
    """The index of the first free tracked root (of ``nbytes`` if given), or None.

    Free: the pool's list holds the only reference (:func:`_is_free`). The lock is held.
    """
    for index in range(len(_pool)):
        if nbytes is not None and _pool[index].nbytes != nbytes:
            continue
        if _is_free(index):
            return index
    return None


def _track(root: np.ndarray) -> None:
    """Tracks ``root``; a full pool first lets go of a free mapping (the lock held)."""
    if len(_pool) >= RECYCLED_MAPPINGS:
        spare = _first_free()
        if spare is None:
            return
        del _pool[spare]
    _pool.append(root)


def mapped(nbytes: int) -> np.ndarray:
    """A 1-D ``uint8`` array over ``nbytes`` of private anonymous memory, page-aligned.

    Inside :func:`recycling` it may be a mapping handed out before whose arrays are all
    gone (its old values still in it: callers write the whole buffer); outside, a new one.
    Views of the returned array keep it in use; so must every other reference to its memory.
    """
    with _lock:
        found = _first_free(nbytes) if _users else None
        if found is not None:
            root = _pool[found]  # (held here: not free, not let go)
            _trim(nbytes)
            return root
        if _users:
            _trim(nbytes)  # (before mapping anew: what is let go makes room for it)
        root = np.frombuffer(_anonymous_map(nbytes), np.uint8)
        if _users:
            _track(root)
        return root


def kept(key: Hashable, drop_others: bool = True) -> Any:
    """The value kept under ``key`` (None if none, or outside :func:`recycling`).

    A miss lets go of every value that no call in progress has used (unless
    ``drop_others`` is False: a look-up that another follows), so that what the caller reads
    next can take their memory (and their mappings) instead of adding to it.
    """
    with _lock:
        if not _users:
            return None
        found = _kept.get(key)
        if found is not None:
            _kept[key] = (_generation, found[1])
            return found[1]
        if not drop_others:
            return None
        for old in [k for k, (generation, _) in _kept.items() if generation != _generation]:
            del _kept[old]
        return None


def keep(key: Hashable, value: Any) -> None:
    """Keeps ``value`` under ``key`` until the pool lets go (only inside :func:`recycling`)."""
    with _lock:
        if _users:
            _kept[key] = (_generation, value)


def release() -> None:
    """Lets the pool's mappings and kept values go now, unless a caller is in :func:`recycling`."""
    with _lock:
        if _users:
            return
        _pool.clear()
        _kept.clear()
    trim_heap()


@contextlib.contextmanager
def recycling() -> Iterator[None]:
    """Inside, :func:`mapped` reuses free mappings of the same size (nestable, any thread)."""
    global _users, _timer, _generation
    with _lock:
        if not _users:
            _generation += 1
        _users += 1
        if _timer is not None:
            _timer.cancel()
            _timer = None
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if not _users and (_pool or _kept):
                _timer = threading.Timer(KEEP_SECONDS, release)
                _timer.daemon = True
                _timer.start()
