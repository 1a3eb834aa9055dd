"""fitpipe: the documented Keras 3 training API, rebuilt adapter-first on TensorFlow.

The data layer: :func:`adapt` turns any supported input into a :class:`Pipeline` of
Keras-style batches; :func:`register_adapter` adds input forms. The trainer:
:class:`Trainer` gives any ``keras.Model`` ``compile``/``fit``/``evaluate``/``predict``
and the ``*_on_batch`` methods; :class:`Model` and :class:`Sequential` are drop-in
``keras.Model`` subclasses that use it.

The ``fitpipe`` command imports TensorFlow only when a command runs (so ``fitpipe --help``
answers at once): run as the command, the names below are imported on first use (PEP 562).
Imported as a library, they are imported at once, so ``keras.saving.load_model`` finds the
registered :class:`Model` and :class:`Sequential` after a plain ``import fitpipe``.
"""

from __future__ import annotations

import importlib as _importlib
import importlib.metadata as _metadata
import os as _os
import sys as _sys
from typing import TYPE_CHECKING, Any

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fitpipe import errors

if TYPE_CHECKING:
    from fitpipe.adapters import register_adapter

    # The object, never the submodule of that name (mypy may pick either from the face).
    from fitpipe.adapters.registry import registry
    from fitpipe.pipeline import Pipeline, adapt
    from fitpipe.schemas import OTHER_COLUMNS, Schema
    from fitpipe.training import Model, Sequential, Trainer


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, the only place it is written).

    A source tree on ``sys.path`` that was never installed reads it from its pyproject.toml.
    """
    try:
        return _metadata.version("fitpipe")
    except _metadata.PackageNotFoundError:
        pass
    pyproject = _os.path.join(_os.path.dirname(__file__), "..", "..", "pyproject.toml")
    try:
        if _sys.version_info >= (3, 11):
            import tomllib as toml
        else:
            import tomli as toml
        with open(pyproject, "rb") as file:
            return str(toml.load(file)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "0+unknown"


__version__ = _version()

#: Each public name and the module it is imported from on first use.
_LAZY = {
    "register_adapter": "fitpipe.adapters",
    "registry": "fitpipe.adapters",
    "Pipeline": "fitpipe.pipeline",
    "adapt": "fitpipe.pipeline",
    "Schema": "fitpipe.schemas",
    "OTHER_COLUMNS": "fitpipe.schemas",
    "Model": "fitpipe.training",
    "Sequential": "fitpipe.training",
    "Trainer": "fitpipe.training",
}
_SUBMODULES = ("adapters", "cli", "pipeline", "schemas", "testing", "training")

__all__ = [
    "OTHER_COLUMNS",
    "Model",
    "Pipeline",
    "Schema",
    "Sequential",
    "Trainer",
    "__version__",
    "adapt",
    "errors",
    "register_adapter",
    "registry",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return _importlib.import_module(f"fitpipe.{name}")
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fitpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    dunders = (name for name in globals() if name.startswith("__"))
    return sorted({*__all__, *_SUBMODULES, *dunders})


def _run_as_command() -> bool:
    """Whether this process is the ``fitpipe`` command (its script or ``python -m fitpipe.cli``).

    ``python -m`` imports the module's packages while ``sys.argv[0]`` is still ``"-m"``, for
    any module: the module run is read from the interpreter's own arguments, so that a
    package of the user's that imports fitpipe, run with ``python -m pkg.mod``, gets its
    names at once (``keras.models.load_model`` needs them registered).
    """
    program = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    if program == "-m":
        given = list(getattr(_sys, "orig_argv", []))
        module = given[given.index("-m") + 1] if "-m" in given[:-1] else ""
        return module in ("fitpipe.cli", "fitpipe.cli.__main__")
    return program in ("fitpipe", "fitpipe.exe", "fitpipe-script.py")


if not _run_as_command():
    for _name in _LAZY:
        __getattr__(_name)
