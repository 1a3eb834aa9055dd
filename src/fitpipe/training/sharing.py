"""Bytes made by the chief of a multi-worker run, given to every worker by all-reduces.

Every worker calls :func:`share_bytes` (or the function :func:`chief_shares` returns) at the
same point. The bytes travel as int32 vectors summed over the replicas: the chief's first
replica gives the bytes (4 per int32, so a sum with zeros is exact), every other replica
zeros. A first all-reduce of :data:`HEAD_WORDS` words carries the length and the first
bytes (one all-reduce for short data, such as an error message); a second one, only for
longer data, the rest.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe import errors
from fitpipe.errors import FitpipeError, FitpipeValueError, message

__all__ = ["HEAD_WORDS", "MAX_SHARED_BYTES", "chief_shares", "share_bytes"]

#: Words (int32) of the first all-reduce: the length, then the first bytes.
HEAD_WORDS = 1024

#: The most bytes shared at once (the length travels as one int32).
MAX_SHARED_BYTES = 2**31 - 1

_HEAD_BYTES = (HEAD_WORDS - 1) * 4


def _words(data: bytes, count: int) -> np.ndarray:
    """``data`` as ``count`` int32 words (little-endian, zero-padded)."""
    padded = data + b"\0" * (count * 4 - len(data))
    return np.frombuffer(padded, "<i4").astype(np.int32)


def _summed(strategy: tf.distribute.Strategy, words: np.ndarray, chief: bool) -> np.ndarray:
    """The sum of ``words`` over the replicas: the chief's first replica's, zeros elsewhere."""
    zeros = np.zeros_like(words)
    first = [chief]

    def value(context: Any) -> tf.Tensor:
        mine, first[0] = first[0], False
        return tf.constant(words if mine else zeros)

    values = strategy.experimental_distribute_values_from_function(value)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()


def share_bytes(strategy: tf.distribute.Strategy, data: bytes) -> bytes:
    """The chief's ``data`` on every worker (a collective: every worker calls it).

    Args:
        strategy: A ``MultiWorkerMirroredStrategy`` (or any synchronous strategy).
        data: The chief's bytes (up to :data:`MAX_SHARED_BYTES`); the others' are ignored.

    Returns:
        The chief's bytes, as they arrived (on the chief too).
    """
    chief = bool(strategy.extended.should_checkpoint)
    data = data if chief else b""
    assert len(data) <= MAX_SHARED_BYTES, "checked by the caller"
    head = np.zeros(HEAD_WORDS, np.int32)
    if chief:
        head[0] = len(data)
        head[1:] = _words(data[:_HEAD_BYTES], HEAD_WORDS - 1)
    head = _summed(strategy, head, chief)
    length = int(head[0])
    shared = head[1:].astype("<i4").tobytes()[:length]
    if length > _HEAD_BYTES:
        count = -(-(length - _HEAD_BYTES) // 4)
        rest = _words(data[_HEAD_BYTES:], count) if chief else np.zeros(count, np.int32)
        shared += _summed(strategy, rest, chief).astype("<i4").tobytes()[: length - _HEAD_BYTES]
    return shared


def _error(kind: str, text: str) -> Exception:
    """The chief's error, raised again on another worker.

    Its class (fitpipe's or a built-in one) with its message; else a :class:`FitpipeError`
    naming the class.
    """
    found = getattr(errors, kind, None) or getattr(builtins, kind, None)
    if isinstance(found, type) and issubclass(found, Exception):
        try:
            return found(text)
        except TypeError:  # a class whose constructor takes more than a message
            pass
    return FitpipeError(f"{kind}: {text}")


def _made(make: Callable[[], bytes], caller: str) -> tuple[bytes, Exception | None]:
    """What the chief sends, and its error (or None).

    A zero byte and ``make()``'s bytes, or a one byte and ``make``'s error as JSON.
    """
    try:
        data = make()
        if len(data) >= MAX_SHARED_BYTES:
            raise FitpipeValueError(
                message(
                    caller,
                    f"cannot share {len(data)} bytes of input plan between the workers",
                    f"At most {MAX_SHARED_BYTES} bytes travel in one all-reduce",
                    "Merge small files or row groups into larger ones",
                )
            )
    except Exception as err:  # raised again below, on every worker
        text = json.dumps({"type": type(err).__name__, "message": str(err)})
        return b"\1" + text.encode(), err
    return b"\0" + data, None


def chief_shares(
    strategy: tf.distribute.Strategy, caller: str
) -> Callable[[Callable[[], bytes]], bytes]:
    """``share(make)``: ``make()``'s bytes, made by the chief alone, on every worker.

    The chief's error (any exception ``make`` raises) is shared instead of bytes and raised
    on every worker at once, with the chief's message (the chief raises its own): a worker
    never waits in a later collective for a chief that left.

    Args:
        strategy: A ``MultiWorkerMirroredStrategy``.
        caller: The public method, for messages.

    Returns:
        The function (see :data:`fitpipe.adapters.Share`); a collective, like
        :func:`share_bytes`.
    """

    def share(make: Callable[[], bytes]) -> bytes:
        chief = bool(strategy.extended.should_checkpoint)
        sent, error = _made(make, caller) if chief else (b"", None)
        shared = share_bytes(strategy, sent)
        if error is not None:
            raise error
        if shared[:1] == b"\1":
            failed = json.loads(shared[1:])
            raise _error(failed["type"], failed["message"])
        return shared[1:]

    return share
