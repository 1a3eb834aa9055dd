"""fitpipe's errors and warnings, and the one function that words their messages.

Every error fitpipe raises for bad input or misuse is a :class:`FitpipeError` that also
subclasses the builtin a Keras user would catch (``ValueError`` or ``TypeError``; a training
method called before ``compile``: ``RuntimeError``). Messages follow one pattern::

    `fit` <what failed>. <what was expected>. <how to fix>. Received: x=... (of type T)
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import warnings
from typing import Any

__all__ = [
    "ConcurrentUseError",
    "DataCheckError",
    "DataCheckWarning",
    "DataMismatchError",
    "FitpipeError",
    "FitpipeTypeError",
    "FitpipeValueError",
    "FitpipeWarning",
    "NotCompiledError",
    "PluginWarning",
    "RecompiledError",
    "SchemaError",
    "UnsupportedArgumentError",
    "UnsupportedInputError",
    "describe",
    "message",
    "missing_path_fix",
]

_MAX_REPR = 120
#: A terminal's colour and style codes, as some libraries' errors hold them.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class FitpipeError(Exception):
    """Base class of every error fitpipe raises on purpose."""


class FitpipeValueError(FitpipeError, ValueError):
    """A value of the right type that fitpipe cannot use."""


class FitpipeTypeError(FitpipeError, TypeError):
    """An object of a type fitpipe cannot use where it was given."""


class NotCompiledError(FitpipeError, RuntimeError, ValueError):
    """A training or evaluation method was called before ``compile``.

    A ``ValueError`` too, as Keras' own error for it ("You must call `compile()`").
    """


class ConcurrentUseError(FitpipeError, RuntimeError):
    """A thread trained or evaluated a model while another thread was doing so."""


class RecompiledError(FitpipeError, RuntimeError):
    """The model was compiled again (by a callback) while ``fit`` was training it."""


class UnsupportedInputError(FitpipeTypeError, ValueError):
    """No registered adapter takes the input.

    A ``ValueError`` too, as Keras' own error for it ("Unrecognized data type").
    """


class UnsupportedArgumentError(FitpipeValueError):
    """An argument was given that the adapter chosen for the input does not support."""


class DataMismatchError(FitpipeValueError):
    """Data whose sizes, shapes, names or dtypes disagree with each other or with the model."""


class SchemaError(FitpipeValueError):
    """A declared schema that does not match the data it is applied to."""


class DataCheckError(FitpipeValueError):
    """Values the pre-flight check found that spoil training (``fit(check="error")``)."""


class FitpipeWarning(UserWarning):
    """A warning about an argument fitpipe ignores or a setting it had to change."""


class PluginWarning(FitpipeWarning):
    """A third-party adapter failed (to load, or in ``can_adapt``) and was skipped."""


class DataCheckWarning(FitpipeWarning):
    """Values the pre-flight check found that likely spoil training (``fit(check="warn")``)."""


def describe(value: Any) -> str:
    """Returns a short, readable description of ``value`` for error messages.

    Arrays and tensors are described by shape and dtype rather than printed in full (a NumPy
    scalar by its value); other values are ``repr``-ed and truncated.

    Args:
        value: Anything.

    Returns:
        A string such as ``"array of shape (3, 4) and dtype float32 (of type ndarray)"``.

    """
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape == () and type(value).__module__ == "numpy" and hasattr(value, "item"):
        return f"{value.item()!r} (of type {kind})"  # a NumPy scalar: its value
    if shape is not None and dtype is not None and not isinstance(value, type):
        try:
            shape_text = str(tuple(shape))
        except TypeError:
            shape_text = str(shape)
        return f"array of shape {shape_text} and dtype {_dtype_name(dtype)} (of type {kind})"
    text = repr(value)
    if len(text) > _MAX_REPR:
        text = text[: _MAX_REPR - 3] + "..."
    return f"{text} (of type {kind})"


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None)
    return str(name if name is not None else dtype)


def message(caller: str, what: str, expected: str, fix: str, **received: Any) -> str:
    """Words an error message in fitpipe's one pattern.

    Args:
        caller: The public method the user called (``"fit"``, ``"adapt"``, ...).
        what: What failed, without a final period.
        expected: What was expected, without a final period.
        fix: How to fix it, without a final period.
        **received: The offending arguments, by name; each is described with
            :func:`describe`.

    Returns:
        The message, without the terminal codes of a library's error quoted in ``what``.

    """
    text = f"`{caller}` {what}. {expected}. {fix}."
    if received:
        parts = []
        for name, value in received.items():
            if isinstance(value, _Raw):
                parts.append(f"{name}={value.text}")
            else:
                parts.append(f"{name}={describe(value)}")
        text += " Received: " + ", ".join(parts)
    return _ANSI.sub("", text)


class _Raw:
    """Text shown as-is after ``Received:`` (for values already described)."""

    def __init__(self, text: str) -> None:
        self.text = text


def raw(text: str) -> Any:
    """Marks ``text`` to be shown verbatim in :func:`message`'s ``Received:`` part.

    Args:
        text: The already-worded description.

    Returns:
        A marker object for :func:`message`.

    """
    return _Raw(text)


def missing_path_fix(path: str) -> str:
    """How to fix a local path that does not exist.

    A relative path is told the working directory it starts at; an absolute one the deepest
    folder of it that exists.
    """
    if not os.path.isabs(path):
        return f"Check the path (a relative path starts at the working directory {os.getcwd()!r})"
    found = os.path.dirname(os.path.normpath(path))
    while not os.path.isdir(found) and os.path.dirname(found) != found:
        found = os.path.dirname(found)
    return f"Check the path (the deepest folder of it that exists is {found!r})"


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Frames :func:`warn` walks through besides the package's: the wrappers of the decorators
#: fitpipe's methods are built with.
_PLUMBING = frozenset({contextlib.__file__, functools.__file__})


def warn(warning: str | Warning, category: type[Warning] = FitpipeWarning) -> None:
    """Warns at the first frame outside fitpipe: the user's line that called it.

    A fixed ``stacklevel`` points at the right line from one call path only (``fit`` and
    ``train_on_batch`` reach the same check through different depths), and a warning
    filtered or shown by its module would name a fitpipe file instead.

    Args:
        warning: The message, or a warning instance (its own category then applies).
        category: The warning's class, for a message.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and _inside(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    if isinstance(warning, Warning):
        warnings.warn(warning, stacklevel=level + 1)
    else:
        warnings.warn(warning, category, stacklevel=level + 1)


def _inside(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or filename in _PLUMBING
