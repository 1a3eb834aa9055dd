"""Threads inside the input's own code, which closing a pipeline does not wait for.

Python cannot stop a thread while it runs the user's ``next()`` or ``__getitem__`` (a feed
that blocks, a slow network read). A pipeline closed then (a callback raised, say, or
``KeyboardInterrupt``) lets such a thread go instead of waiting for the call: the thread is a
daemon, its reader was stopped first, so it ends when the call returns and hands on nothing.
Every other reading thread is waited for as before (it ends at once when told to stop).

The code that calls into the input marks the call with :func:`in_input_code`;
:func:`join_unless_in_input` is the join that lets such a thread go.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = ["in_input_code", "inside_input", "join_unless_in_input"]

_LOCK = threading.Lock()
_INSIDE: collections.Counter[int] = collections.Counter()  # thread ident -> nested calls
_POLL_SECONDS = 0.01  # a join looks this often whether the thread went into the input


@contextlib.contextmanager
def in_input_code() -> Iterator[None]:
    """Marks the calling thread as inside the input's code (or waiting on it) in the block."""
    ident = threading.get_ident()
    with _LOCK:
        _INSIDE[ident] += 1
    try:
        yield
    finally:
        with _LOCK:
            _INSIDE[ident] -= 1
            if _INSIDE[ident] <= 0:
                del _INSIDE[ident]


def inside_input(thread: threading.Thread) -> bool:
    """Whether ``thread`` is now inside the input's code (see :func:`in_input_code`)."""
    with _LOCK:
        return thread.ident is not None and _INSIDE.get(thread.ident, 0) > 0


def join_unless_in_input(thread: threading.Thread, timeout: float) -> bool:
    """Waits up to ``timeout`` seconds for ``thread`` to end, but not while it is in the input.

    Args:
        thread: A reading thread, already told to stop.
        timeout: The most seconds to wait.

    Returns:
        Whether the thread ended.
    """
    if thread is threading.current_thread():
        return False
    deadline = time.monotonic() + timeout
    while thread.is_alive() and not inside_input(thread):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        thread.join(min(_POLL_SECONDS, left))
    return not thread.is_alive()
