"""Applying a spec's values: what Keras or fitpipe rejects later is blamed on its spec key.

A spec's values are checked for type and range when it is read (:mod:`fitpipe.cli.spec`);
some are only judged when they are used: an optimizer, loss or metric name Keras does not
know, ``loss_weights`` that do not match the outputs, a ``class_weight`` or
``validation_split`` the data cannot take, a source path that names nothing. Code that uses
the values runs inside :func:`applying`, which turns such an error into a
:class:`~fitpipe.cli.files.SpecError` naming the key (``compile.loss``) and the spec file,
what the key holds, and the underlying reason.

The key is the one the error mentions first: by name (```loss_weights```,
``class_weight=``) or by value (``binary_crossentropyy``, a resolved path); else, for an
error raised where Keras builds the compiled loss or metrics, ``compile.loss`` or
``compile.metrics``. An error that mentions no key of the spec (a bug in the model's
``call``) is left as it is, and so is a :class:`~fitpipe.errors.DataCheckError` (bad values
in the data, named by column).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterator
from typing import Any

from fitpipe.cli.files import SpecError, spec_error
from fitpipe.cli.spec import COMPILE_TYPES, RunSpec
from fitpipe.errors import DataCheckError, FitpipeError, SchemaError

__all__ = ["applying", "blame", "rejected"]

_PATH_KEYS = ("data.source", "data.validation_data", "model.path")

_FIT_EXPECTED = {
    "epochs": "a positive integer: the epoch training ends at (above `fit.initial_epoch`)",
    "batch_size": "a positive integer: rows per batch",
    "shuffle": 'true, false or "batch"',
    "validation_split": "a fraction in [0, 1) that leaves rows on both sides",
    "split_by": "a column of the data holding each row's key",
    "stratify": "true or false",
    "class_weight": 'a table of class index to a finite, non-negative weight, "balanced", '
    "or a table of those by output name",
    "initial_epoch": "a non-negative integer below `fit.epochs`",
    "steps_per_epoch": "a positive integer",
    "validation_steps": "a positive integer",
    "validation_batch_size": "a positive integer",
    "validation_freq": "a positive integer, or a list of epochs",
    "check": 'the pre-flight check of the data: true, false, "warn", "error" or "full"',
}

#: Keras' builders of the compiled loss and metrics (in the first step) and their arguments.
_BUILDERS = {"CompileLoss": ("loss",), "CompileMetrics": ("metrics", "weighted_metrics")}

#: How fitpipe says a Parquet file cannot be read (``columnar.file_error``): the file.
_UNREADABLE = re.compile(r"cannot read the Parquet file (.+?) \(")

_CWD_HINT = re.compile(r" ?\(a relative path starts at the working directory [^)]*\)")


def _mentions(spec: RunSpec) -> list[tuple[str, str | None, Any]]:
    """``(key, name, value)`` of the spec's values an error may mention, in spec order.

    ``name`` is how Keras and fitpipe call the argument (None: known by its value only).
    """
    found: list[tuple[str, str | None, Any]] = [
        ("data.source", "source", spec.data.source),
        ("data.validation_data", "validation_data", spec.data.validation_data),
        ("model.path", None, spec.model.path),
    ]
    found += [(f"compile.{key}", key, value) for key, value in spec.compile]
    found += [(f"fit.{key}", key, value) for key, value in spec.fit]
    found = [entry for entry in found if entry[2] is not None]
    return [*found, (_schema_key(spec), "schema", spec.data.schema_file)]


def _schema_key(spec: RunSpec) -> str:
    return "data.schema" if spec.data.schema_file is None else "data.schema_file"


def _leaves(value: Any) -> Iterator[str]:
    """The strings in a value (a table's keys and values, a list's items)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(key)
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)


def _first_mention(text: str, name: str | None, value: Any) -> int | None:
    """Where ``text`` first names the key (```name```, ``name=``) or one of its strings."""
    patterns = [rf"`{name}\b", rf"(?<![\w.]){name}="] if name else []
    patterns += [
        rf"(?<![\w/.-]){re.escape(leaf)}(?![\w/*-]|\.\w)"
        for leaf in _leaves(value)
        if len(leaf) > 2
    ]
    starts = [found.start() for p in patterns for found in [re.search(p, text)] if found]
    return min(starts, default=None)


