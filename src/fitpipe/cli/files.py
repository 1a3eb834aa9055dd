"""Reading the files the CLI is given: TOML specs, schema files and model factories.

Every problem raises a :class:`SpecError` whose message names the file and, where there is
one, the key, dotted (``data.schema``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from fitpipe.errors import FitpipeError, FitpipeValueError, message
from fitpipe.schemas import Schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "SpecError",
    "import_file",
    "load_schema",
    "read_toml",
    "resolve_factory",
    "schema_from",
    "spec_error",
]

_CALLER = "fitpipe"


class SpecError(FitpipeValueError):
    """A run spec or schema file that cannot be used; the message names the key and file."""


def spec_error(path: str, key: str, what: str, expected: str, fix: str, value: Any) -> SpecError:
    """Builds the error for one key of a spec file.

    Args:
        path: The spec file.
        key: The dotted key (``fit.epochs``), or ``""`` for the whole file.
        what: What is wrong with it, without a final period.
        expected: What was expected.
        fix: How to fix it.
        value: The value found.

    Returns:
        The error, to raise.

    """
    where = f"`{key}` in {path}" if key else path
    received = {key or "file": value}
    return SpecError(message(_CALLER, f"cannot use {where}: it {what}", expected, fix, **received))


def read_toml(path: str) -> dict[str, Any]:
    """Reads a TOML file, naming the file (and the line) when it cannot.

    Args:
        path: The file.

    Returns:
        The parsed table.

    Raises:
        SpecError: When the file is missing or is not valid TOML.

    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as err:
        raise spec_error(
            path,
            "",
            f"cannot be read ({err.strerror})",
            "The file is readable TOML",
            "Check the path",
            path,
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise spec_error(
            path, "", f"is not valid TOML ({err})", "A TOML file", "Fix the syntax", path
        ) from err


def schema_from(data: Any, path: str, key: str) -> Schema:
    """Builds a :class:`Schema` from a parsed table, naming the key and file when it cannot.

    Args:
        data: The parsed table.
        path: The file it came from.
        key: Its dotted key (``data.schema``), or ``""`` for a whole schema file.

    Returns:
        The schema.

    Raises:
        SpecError: For anything :meth:`Schema.from_dict` rejects.

    """
    if not isinstance(data, dict):
        raise spec_error(
            path,
            key,
            "is not a table",
            "A schema is a table with `features`",
            'Write e.g. { features = ["a", "b"], targets = "label" }',
            data,
        )
    try:
        return Schema.from_dict(data)
    except (FitpipeError, TypeError) as err:
        raise spec_error(
            path,
            key,
            f"is not a valid schema ({err})",
            "Keys features, targets, sample_weight, passthrough, fill, lengths",
            "Fix the schema",
            data,
        ) from err


def load_schema(path: str | os.PathLike[str]) -> Schema:
    """Reads a schema file: JSON as written by ``Schema.to_json``, or TOML with the same keys.

    Args:
        path: The file (``.json`` or ``.toml``).

    Returns:
        The schema.

    Raises:
        SpecError: Naming the file when it is missing, unparsable or not a valid schema.

    """
    path = os.fspath(path)
    if path.lower().endswith(".toml"):
        return schema_from(read_toml(path), path, "")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as err:
        raise spec_error(
            path,
            "",
            f"cannot be read ({err.strerror})",
            "A schema file is readable JSON (as `Schema.to_json` writes) or TOML",
            "Check the path",
            path,
        ) from err
    except json.JSONDecodeError as err:
        raise spec_error(
            path,
            "",
            f"is not valid JSON ({err})",
            "A schema file is JSON (as `Schema.to_json` writes) or .toml",
            "Fix the syntax",
            path,
        ) from err
    return schema_from(data, path, "")


def _import(module_name: str, folder: str) -> Any:
    """Imports ``module_name`` from a ``.py`` file in ``folder``, else as an installed module.

    While it is imported, the file's folder and ``folder`` are first on ``sys.path``, so the
    module imports the modules beside it (``from helpers import UNITS``) whatever the
    working folder, also when the spec names it by a path (``"models/factory:build"``). A file is
    imported under a name made of its absolute path (the same in every process), kept in
    ``sys.modules``: a model saved with a custom class of the file records that name, and a
    later :func:`import_file` of the same file lets Keras find the class again.
    """
    import hashlib
    import importlib
    import importlib.util

    candidate = os.path.join(folder, *module_name.split(".")) + ".py"
    # The file's own folder first (a factory named by a path, "models/factory:build"),
    # then the spec's.
    folders = list(dict.fromkeys([os.path.dirname(candidate), folder]))
    sys.path[:0] = folders
    try:
        if not os.path.isfile(candidate):
            return importlib.import_module(module_name)
        digest = hashlib.sha1(os.path.abspath(candidate).encode()).hexdigest()[:12]
        unique = f"_fitpipe_spec_{digest}_{module_name.replace('.', '_')}"
        if unique in sys.modules:
            return sys.modules[unique]
        module_spec = importlib.util.spec_from_file_location(unique, candidate)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique]
            raise
        return module
    finally:
        for added in folders:
            sys.path.remove(added)


def import_file(path: str, caller: str) -> Any:
    """Imports a Python file (``--import model_factory.py``) as a spec's factory module is.

    Its registered Keras classes (``@keras.saving.register_keras_serializable``) become
    known, so a model saved with them loads.

    Raises:
        FitpipeValueError: Naming ``--import`` when the file is missing or fails to import.
    """
    folder, name = os.path.split(os.path.abspath(path))
    if not name.endswith(".py") or not os.path.isfile(path):
        raise FitpipeValueError(
            message(
                caller,
                f"cannot import {path}: no such .py file",
                "`--import` names the Python file that defines the model's custom classes "
                "(the spec's model factory)",
                "Check the path",
                path=path,
            )
        )
    try:
        return _import(name[: -len(".py")], folder)
    except Exception as err:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot import {path} ({err!r})",
                "`--import` names a Python file that imports",
                "Fix the error in the file",
                path=path,
            )
        ) from err


def resolve_factory(factory: str, folder: str, path: str) -> Callable[..., Any]:
    """Imports ``module:function``: a ``.py`` file in the spec's folder, or an installed module.

    Args:
        factory: ``"module:function"``.
        folder: The spec's folder.
        path: The spec file, for messages.

    Returns:
        The function.

    Raises:
        SpecError: Naming ``model.factory`` when the module or function cannot be found.

    """
    module_name, sep, attr = factory.partition(":")
    if not sep or not module_name or not attr:
        raise spec_error(
            path,
            "model.factory",
            "is not module:function",
            '`model.factory` is e.g. "model_factory:build"',
            "Write the module, a colon, and the function",
            factory,
        )
    try:
        module = _import(module_name, folder)
    except Exception as err:
        raise spec_error(
            path,
            "model.factory",
            f"cannot be imported ({err!r})",
            "A .py file next to the spec, or an installed module",
            "Check the module name and that it imports",
            factory,
        ) from err
    function = getattr(module, attr, None)
    if not callable(function):
        raise spec_error(
            path,
            "model.factory",
            f"names no function {attr!r} in {module_name}",
            "The part after the colon is a function of the module",
            "Check the function name",
            factory,
        )
    return function
