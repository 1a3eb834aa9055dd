"""One thread at a time trains or evaluates a model: another thread's call is refused.

``fit``, ``evaluate``, ``train_on_batch`` and ``test_on_batch`` reset and update the
model's one set of metrics (and ``fit`` and ``train_on_batch`` its weights): run from two
threads at once on one model they reported each other's numbers, silently (evaluate from
24 threads: 24 wrong results; Keras' own calls do the same). fitpipe refuses the second
thread's call while the first runs, and a ``compile`` from another thread meanwhile (it
replaces the optimizer and metrics the running call updates). The same thread may call
again inside a call (a callback's ``evaluate`` during ``fit``, as in Keras); ``predict``
and ``predict_on_batch`` touch no metric and run from any thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from fitpipe.errors import ConcurrentUseError, message, raw

__all__ = ["one_thread_at_a_time"]

P = ParamSpec("P")
R = TypeVar("R")


def one_thread_at_a_time(method: Callable[P, R]) -> Callable[P, R]:
    """Wraps a trainer's ``method``: refused while another thread runs one on its model."""
    caller = method.__name__

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        state, me = args[0]._state, threading.get_ident()  # type: ignore[attr-defined]
        with state.lock:
            owner = state.owner
            if owner is not None and owner[0] != me:
                raise _busy(caller, owner[1])
            if owner is None:
                state.owner = (me, caller)
        try:
            return method(*args, **kwargs)
        finally:
            if owner is None:
                state.owner = None

    return guarded


def _busy(caller: str, running: str) -> ConcurrentUseError:
    return ConcurrentUseError(
        message(
            caller,
            f"cannot run on this model while another thread runs `{running}` on it",
            "`fit`, `evaluate`, `train_on_batch` and `test_on_batch` reset and update the "
            "model's one set of metrics (and training its weights), which `compile` replaces: "
            "run at once, each reports the other's numbers",
            "Run them one after the other (e.g. behind one `threading.Lock`), or give each "
            "thread its own model (`keras.models.clone_model(model)`, then `set_weights`); "
            "`predict` and `predict_on_batch` may run from any thread",
            thread=raw(f"{threading.current_thread().name!r}"),
        )
    )