def blame(err: BaseException, spec: RunSpec) -> str | None:
    """The dotted spec key an error raised while applying the spec is about, or None.

    Args:
        err: The error.
        spec: The spec whose values were being applied.

    Returns:
        The key the error mentions first (a schema that does not fit the data:
        ``data.schema``; a Parquet file that cannot be read: ``data.source``), or None
        when it mentions none.

    """
    if isinstance(err, SchemaError):
        return _file_key(str(err), spec) or _schema_key(spec)
    text = str(err)
    hits = [
        (start, order, key)
        for order, (key, name, value) in enumerate(_mentions(spec))
        for start in [_first_mention(text, name, value)]
        if start is not None
    ]
    return min(hits)[2] if hits else _builder_key(err, spec)


def _file_key(text: str, spec: RunSpec) -> str | None:
    """The path key whose Parquet file ``text`` says cannot be read, or None.

    A corrupt or truncated file is the fault of ``data.source`` (or
    ``data.validation_data``), not of the schema.
    """
    found = _UNREADABLE.search(text)
    if found is None:
        return None
    path = found.group(1)
    for key, value in (
        ("data.source", spec.data.source),
        ("data.validation_data", spec.data.validation_data),
    ):
        if isinstance(value, str) and (
            path == value
            or path.startswith(value.rstrip("/") + "/")
            or fnmatch.fnmatch(path, value)
        ):
            return key
    return None


def _builder_key(err: BaseException, spec: RunSpec) -> str | None:
    """The ``[compile]`` key of the Keras builder the error was raised in, if any.

    Keras resolves ``loss`` and ``metrics`` in the first training step; some of its
    refusals there name neither (a table of losses by output for a model without output
    names: ``'NoneType' object is not iterable``).
    """
    given = dict(spec.compile)
    found = None
    trace = err.__traceback__
    while trace is not None:
        owner = type(trace.tb_frame.f_locals.get("self")).__name__
        names = [name for name in _BUILDERS.get(owner, ()) if name in given]
        found = f"compile.{names[0]}" if names else found
        trace = trace.tb_next
    return found


def _reason(err: BaseException) -> str:
    """The error's own words, on one line, without fitpipe's caller and ``Received:`` part."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    if isinstance(err, FitpipeError):
        text = re.sub(r"^`[^`]*` ", "", text)
        text = text.split(" Received: ", 1)[0]
        text = _CWD_HINT.sub("", text)  # paths of a spec start at its folder, said after
    elif isinstance(err, KeyError) or not text:
        text = f"{type(err).__name__}: {text}".rstrip(": ")
    return text.rstrip(".")


def _expected(spec: RunSpec, key: str) -> tuple[str, str]:
    """What the key holds, and how to fix it."""
    section, _, name = key.partition(".")
    if key in _PATH_KEYS:
        held = "a .keras file" if key == "model.path" else "Parquet data (a file, folder or glob)"
        return (
            f"`{key}` names {held}; a relative path in a spec starts at the spec's folder "
            f"{spec.folder!r}",
            "Fix the path",
        )
    if section == "compile" and name in COMPILE_TYPES:
        return f"`{key}` is {COMPILE_TYPES[name][1]}", "Fix the value"
    if section == "fit" and name in _FIT_EXPECTED:
        return f"`{key}` is {_FIT_EXPECTED[name]}", "Fix the value"
    if section == "data":
        return f"`{key}` names columns of the data and their roles", "Fix the schema"
    return f"[{section}] holds the arguments of `Model.{section}`", "Fix the named value"


def _value(spec: RunSpec, key: str) -> Any:
    values = {key: value for key, _, value in _mentions(spec)}
    if key == "data.schema":
        return spec.data.schema.to_dict()
    return values.get(key, dict(spec.compile) if key == "compile" else None)


def rejected(spec: RunSpec, key: str, err: BaseException) -> SpecError:
    """The error naming ``key`` of the spec for ``err``, which Keras or fitpipe raised."""
    who = "fitpipe" if isinstance(err, FitpipeError) else "Keras"
    expected, fix = _expected(spec, key)
    what = f"was rejected by {who} ({_reason(err)})"
    return spec_error(spec.file, key, what, expected, fix, _value(spec, key))


@contextlib.contextmanager
def applying(spec: RunSpec, fallback: str | None = None) -> Iterator[None]:
    """Runs code that uses the spec's values; an error about one names its key and the file.

    Args:
        spec: The spec whose values the code uses.
        fallback: The key to name when the error mentions none (``"compile"`` around
            ``compile``, whose every argument comes from the spec); None: leave such an
            error as it is.

    Raises:
        SpecError: For a ``ValueError``, ``TypeError`` or ``KeyError`` that :func:`blame`
            finds a key for (or with a ``fallback``), chained to it.

    """
    try:
        yield
    except (SpecError, DataCheckError):
        raise
    except (ValueError, TypeError, KeyError) as err:
        key = blame(err, spec) or fallback
        if key is None:
            raise
        raise rejected(spec, key, err) from err
