"""Questions about a value's type, answered once per type.

The registry asks each adapter in turn, and the array family each leaf, on every
``*_on_batch`` call: ``isinstance`` against TensorFlow's ABCs and a walk of the MRO cost
microseconds a question, a dict lookup a tenth of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ByType", "of_library"]

_KEPT = 1024  # types remembered per question (classes made at run time: bounded)


class ByType:
    """``test`` of a value's type, remembered per type (in ``known``)."""

    __slots__ = ("_test", "known")

    def __init__(self, test: Callable[[type], bool]) -> None:
        self._test = test
        self.known: dict[type, bool] = {}

    def __call__(self, value: Any) -> bool:
        """``test(type(value))``."""
        kind = type(value)
        found = self.known.get(kind)
        if found is None:
            if len(self.known) > _KEPT:
                self.known.clear()
            found = self.known[kind] = self._test(kind)
        return found


def of_library(modules: tuple[str, ...]) -> ByType:
    """Whether a value's type, or one it derives from, is defined in one of ``modules``.

    Asked without importing them: ``("pandas",)`` is true for a DataFrame and for a
    class deriving from one.
    """

    def test(kind: type) -> bool:
        return any(
            (getattr(klass, "__module__", "") or "").split(".", 1)[0] in modules
            for klass in kind.__mro__
        )

    return ByType(test)
