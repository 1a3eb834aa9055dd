"""Helpers shared by the Arrow and Parquet adapter tests (imported, not a pytest conftest)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

import fitpipe


def numbered_table(n: int = 100, seed: int = 0) -> pa.Table:
    """A table whose ``id`` column is the row index: features ``a``, ``b``, target ``y``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n).astype("float32")
    b = rng.normal(size=n).astype("float32")
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype="int64")),
            "a": pa.array(a),
            "b": pa.array(b),
            "y": pa.array((2 * a - b).astype("float32")),
            "label": pa.array((a > 0).astype("int64")),
            "w": pa.array(np.linspace(0.5, 1.5, n).astype("float32")),
        }
    )


def write_parts(
    folder: Path,
    table: pa.Table,
    sizes: Sequence[int],
    row_group_size: int,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Writes consecutive slices of ``table`` (``sizes`` rows each) as Parquet files.

    Files are named ``part-000.parquet``, ... unless ``names`` are given; the first slice goes
    to the first name. Returns the paths in the order written.
    """
    assert sum(sizes) == table.num_rows
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"part-{i:03d}.parquet" for i in range(len(sizes))]
    paths, start = [], 0
    for name, size in zip(names, sizes, strict=True):
        path = folder / name
        pq.write_table(table.slice(start, size), path, row_group_size=row_group_size)
        paths.append(path)
        start += size
    return paths


def batches(pipeline: fitpipe.Pipeline) -> list[tuple[Any, ...]]:
    """One epoch of a pipeline as a list of tuples of NumPy arrays (ragged tensors kept)."""
    out = []
    for batch in pipeline.dataset:
        out.append(
            tuple(
                tf.nest.map_structure(
                    lambda t: t if isinstance(t, tf.RaggedTensor) else t.numpy(), part
                )
                for part in batch
            )
        )
    return out


def column_of(pipeline: fitpipe.Pipeline, part: int = 0) -> np.ndarray:
    """One epoch of a pipeline, element ``part`` of every batch concatenated."""
    return np.concatenate([b[part] for b in batches(pipeline)])


def batch_sizes(pipeline: fitpipe.Pipeline) -> list[int]:
    """The number of rows of each batch of one epoch."""
    return [len(tf.nest.flatten(b[0])[0]) for b in batches(pipeline)]


def expected_sizes(rows: int, batch_size: int) -> list[int]:
    """Keras batch sizes: full batches, then a partial last one."""
    full, rest = divmod(rows, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)


def linear_model(d: int = 2, units: int = 1) -> keras.Model:
    """A small built functional model with one Dense output."""
    inp = keras.Input((d,))
    return keras.Model(inp, keras.layers.Dense(units)(inp))


def weights_equal(before: list[np.ndarray], model: keras.Model) -> bool:
    after = model.get_weights()
    return len(before) == len(after) and all(
        np.array_equal(a, b) for a, b in zip(before, after, strict=True)
    )


def listing(folder: Path) -> list[str]:
    """Every entry of a folder, hidden ones included."""
    return sorted(os.listdir(folder))


def write_null_parts(folder: Path) -> Path:
    """Two files (60 and 40 rows); a null in column ``a`` at global row 77 (row 17 of the
    second file, ``part-001.parquet``)."""
    table = numbered_table(100)
    a = table["a"].to_pylist()
    a[77] = None
    table = table.set_column(table.schema.get_field_index("a"), "a", pa.array(a, pa.float32()))
    write_parts(folder, table, [60, 40], row_group_size=16)
    return folder
