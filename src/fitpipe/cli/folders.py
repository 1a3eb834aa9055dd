"""The folders the CLI writes into: made (and checked) before any work, filled as a whole.

A command that writes files makes their folder first, so a path under a file, or a folder
that cannot be written, is reported before a model is trained or data is read. ``fitpipe
fit`` writes a run into a fresh folder inside the output folder and then moves each file
into place, removing the files of an earlier run that this run did not write: the output
folder holds one run's files, never a mix of two (other files in it are left alone).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from fitpipe.errors import FitpipeValueError, message

__all__ = ["RUN_FILES", "make_folder", "output_folder", "staged_run"]

#: Every file ``fitpipe fit`` may write into its output folder.
RUN_FILES = (
    "model.keras",
    "schema.json",
    "history.csv",
    "history.json",
    "history.png",
    "input_report.json",
    "validation_split.json",
)


def _reason(path: str, err: OSError | None) -> str:
    """Why ``path`` cannot be a folder: the file in the way, or the system's reason."""
    part = os.path.abspath(path)
    while part and not os.path.exists(part) and os.path.dirname(part) != part:
        part = os.path.dirname(part)
    if os.path.exists(part) and not os.path.isdir(part):
        return f"{part} is a file, not a folder"
    return err.strerror or str(err) if err is not None else "permission denied"


def make_folder(path: str, caller: str, name: str, what: str) -> str:
    """Creates ``path`` (and its parents) unless it exists; checks it can be written.

    Args:
        path: The folder.
        caller: The command, for the message (``"fitpipe fit"``).
        name: The option or key that gave the path (``"output_dir"``), for ``Received:``.
        what: How the message names it (```--output-dir```, ```output.dir` in spec.toml``).

    Returns:
        The path.

    Raises:
        FitpipeValueError: The folder cannot be made or written.
    """
    err: OSError | None = None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        err = error
    if err is None and os.access(path, os.W_OK | os.X_OK):
        return path
    raise FitpipeValueError(
        message(
            caller,
            f"cannot use {what}: {_reason(path, err)}",
            "The files are written into a folder that exists or can be created, and that "
            "can be written",
            "Choose another path, or move the file that is in the way",
            **{name: path},
        )
    )


@contextlib.contextmanager
def output_folder(path: str, caller: str, name: str, what: str) -> Iterator[str]:
    """:func:`make_folder` around a command's work, which leaves no folder if it fails.

    A folder this call made is removed again (when still empty) on an error.
    """
    created = not os.path.isdir(path)
    make_folder(path, caller, name, what)
    try:
        yield path
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise


@contextlib.contextmanager
def staged_run(folder: str) -> Iterator[str]:
    """A fresh folder inside ``folder`` to write a run into; moved into place on success.

    On leaving without an error, each of :data:`RUN_FILES` written is moved into ``folder``
    (replacing the earlier one) and each not written is removed from it. On an error,
    ``folder`` is left as it was. The staging folder is removed either way.
    """
    staging = tempfile.mkdtemp(prefix=".fitpipe-run-", dir=folder)
    try:
        yield staging
        written = [name for name in RUN_FILES if os.path.isfile(os.path.join(staging, name))]
        for name in written:
            os.replace(os.path.join(staging, name), os.path.join(folder, name))
        for name in RUN_FILES:
            stale = os.path.join(folder, name)
            if name not in written and os.path.isfile(stale):
                os.remove(stale)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
