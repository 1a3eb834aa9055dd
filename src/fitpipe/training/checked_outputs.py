"""An output already checked against its input, for the rest of one command.

``fitpipe predict`` checks its ``--output`` against the input before it loads the model, the
strict way (:func:`~fitpipe.training.outputs.check_not_input` with ``folders``: any file
inside an input folder or matching an input glob refused); ``Trainer.predict`` then checks
the same output against the same input the lenient way, which expanding the input's globs
and folders again cannot fail. Inside :func:`checked_against`, that second check is skipped.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["already_checked", "checked_against"]

_CHECKED: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
    "fitpipe_checked_output", default=None
)


@contextlib.contextmanager
def checked_against(output: str, x: Any) -> Iterator[None]:
    """Marks ``output`` as checked (with ``folders``) against the input ``x`` while open.

    Args:
        output: The output as checked (an absolute path, or a URI).
        x: The input it was checked against (the same object is passed on to ``predict``).
    """
    token = _CHECKED.set((output, x))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def already_checked(output: str, x: Any) -> bool:
    """Whether ``output`` was checked against this very ``x`` (:func:`checked_against`)."""
    found = _CHECKED.get()
    return found is not None and found[0] == output and found[1] is x
