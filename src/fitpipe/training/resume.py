"""Resuming mid-epoch with ``keras.callbacks.BackupAndRestore``: the input's position is saved.

``BackupAndRestore`` saves the weights (with the optimizer's state) and the epoch, and on
restart Keras repeats the interrupted epoch from its first batch. fitpipe writes the input's
position beside every backup the callback makes (``fitpipe_position.json`` in its
``backup_dir``): the epoch, the steps of it done, which pass over the input was being read and
how many batches of it, with the state a step changes that the weights leave out (the random
layers' seed generators and the metrics, :mod:`fitpipe.training.run_state`). A restarted
``fit`` reads it back when it belongs to the backup that was restored, and continues from the
next batch, drawing the random numbers it would have drawn, its epoch's logs the whole
epoch's: with the same seed, a run killed and resumed ends with the same weights and History
as a run never interrupted.

A backup is noticed by its metadata file changing (``training_metadata.json``, which the
callback writes with each backup); the position records that metadata, and is used only when
it matches the metadata on disk at restore time (so a position never pairs with other
weights). The position is written before the callbacks that may make a backup run (pending),
and confirmed after: a run killed right after a backup, before the confirmation, resumes from
the pending position, which the newer backup made at its batch identifies. A position file
that matches no backup is reported with a warning, and the epoch restarts from its first
batch, as in Keras.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import keras

from fitpipe.columnar import write_json_atomically
from fitpipe.errors import FitpipeValueError, FitpipeWarning, message, warn
from fitpipe.training import run_state
from fitpipe.training.epochs import EpochRunner

__all__ = ["POSITION_FILE", "Position", "PositionBackups", "start_epoch"]

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
        model_state: The model's random and metric state (``run_state.capture``); None in
            a position saved before it was kept.
        iterations: The optimizer's steps at that point: the weights a backup restores are
            the position's only when their optimizer's steps are these (None: not known).
        input: What the input's position means (:func:`_input_of`): a restart whose input
            differs is refused. None in a position saved before it was kept.
    """

    epoch: int
    step: int
    pass_index: int
    seen: int
    backup: Any
    input_state: Any = None
    model_state: Any = None
    iterations: Any = None
    input: Any = None


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


def start_epoch(model: keras.Model, callbacks: Iterable[Any], initial_epoch: int) -> int:
    """The epoch ``fit`` will start at, known before the callbacks' ``on_train_begin``.

    Keras starts at ``model._initial_epoch or initial_epoch``, and a ``BackupAndRestore``'s
    ``on_train_begin`` sets ``model._initial_epoch`` to the epoch its backup's metadata holds
    (the last such callback with a backup wins). The position saved with the backup may
    only start the run later (:meth:`PositionBackups.restore`).

    Args:
        model: The model.
        callbacks: The run's callbacks (a checked list, or a ``CallbackList``).
        initial_epoch: ``fit``'s ``initial_epoch``.

    Returns:
        The epoch; ``initial_epoch`` when no backup or earlier ``fit`` moved it.
    """
    epoch = getattr(model, "_initial_epoch", None)
    listed = (
        callbacks.callbacks if isinstance(callbacks, keras.callbacks.CallbackList) else callbacks
    )
    for callback in listed:
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            folder = os.fspath(callback.backup_dir)
            metadata = _read_json(os.path.join(folder, _METADATA_FILE))
            if isinstance(metadata, dict) and isinstance(metadata.get("epoch"), int):
                epoch = metadata["epoch"]
    return int(epoch or initial_epoch)


