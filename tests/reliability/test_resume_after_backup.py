"""Killed right after a ``BackupAndRestore`` backup, a run still resumes at the batch.

The position used to be written only after the callbacks of a batch had run: a kill between
the backup and that write left a position one backup behind, and the restarted run repeated
the epoch from its first batch. fitpipe now writes the position before the callbacks (pending)
and confirms it after; the backup made at the pending position's batch identifies it. A
position that matches no backup is reported, not silently dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fitpipe.errors import FitpipeWarning
from fitpipe.training.resume import POSITION_FILE

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from test_resume import CHILD, run_child, same, weights  # noqa: E402

BACKUP_BATCH = 6  # epoch 1 of the child backs up after its batches 0, 3 and 6


@pytest.mark.parametrize("form", ["arrays", "generator"])
def test_killed_right_after_a_backup_resumes_at_the_next_batch(
    form: str, tmp_path: Path, rel: Any
) -> None:
    rel.kill_when_ready(
        [sys.executable, CHILD, form, "interrupt", str(tmp_path), str(BACKUP_BATCH)],
        tmp_path / "ready",
    )
    backup = tmp_path / f"backup-{form}"
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert metadata["batch"] == BACKUP_BATCH  # killed after this backup ...
    saved = json.loads((backup / POSITION_FILE).read_text())
    assert saved["confirmed"]["backup"] != metadata  # ... before its position was confirmed
    run_child(form, ("resume", tmp_path), ("full", tmp_path))  # resumed in a fresh process
    assert same(weights(tmp_path / f"{form}-resume.npz"), weights(tmp_path / f"{form}-full.npz"))


def test_a_position_of_no_backup_is_reported(tmp_path: Path, rel: Any) -> None:
    import keras

    import fitpipe

    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "training_metadata.json").write_text(json.dumps({"epoch": 1, "batch": 3}))
    stale = {"epoch": 1, "step": 2, "pass_index": 0, "seen": 2, "backup": {"epoch": 1, "batch": 1}}
    (folder / POSITION_FILE).write_text(json.dumps({"confirmed": stale}))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    callback = keras.callbacks.BackupAndRestore(str(folder), save_freq=2)
    with pytest.warns(FitpipeWarning, match="belongs to no backup"):
        history = trainer.fit(
            rel.x_data(), rel.y_data(), batch_size=2, epochs=2, callbacks=[callback], verbose=0
        )
    assert history.epoch == [1]  # Keras' restart: the epoch from its first batch
    assert np.isfinite(history.history["loss"]).all()


def test_a_pending_position_of_an_earlier_epoch_is_not_taken_for_a_later_backup(
    tmp_path: Path, rel: Any
) -> None:
    # fitpipe interrupted after epoch 1 left a pending position (epoch 2, batch 0); Keras'
    # own `fit` then resumed and backed up after epoch 4 (it writes no position). The
    # pending entry matched the new backup by its batch (0) alone: fitpipe trained epochs
    # 2, 3 and 4 again on the epoch-4 weights.
    import keras

    import fitpipe

    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "training_metadata.json").write_text(json.dumps({"epoch": 4, "batch": 0}))
    earlier = {"epoch": 1, "batch": 0}
    entry = {"step": 0, "pass_index": 1, "seen": 0, "backup": earlier}
    saved = {"confirmed": {**entry, "epoch": 1}, "pending": {**entry, "epoch": 2, "batch": 0}}
    (folder / POSITION_FILE).write_text(json.dumps(saved))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    callback = keras.callbacks.BackupAndRestore(str(folder))
    with pytest.warns(FitpipeWarning, match=r"belongs to no backup.*Keras' own `fit`"):
        history = trainer.fit(
            rel.x_data(), rel.y_data(), batch_size=2, epochs=5, callbacks=[callback], verbose=0
        )
    assert history.epoch == [4]  # as Keras resumes its own backup
