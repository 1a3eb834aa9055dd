"""Which method a schema's errors name: the ``Schema`` constructor's, or the method it was given to.

A ``Schema`` built by the user names itself (``Schema``, ``Schema.from_dict``); one built
from a dict given as ``fit(schema={...})`` names ``fit``, the method the user called.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["named_for", "schema_caller"]

_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fitpipe_schema_caller", default=None
)


def schema_caller(own: str) -> str:
    """The caller a schema error names: the method being run, else ``own``.

    Args:
        own: The schema's own name for the call (``"Schema"``, ``"Schema.from_dict"``).

    Returns:
        The name to give :func:`fitpipe.errors.message`.
    """
    return _CALLER.get() or own


@contextlib.contextmanager
def named_for(caller: str) -> Iterator[None]:
    """Makes the schema errors raised inside name ``caller`` (a method given the schema).

    Args:
        caller: The public method the user called (``"fit"``, ``"evaluate"``...).

    Yields:
        Nothing; on exit the errors name the schema's own call again.
    """
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)