class PositionBackups:
    """Saves and restores the input's position beside each ``BackupAndRestore`` backup.

    The position is written *before* a backup can happen (before the callbacks of each batch
    and of each epoch end run, as ``pending``, with the backup then on disk), and confirmed
    after (with the new backup's metadata). A run killed between the backup and the
    confirmation still finds its position: the backup on disk is newer than the pending
    position's and was made at its batch. A position that matches no backup is reported.

    Args:
        callbacks: The run's callbacks; only ``BackupAndRestore`` ones matter.
        runner: The training epochs' runner, whose position is saved and restored.
        model: The model, whose random and metric state is saved and restored with it.
    """

    def __init__(self, callbacks: Iterable[Any], runner: EpochRunner, model: keras.Model) -> None:
        self._folders = [
            os.fspath(cb.backup_dir)
            for cb in callbacks
            if isinstance(cb, keras.callbacks.BackupAndRestore)
        ]
        self._per_batch = any(
            isinstance(cb, keras.callbacks.BackupAndRestore) and cb.save_freq != "epoch"
            for cb in callbacks
        )
        self._runner = runner
        self._model = model
        self._input = _input_of(runner)
        self._known = {f: _read_json(os.path.join(f, _METADATA_FILE)) for f in self._folders}
        self._confirmed: dict[str, Any] = {f: None for f in self._folders}
        self._captured: Any = None  # the model's state as the last `before` saved it
        self._metrics: Any = None  # the metric state restored, until the epoch begins

    def restore(self, epoch: int) -> tuple[int, int]:
        """Moves the runner to the position saved with the restored backup.

        Call after ``on_train_begin`` (when the callback has restored its backup).

        Args:
            epoch: The epoch Keras resumes at (from the backup's metadata).

        Returns:
            ``(epoch, steps done in it)``: the position's epoch (Keras' metadata may be behind
            it after an earlier restart), or ``(epoch, 0)`` without a matching position.
        """
        for folder in self._folders:
            metadata = _read_json(os.path.join(folder, _METADATA_FILE))
            saved = _read_json(os.path.join(folder, POSITION_FILE))
            if metadata is None or not isinstance(saved, dict):
                continue
            now = _iterations(self._model)
            position = _matching(saved, metadata, now)
            if position is None:
                _warn_unmatched(folder, saved, metadata, now, epoch)
                continue
            _check_input(folder, position.input, self._input)
            self._confirmed[folder] = dataclasses.asdict(position)
            self._known[folder] = metadata
            self._runner.resume(position.pass_index, position.seen)
            if position.input_state is not None:
                state = _decode_state(position.input_state)
                self._runner.pipeline.restore_state(position.pass_index, position.seen, state)
            self._restore_random(position.model_state, folder)
            return position.epoch, position.step
        return epoch, 0

    def _restore_random(self, state: Any, folder: str) -> None:
        """Restores the random layers' state saved with the position (warns when it cannot)."""
        if not isinstance(state, dict):
            return
        self._metrics = state.get("metrics")
        if not run_state.assign(run_state.random_variables(self._model), state.get("random")):
            warn(
                f"fitpipe could not restore the random layers' state saved in {folder!r}: "
                "it does not fit the model's seed generators (another model?); the resumed "
                "run draws other random numbers than an uninterrupted one.",
                FitpipeWarning,
            )

    def restore_metrics(self, build: Callable[[], None]) -> bool:
        """Restores the metric state saved with the restored position (once).

        Call when the resumed epoch has begun (its metrics reset), before its first step.

        Args:
            build: Traces the step (running nothing), which builds the compiled metrics.

        Returns:
            Whether the metrics now hold the state of the epoch's steps before the restart.
        """
        saved, self._metrics = self._metrics, None
        if saved is None:
            return False
        restored = run_state.restore_metrics(self._model, saved, build)
        if not restored:
            warn(
                "fitpipe could not restore the metrics' state saved with the backup (it does "
                "not fit the model's metrics); the resumed epoch's logs cover only the "
                "batches run after the restart.",
                FitpipeWarning,
            )
        return restored

    def before(self, epoch: int, step: int, batch: int | None) -> None:
        """Writes the position a backup made by the coming callbacks would belong to.

        Args:
            epoch: The epoch in progress (the next one, before an epoch's end).
            step: Steps of it done.
            batch: The batch index the callbacks get; None at an epoch's end.
        """
        if not self._folders or (batch is not None and not self._per_batch):
            return  # no backup to go with (a fit without BackupAndRestore reads nothing)
        pass_index, seen = self._runner.position
        state = self._state(pass_index, seen)
        model = self._captured = run_state.capture(self._model)
        steps = _iterations(self._model)
        for folder in self._folders:
            known = self._known[folder]
            pending = Position(
                epoch, step, pass_index, seen, known, state, model, steps, self._input
            )
            document = {
                "confirmed": self._confirmed[folder],
                "pending": {**dataclasses.asdict(pending), "batch": batch or 0},
            }
            os.makedirs(folder, exist_ok=True)  # the callback makes it at its first backup
            write_json_atomically(os.path.join(folder, POSITION_FILE), document, sync=False)

    def _state(self, pass_index: int, seen: int) -> Any:
        """The input's own iterator state at the runner's position, ready for JSON."""
        return _encode_state(self._runner.pipeline.input_state(pass_index, seen))

    def saved(self, epoch: int, step: int) -> None:
        """Confirms the position of any backup made since the last call.

        Args:
            epoch: The epoch in progress.
            step: Steps of it done.
        """
        for folder in self._folders:
            metadata = _read_json(os.path.join(folder, _METADATA_FILE))
            if metadata is None or metadata == self._known[folder]:
                continue
            self._known[folder] = metadata
            pass_index, seen = self._runner.position
            state = self._state(pass_index, seen)
            model = self._captured  # as it was when the backup was made (just before)
            if model is None:
                model = self._captured = run_state.capture(self._model)
            steps = _iterations(self._model)  # (no step ran since the backup)
            position = Position(
                epoch, step, pass_index, seen, metadata, state, model, steps, self._input
            )
            self._confirmed[folder] = dataclasses.asdict(position)
            document = {"confirmed": self._confirmed[folder]}
            write_json_atomically(os.path.join(folder, POSITION_FILE), document)
        self._captured = None  # the next backup's state is captured before it again


