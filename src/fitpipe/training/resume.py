"""Resuming mid-epoch with ``keras.callbacks.BackupAndRestore``: the input's position is saved.

``BackupAndRestore`` saves the weights (with the optimizer's state) and the epoch, and on
restart Keras repeats the interrupted epoch from its first batch. fitpipe writes the input's
position beside every backup the callback makes (``fitpipe_position.json`` in its
``backup_dir``): the epoch, the steps of it done, which pass over the input was being read and
how many batches of it. A restarted ``fit`` reads it back when it belongs to the backup that
was restored, and continues from the next batch: with the same seed, a run killed and resumed
ends with the same weights as a run never interrupted.

A backup is noticed by its metadata file changing (``training_metadata.json``, which the
callback writes with each backup); the position records that metadata, and is used only when
it matches the metadata on disk at restore time (so a position never pairs with other
weights). When no matching position exists, the epoch restarts from its first batch, as in
Keras.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable
from typing import Any

import keras

from fitpipe.training.epochs import EpochRunner

__all__ = ["POSITION_FILE", "Position", "PositionBackups"]

POSITION_FILE = "fitpipe_position.json"
_METADATA_FILE = "training_metadata.json"


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a run stands when a backup is made.

    Attributes:
        epoch: The epoch in progress (the next one, after an epoch ends).
        step: Steps of that epoch done.
        pass_index: The pass over the input being read.
        seen: Batches of that pass read.
        backup: The backup's metadata, as the callback wrote it.
        input_state: The input's own iterator state at that point (a Grain iterator's
            ``get_state()``), when it keeps one: restored instead of reading the pass again.
    """

    epoch: int
    step: int
    pass_index: int
    seen: int
    backup: Any
    input_state: Any = None


def _encode_state(state: Any) -> Any:
    if isinstance(state, bytes):
        return {"base64": base64.b64encode(state).decode("ascii")}
    return state


def _decode_state(state: Any) -> Any:
    if isinstance(state, dict) and set(state) == {"base64"}:
        return base64.b64decode(state["base64"])
    return state


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _write_atomically(path: str, data: dict[str, Any]) -> None:
    partial = f"{path}.{os.getpid()}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)


class PositionBackups:
    """Saves and restores the input's position beside each ``BackupAndRestore`` backup.

    Args:
        callbacks: The run's callbacks; only ``BackupAndRestore`` ones matter.
        runner: The training epochs' runner, whose position is saved and restored.
    """

    def __init__(self, callbacks: Iterable[Any], runner: EpochRunner) -> None:
        self._folders = [
            os.fspath(cb.backup_dir)
            for cb in callbacks
            if isinstance(cb, keras.callbacks.BackupAndRestore)
        ]
        self._runner = runner
        self._stamps = {f: _stamp(os.path.join(f, _METADATA_FILE)) for f in self._folders}

    def restore(self, epoch: int) -> int:
        """Moves the runner to the saved position of ``epoch``; returns the steps done in it.

        Call after ``on_train_begin`` (when the callback has restored its backup).
        """
        for folder in self._folders:
            metadata = _read_json(os.path.join(folder, _METADATA_FILE))
            saved = _read_json(os.path.join(folder, POSITION_FILE))
            if metadata is None or not isinstance(saved, dict) or saved.get("backup") != metadata:
                continue
            try:
                position = Position(**saved)
            except TypeError:
                continue
            if position.epoch != epoch:
                continue
            self._runner.resume(position.pass_index, position.seen)
            if position.input_state is not None:
                state = _decode_state(position.input_state)
                self._runner.pipeline.restore_state(position.pass_index, position.seen, state)
            return position.step
        return 0

    def saved(self, epoch: int, step: int) -> None:
        """Writes the position next to any backup made since the last call.

        Args:
            epoch: The epoch in progress.
            step: Steps of it done.
        """
        for folder in self._folders:
            path = os.path.join(folder, _METADATA_FILE)
            stamp = _stamp(path)
            if stamp is None or stamp == self._stamps[folder]:
                continue
            self._stamps[folder] = stamp
            pass_index, seen = self._runner.position
            state = _encode_state(self._runner.pipeline.input_state(pass_index, seen))
            position = Position(epoch, step, pass_index, seen, _read_json(path), state)
            _write_atomically(os.path.join(folder, POSITION_FILE), dataclasses.asdict(position))
