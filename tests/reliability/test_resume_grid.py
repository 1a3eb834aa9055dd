"""Resuming ``BackupAndRestore`` backups, interrupted in-process, over a grid of set-ups.

A run interrupted by an error from a callback keeps its backup folder, as a killed one does:
restarted with the same arguments it must end with the weights (and epochs) of a run never
interrupted, whatever the rows, ``steps_per_epoch``, ``save_freq`` and interruption point
(a position at the end of a pass, under ``steps_per_epoch``, is the start of the next).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import FitpipeValueError

BATCH, EPOCHS = 8, 3


class Interrupt(keras.callbacks.Callback):
    """Raises at the run's ``step``-th batch (counted over epochs from 0): before it runs, or
    after it (after its backup, before fitpipe confirms its position)."""

    def __init__(self, step: int, after: bool) -> None:
        super().__init__()
        self.step, self.after, self.seen = step, after, 0

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if not self.after and self.seen == self.step:
            raise KeyboardInterrupt("interrupted")

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if self.after and self.seen - 1 == self.step:
            raise KeyboardInterrupt("interrupted")


def train(rows: int, spe: int | None, callbacks: list[Any], **fit: Any) -> tuple[Any, Any]:
    """A fresh model from the same seed, trained; its weights and History."""
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    trainer = fitpipe.Trainer(model)
    trainer.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    fit = {"batch_size": BATCH, "epochs": EPOCHS, "shuffle": True, "verbose": 0, **fit}
    history = trainer.fit(x, y, steps_per_epoch=spe, callbacks=callbacks, **fit)
    return model.get_weights(), history


@contextlib.contextmanager
def _allow_ran_out() -> Iterator[None]:
    """Allows the "ran out of data" warning of epochs cut short by their pass's end."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data; interrupting the ep")
        yield


@pytest.mark.parametrize(
    ("rows", "spe", "save_freq"),
    [(48, 4, 1), (44, 4, 3), (48, 3, 1), (40, 2, 2), (48, None, 2), (44, 5, 1)],
)
def test_resumed_runs_end_as_uninterrupted_ones(
    rows: int, spe: int | None, save_freq: int, tmp_path: Path
) -> None:
    counter = Interrupt(-1, after=True)  # counts the batches of an uninterrupted run
    with _allow_ran_out():
        reference, _ = train(rows, spe, [counter])
    total = counter.seen
    for step in sorted({1, total // 2, total - 2}):  # (3 fits each: ~1 s)
        for after in (False, True):
            folder = tmp_path / f"backup-{step}-{after}"
            backup = keras.callbacks.BackupAndRestore(str(folder), save_freq=save_freq)
            with pytest.raises(KeyboardInterrupt), _allow_ran_out():
                train(rows, spe, [backup, Interrupt(step, after)])
            backup = keras.callbacks.BackupAndRestore(str(folder), save_freq=save_freq)
            with _allow_ran_out():
                weights, history = train(rows, spe, [backup])
            case = (rows, spe, save_freq, step, after)
            assert history.epoch and history.epoch[-1] == EPOCHS - 1, case
            for got, want in zip(weights, reference, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(case))


def test_a_restart_with_another_batch_size_is_refused(tmp_path: Path) -> None:
    folder = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        train(
            48, None, [keras.callbacks.BackupAndRestore(folder, save_freq=1), Interrupt(8, False)]
        )
    backup = keras.callbacks.BackupAndRestore(folder, save_freq=1)
    with pytest.raises(FitpipeValueError, match=r"batch_size 8 then, 16 now.*remove the backup"):
        train(48, None, [backup], batch_size=16)


def test_initial_epoch_resumes_after_its_first_batch(tmp_path: Path) -> None:
    # Keras' callback writes epoch 0 (its count of epochs this process finished) with the
    # first batch's backup; fitpipe's position says epoch 1: no warning, no batch retrained.
    reference, _ = train(48, None, [], initial_epoch=1)
    folder = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        train(
            48,
            None,
            [keras.callbacks.BackupAndRestore(folder, save_freq=1), Interrupt(0, True)],
            initial_epoch=1,
        )
    backup = keras.callbacks.BackupAndRestore(folder, save_freq=1)
    weights, history = train(48, None, [backup], initial_epoch=1)
    assert history.epoch == [1, 2]
    for got, want in zip(weights, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class WeightsOnly(keras.callbacks.BackupAndRestore):
    """Interrupted at batch ``step`` between the weights' write and the metadata's."""

    def __init__(self, folder: str, step: int) -> None:
        super().__init__(folder, save_freq=1)
        self.folder, self.step, self.seen = Path(folder), step, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        metadata = self.folder / "training_metadata.json"
        before = metadata.read_text() if metadata.exists() else None
        super().on_train_batch_end(batch, logs)
        self.seen += 1
        if self.seen - 1 == self.step and before is not None:
            metadata.write_text(before)  # as if killed before the metadata was written
            raise KeyboardInterrupt("interrupted")


@pytest.mark.parametrize("step", [2, 6])  # mid-epoch; the first batch of epoch 1
def test_killed_between_the_weights_and_the_metadata_resumes_at_the_next_batch(
    step: int, tmp_path: Path
) -> None:
    reference, _ = train(48, None, [])
    folder = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        train(48, None, [WeightsOnly(folder, step)])
    backup = keras.callbacks.BackupAndRestore(folder, save_freq=1)
    weights, _ = train(48, None, [backup])
    for got, want in zip(weights, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