def _brief(saved: dict[str, Any]) -> dict[str, Any]:
    """A position file's entries by their epoch, step and backup (not their saved state)."""
    return {
        kind: {k: entry.get(k) for k in ("epoch", "step", "backup")}
        for kind, entry in saved.items()
        if isinstance(entry, dict)
    }


def _matching(saved: dict[str, Any], metadata: Any, now: int | None) -> Position | None:
    """The saved position that belongs to the backup whose metadata is ``metadata``.

    ``now`` is the restored optimizer's steps: a position that recorded others does not
    belong to the weights restored (a kill between the callback's writes of the weights and
    of the metadata leaves the new weights beside the metadata of the previous backup).
    """
    confirmed, pending = saved.get("confirmed"), saved.get("pending")
    with contextlib.suppress(TypeError):
        if (
            isinstance(confirmed, dict)
            and confirmed.get("backup") == metadata
            and _same_steps(confirmed, now)
        ):
            return Position(**confirmed)
        if (
            isinstance(pending, dict)
            and isinstance(metadata, dict)
            and _made_at(pending, metadata, now)
        ):
            fields = {k: v for k, v in pending.items() if k != "batch"}
            return Position(**{**fields, "backup": metadata})
    return None


def _same_steps(entry: dict[str, Any], now: int | None) -> bool:
    recorded = entry.get("iterations")
    return recorded is None or now is None or recorded == now


def _made_at(pending: dict[str, Any], metadata: dict[str, Any], now: int | None) -> bool:
    """Whether the backup on disk (``metadata``, optimizer steps ``now``) was made at ``pending``.

    The weights, with the optimizer's steps, are written before the metadata: a kill between
    leaves the pending position's weights beside the previous backup's metadata.
    """
    if pending.get("iterations") is not None and now is not None:
        # its weights, written at its batch (the metadata perhaps not yet: then the old one)
        return pending["iterations"] == now and (
            pending.get("backup") == metadata or pending.get("batch") == metadata.get("batch")
        )
    return (
        pending.get("backup") != metadata  # a backup came after it was written ...
        and pending.get("batch") == metadata.get("batch")  # ... at its batch
        # ... of its epoch, where an epoch's end saved it (batch 0; Keras' own runs
        # made later backups beside a position file they never write)
        and (metadata.get("batch") != 0 or pending.get("epoch") == metadata.get("epoch"))
    )


def _iterations(model: keras.Model) -> int | None:
    """The optimizer's steps (saved and restored with the backup's weights), if known."""
    variable = getattr(getattr(model, "optimizer", None), "iterations", None)
    try:
        return int(keras.ops.convert_to_numpy(variable))
    except (TypeError, ValueError, AttributeError):
        return None


def _warn_unmatched(
    folder: str, saved: dict[str, Any], metadata: Any, now: int | None, epoch: int
) -> None:
    """Warns of a position file that matches the backup restored from ``folder`` nowhere."""
    confirmed = saved.get("confirmed")
    if isinstance(confirmed, dict) and confirmed.get("backup") == metadata:
        why = (
            f"the backup's weights are not those its position was saved with (their optimizer "
            f"made {now} steps, the position's {confirmed.get('iterations')}: written by "
            f"another run, or changed)"
        )
    else:
        why = (
            f"backup {metadata}, position {_brief(saved)}: a later backup was made by a run "
            f"that keeps no position, such as Keras' own `fit`"
        )
    warn(
        f"fitpipe found an input position in {folder!r} that belongs to no backup there "
        f"({why}); epoch {epoch + 1} restarts from its first batch, as in Keras.",
        FitpipeWarning,
    )


def _input_of(runner: EpochRunner) -> dict[str, Any]:
    """What a saved position of ``runner``'s input means: its batches and epochs' sizes."""
    pipeline = runner.pipeline
    rows = getattr(pipeline, "rows", None)
    return {
        "batch_size": getattr(pipeline, "batch_size", None),
        "batches_per_pass": pipeline.num_batches,
        "rows": getattr(rows, "num_samples", None),
        "steps_per_epoch": runner.steps_per_epoch,
    }


def _check_input(folder: str, saved: Any, current: dict[str, Any]) -> None:
    """Refuses a restart whose input differs from the one the position was saved for."""
    if not isinstance(saved, dict) or saved == current:
        return
    changed = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
    described = ", ".join(f"{k} {old} then, {new} now" for k, (old, new) in changed.items())
    raise FitpipeValueError(
        message(
            "fit",
            f"cannot resume the backup in {folder!r}: its input position was saved for "
            f"another input ({described})",
            "A run resumed from a backup reads the same batches as the run that made it",
            "Restart with the same arguments (`batch_size`, `steps_per_epoch`, the same "
            "rows), or remove the backup folder to start over",
            backup_dir=folder,
        )
    )
