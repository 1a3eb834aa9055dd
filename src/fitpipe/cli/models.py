"""Loading a saved ``.keras`` model for the CLI, with fitpipe's words for what goes wrong.

Keras says "File not found" for a file that exists but is not a ``.keras`` archive (a
truncated copy, a folder named ``x.keras``), and a one-line dump of the model's config for
a custom class it cannot find: both are worded here, with what to do.
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any

import keras

from fitpipe.errors import FitpipeValueError, message

__all__ = ["load_keras"]

#: How Keras says it cannot find a custom class (``'class_name': 'Scale'``).
_UNKNOWN_CLASS = re.compile(r"Could not locate class '([^']+)'")


def _unreadable(path: str, caller: str, name: str, reason: str) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            caller,
            f"cannot load {path}: it exists but is not a readable .keras archive ({reason})",
            "A model is a .keras file as `model.save` (or `fitpipe fit`) writes it",
            "Copy or save the model again: the file may be corrupt or truncated",
            **{name: path},
        )
    )


def _unknown_class(path: str, caller: str, name: str, err: Exception) -> FitpipeValueError:
    found = _UNKNOWN_CLASS.search(str(err))
    what = f"class {found.group(1)!r}" if found else "a custom class"
    return FitpipeValueError(
        message(
            caller,
            f"cannot load {path}: the model uses {what}, which is not defined here",
            "A custom layer, loss or metric is defined by a module imported before loading, "
            "registered with `@keras.saving.register_keras_serializable`",
            "Pass `--import FILE.py` naming the file that defines it (for a model that "
            "`fitpipe fit` trained: the spec's model factory)",
            **{name: path},
        )
    )


def load_keras(path: str, caller: str, name: str, **kwargs: Any) -> keras.Model:
    """Loads a ``.keras`` file that exists.

    Args:
        path: The file.
        caller: The command, for messages.
        name: The option or key that gave it (``model``), for messages.
        **kwargs: Passed to ``keras.saving.load_model`` (``compile=False``).

    Returns:
        The model.

    Raises:
        FitpipeValueError: The file is not a ``.keras`` archive, or the model uses a class
            that is not defined.
    """
    if os.path.isdir(path):
        raise _unreadable(path, caller, name, "a folder")
    if not zipfile.is_zipfile(path):
        raise _unreadable(path, caller, name, "not a zip archive")
    try:
        return keras.saving.load_model(path, **kwargs)
    except (zipfile.BadZipFile, EOFError, KeyError) as err:
        raise _unreadable(path, caller, name, f"{type(err).__name__}: {err}") from err
    except TypeError as err:
        if "Could not locate" in str(err):
            raise _unknown_class(path, caller, name, err) from err
        raise
