"""The CLI tests' project: a small Parquet data set, a model factory module and a spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 90
FEATURES = ["f0", "f1", "f2"]

FACTORY = """
import keras


def build(units=4):
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(units, "relu"), keras.layers.Dense(1, "sigmoid")]
    )


def not_a_model():
    return 42
"""

SPEC = """
seed = 0

[data]
source = "data"
schema = { features = ["f0", "f1", "f2"], targets = "y", passthrough = ["id"] }

[model]
factory = "factory:build"

[model.args]
units = 4

[compile]
optimizer = "adam"
loss = "binary_crossentropy"
metrics = ["accuracy"]

[fit]
epochs = 2
batch_size = 16
validation_split = 0.2
class_weight = { 0 = 1.0, 1 = 2.0 }

[output]
dir = "run"
"""


def make_table(rows: int = ROWS, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 3)).astype("float32")
    columns = {"id": np.arange(rows, dtype="int64") + 1000}
    columns.update({name: x[:, i] for i, name in enumerate(FEATURES)})
    columns["y"] = (x[:, 0] > 0.3).astype("int32")
    return pa.table(columns)


def make_project(folder: Path) -> Path:
    """Writes ``data/`` (two Parquet files, three row groups), ``factory.py``, ``spec.toml``."""
    table = make_table()
    (folder / "data").mkdir()
    pq.write_table(table.slice(0, 50), folder / "data" / "a.parquet", row_group_size=25)
    pq.write_table(table.slice(50), folder / "data" / "b.parquet")
    (folder / "factory.py").write_text(FACTORY)
    (folder / "spec.toml").write_text(SPEC)
    return folder
