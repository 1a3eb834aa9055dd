"""Data helpers shared by the distribute tests and their subprocess scripts (not a conftest)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import fitpipe

SCHEMA = fitpipe.Schema(["a", "b"], "y")
WEIGHTED = fitpipe.Schema(["a", "b"], "y", sample_weight="w")


def table(n: int, seed: int = 0) -> pa.Table:
    """Rows whose feature ``a`` is the row index; ``b`` noise, ``y`` a linear target."""
    rng = np.random.default_rng(seed)
    a = np.arange(n, dtype="float32")
    b = rng.normal(size=n).astype("float32")
    return pa.table(
        {
            "a": pa.array(a),
            "b": pa.array(b),
            "y": pa.array((0.01 * a - b).astype("float32")),
            "w": pa.array(np.linspace(0.5, 1.5, n).astype("float32")),
            "label": pa.array((b > 0).astype("int64")),
        }
    )


def write(folder: Path, n: int, row_group: int, files: int = 1) -> Path:
    """Writes ``n`` rows of :func:`table` as ``files`` Parquet files of ``row_group`` groups."""
    folder.mkdir(parents=True, exist_ok=True)
    data = table(n)
    edges = np.linspace(0, n, files + 1).astype(int)
    for i in range(files):
        part = data.slice(edges[i], edges[i + 1] - edges[i])
        pq.write_table(part, folder / f"part-{i:03d}.parquet", row_group_size=row_group)
    return folder


def worker_model() -> keras.Model:
    """The deterministic model of the multi-worker test (built on one device too)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(5e-4), "mse", metrics=["mae"], jit_compile=False)
    return model


def arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The features ``(a, b)`` and target ``y`` of :func:`table` as NumPy arrays."""
    data = table(n).to_pydict()
    x = np.stack([data["a"], data["b"]], axis=1).astype("float32")
    return x, np.array(data["y"], "float32")[:, None]
