"""Killed and restarted with ``BackupAndRestore``: the run resumes at the batch, not the epoch.

Runs are child processes (``resume_child.py``). An uninterrupted run and a run killed with
SIGKILL mid-epoch then restarted in a fresh process (same seed, ``shuffle=True``) end with the
same weights. As a control, the same restart without fitpipe's saved position (Keras'
behaviour: the epoch is repeated from its first batch) ends with different weights, so the
comparison can fail. The control and the uninterrupted run follow the restart in its process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fitpipe.training.resume import POSITION_FILE

CHILD = str(Path(__file__).with_name("resume_child.py"))
TIMEOUT = 180


def run_child(form: str, *runs: tuple[str, Path]) -> None:
    """One child process running ``runs`` (mode, workdir) in order."""
    args = [str(part) for run in runs for part in run]
    result = subprocess.run(
        [sys.executable, CHILD, form, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[str(i)] for i in range(len(saved.files))]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.allclose(x, y, rtol=1e-6, atol=1e-7) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("form", ["arrays", "parquet", "generator", "pydataset", "grain", "torch"])
def test_killed_run_resumes_at_the_batch_with_the_same_weights(
    form: str, tmp_path: Path, rel: Any
) -> None:
    if form in ("grain", "torch"):
        pytest.importorskip(form)
    rel.kill_when_ready(
        [sys.executable, CHILD, form, "interrupt", str(tmp_path)], tmp_path / "ready"
    )
    backup = tmp_path / f"backup-{form}"
    position = (backup / POSITION_FILE).read_text()
    assert '"epoch": 1' in position and '"step": 4' in position, position
    if form == "grain":  # the iterator's own state, restored with set_state
        assert '"input_state": {"next_index"' in position, position
    control = tmp_path / "control"
    control.mkdir()
    shutil.copytree(backup, control / backup.name)  # the same backup, restarted without
    (control / backup.name / POSITION_FILE).unlink()  # the position: Keras' behaviour

    run_child(form, ("resume", tmp_path), ("resume", control), ("full", tmp_path))

    full = weights(tmp_path / f"{form}-full.npz")
    assert same(weights(tmp_path / f"{form}-resume.npz"), full)
    assert not same(weights(control / f"{form}-resume.npz"), full)
    assert not backup.exists()  # the backup and its position are removed when fit ends
