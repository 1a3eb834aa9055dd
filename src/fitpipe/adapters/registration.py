"""What :meth:`~fitpipe.adapters.AdapterRegistry.register` checks before it registers.

An adapter's members and its priority are checked when it is registered, not when inputs are
dispatched: every dispatch sorts the adapters by priority and asks each ``can_adapt``, so one
bad registration (a priority read from a config file as ``"50"``, a ``supports`` given as a
str) would otherwise break every input, plain NumPy included.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Set
from typing import Any

from fitpipe.adapters.base import ADAPT_ARGUMENTS
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message

__all__ = ["check_priority", "check_protocol", "check_replace"]

_CALLER = "register_adapter"

#: The protocol's str members, and how to fix each.
_TEXTS = {
    "name": "Give the adapter a str `name` (its key in `fitpipe.adapters.registry`)",
    "accepts": 'Set `accepts` to a str saying what the adapter takes (e.g. "a polars.DataFrame")',
}


def check_priority(priority: Any, name: str) -> None:
    """Checks a priority: a real number (an int or a float), not a bool and not NaN.

    Args:
        priority: The priority given.
        name: The adapter's name, for the message.

    Raises:
        FitpipeTypeError: For anything but a real number (bools included).
        FitpipeValueError: For NaN, which no order can place.

    """
    real = isinstance(priority, numbers.Real) and not isinstance(priority, bool)
    if real and not math.isnan(priority):
        return
    kind = FitpipeTypeError if not real else FitpipeValueError
    raise kind(
        message(
            _CALLER,
            f"got an invalid `priority` for the adapter {name!r}",
            "`priority` is a real number (an int or a float, not a bool or NaN): higher "
            "priorities are asked first, and built-in adapters use 0 to 100",
            "Pass a number, e.g. `priority=50` (convert a value read from text with `int`)",
            priority=priority,
        )
    )


def check_replace(replace: Any) -> None:
    """Checks ``replace``: a bool (a str such as ``"no"`` would read as True).

    Raises:
        FitpipeTypeError: For anything else.

    """
    if isinstance(replace, bool):
        return
    raise FitpipeTypeError(
        message(
            _CALLER,
            "got an invalid `replace`",
            "`replace` is True (replace a third-party adapter of the same name) or False",
            "Pass a bool",
            replace=replace,
        )
    )


def check_protocol(adapter: Any) -> None:
    """Checks that ``adapter`` provides the adapter protocol, with members of the right types.

    Raises:
        FitpipeTypeError: Naming every problem found and how to fix each.

    """
    problems = _problems(adapter)
    if not problems:
        return
    raise FitpipeTypeError(
        message(
            _CALLER,
            f"cannot register {type(adapter).__name__}: "
            + "; ".join(problem for problem, _ in problems),
            "An adapter has a str `name`, a str `accepts`, a frozenset `supports` drawn from "
            f"{list(ADAPT_ARGUMENTS)}, and `can_adapt(x)` and `adapt(request)` methods (see "
            "`fitpipe.adapters.Adapter`)",
            "; ".join(dict.fromkeys(fix for _, fix in problems)),
            adapter=adapter,
        )
    )


def _problems(adapter: Any) -> list[tuple[str, str]]:
    """``(problem, fix)`` for each way ``adapter`` breaks the protocol."""
    members = ("name", "accepts", "supports", "can_adapt", "adapt")
    missing = [attr for attr in members if not hasattr(adapter, attr)]
    if missing:
        return [(f"missing {missing}", "Add the missing members")]
    problems = []
    for attr, fix in _TEXTS.items():
        value = getattr(adapter, attr)
        if not isinstance(value, str) or not value:
            problems.append((f"`{attr}` is {value!r}, not a non-empty str", fix))
    for attr in ("can_adapt", "adapt"):
        if not callable(getattr(adapter, attr)):
            problems.append((f"`{attr}` is not callable", f"Make `{attr}` a method"))
    supports = adapter.supports
    if not isinstance(supports, Set):
        fix = 'Make `supports` a frozenset of argument names, e.g. `frozenset({"batch_size"})`'
        problems.append((f"`supports` is {type(supports).__name__}, not a frozenset", fix))
        return problems
    unknown = sorted(map(repr, set(supports) - set(ADAPT_ARGUMENTS)))
    if unknown:
        problems.append(
            (
                f"unknown `supports` entries [{', '.join(unknown)}]",
                "Drop or rename the unknown entries: `supports` names only the optional "
                f"arguments the adapter honours, from {list(ADAPT_ARGUMENTS)}",
            )
        )
    return problems
