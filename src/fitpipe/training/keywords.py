"""Keyword arguments a training method does not take, worded with the names it does take.

``trainer.fit(x, y, epoch=3)`` raised Python's own ``TypeError: Trainer.fit() got an
unexpected keyword argument 'epoch'`` (and ``evaluate``, which takes ``**kwargs`` as Keras'
does, a ``ValueError``). Both now name the method's arguments and the closest one to each
unknown name: ``Rename `epoch` to `epochs```. The error keeps its builtin type.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from fitpipe.errors import FitpipeTypeError, message
from fitpipe.schemas import Schema

__all__ = ["argument_names", "unknown_keywords_error", "worded_keywords"]

P = ParamSpec("P")
#: Names of a ``fitpipe.Schema``'s fields, given to a method instead of to its schema.
_SCHEMA_FIELDS = frozenset(field.name for field in dataclasses.fields(Schema))
R = TypeVar("R")


def argument_names(method: Callable[..., Any]) -> tuple[str, ...]:
    """The names of the arguments ``method`` takes by name (not ``self`` or ``**kwargs``)."""
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return tuple(
        name
        for name, parameter in inspect.signature(method).parameters.items()
        if name != "self" and parameter.kind not in skipped
    )


def _fix(unknown: list[str], known: tuple[str, ...], caller: str) -> str:
    fields = [name for name in unknown if name in _SCHEMA_FIELDS]
    if fields and "schema" in known:  # `passthrough=["id"]` given beside the schema
        given = ", ".join(f"{name}=..." for name in fields)
        them = "it" if len(fields) == 1 else "them"
        return f"Name {them} in the schema: `schema=fitpipe.Schema(..., {given})`"
    renames = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            renames.append(f"`{name}` to `{close[0]}`")
    if renames:
        return f"Rename {', '.join(renames)}" + (
            ", and remove the others" if len(renames) < len(unknown) else ""
        )
    return f"Remove {'it' if len(unknown) == 1 else 'them'} (see `help(fitpipe.Trainer.{caller})`)"


def unknown_keywords_error(
    kwargs: dict[str, Any], known: Iterable[str], caller: str, kind: type[Exception]
) -> Exception:
    """The error for keyword arguments ``caller`` does not take, of type ``kind``.

    Args:
        kwargs: The keywords not taken, with their values.
        known: The names ``caller`` takes.
        caller: The public method.
        kind: ``FitpipeTypeError`` (Python's own error for an unknown keyword) or
            ``FitpipeValueError`` (Keras' ``evaluate``, which takes ``**kwargs``).
    """
    names = tuple(known)
    unknown = list(kwargs)
    plural = "s" if len(unknown) > 1 else ""
    what = f"got unexpected keyword argument{plural} {', '.join(map(repr, unknown))}"
    takes = f"`{caller}` takes {', '.join(names)}"
    return kind(message(caller, what, takes, _fix(unknown, names, caller), **kwargs))


def worded_keywords(method: Callable[P, R]) -> Callable[P, R]:
    """Words an unknown keyword given to ``method`` (a public method of the trainer).

    Nothing is added to a call that binds: the call is made as it is, and only a
    ``TypeError`` raised by binding it (no frame of ``method`` ran) is worded again.
    """
    known = argument_names(method)
    caller = method.__name__

    @functools.wraps(method)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except TypeError as err:
            unknown = {k: v for k, v in kwargs.items() if k not in known}
            if err.__traceback__ is None or err.__traceback__.tb_next is not None or not unknown:
                raise  # raised inside the method, or another binding error (a missing `x`)
            raise unknown_keywords_error(unknown, known, caller, FitpipeTypeError) from None

    return checked
