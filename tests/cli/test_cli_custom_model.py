"""A model with custom classes from the spec's factory: ``fitpipe fit``, then ``predict``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fitpipe.cli import main

FACTORY = """
import keras


@keras.saving.register_keras_serializable(package="fix3")
class Scale(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def build(units=4):
    return keras.Sequential(
        [keras.Input((3,)), Scale(), keras.layers.Dense(1, "sigmoid")]
    )
"""


def _predict(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    run = project / "run"
    command = [sys.executable, "-m", "fitpipe.cli", "predict", "--model", "run/model.keras"]
    command += ["--data", "data", "--schema", str(run / "schema.json"), "--output", "p.parquet"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [*command, *extra], cwd=project, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.subprocess
def test_predict_loads_a_model_with_the_factorys_custom_classes(project: Path) -> None:
    (project / "factory.py").write_text(FACTORY)
    assert main(["fit", str(project / "spec.toml"), "--verbose", "0", "--no-plot"]) == 0
    done = _predict(project)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "the model uses class" in last and "Pass `--import FILE.py`" in last
    assert len(last) < 700  # not Keras' dump of the model's config
    done = _predict(project, "--import", str(project / "factory.py"))
    assert done.returncode == 0, done.stderr
    assert pq.read_table(project / "p.parquet").column_names == ["id", "prediction"]
