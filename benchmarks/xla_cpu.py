"""Steady-state speed of fitpipe's step with and without XLA, for one cell, in one process.

Each variant trains one warm-up epoch, then two timed epochs (steps per call tuned as by
default); samples per CPU-second (all threads) and per wall-second are printed:

    python benchmarks/xla_cpu.py ROWS FEATURES BATCH {mlp,conv,text}
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import fitpipe

VOCABULARY = 1000  # as benchmarks/grid.py's text model


def build(features: int, kind: str) -> keras.Model:
    """The grid's models: the MLP, a small Conv1D over the features, or Embedding + pooling."""
    inputs = keras.Input((features,), dtype="int32" if kind == "text" else "float32")
    if kind == "text":
        hidden = keras.layers.Embedding(VOCABULARY, 16)(inputs)
        hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    elif kind == "conv":
        hidden = keras.layers.Reshape((features, 1))(inputs)
        hidden = keras.layers.Conv1D(16, 5, activation="relu")(hidden)
        hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    else:
        hidden = keras.layers.Dense(64, activation="relu")(inputs)
        hidden = keras.layers.Dense(64, activation="relu")(hidden)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def data(rows: int, features: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmarks' random ``(x, y)`` for ``build(features, kind)`` (token ids for text)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    if kind == "text":
        x = rng.integers(0, VOCABULARY, (rows, features)).astype("int32")
    return x, rng.normal(size=(rows, 1)).astype("float32")


def cell_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds one cell's ``--rows --features --batch --model`` to ``parser``."""
    parser.add_argument("--rows", type=int, default=64000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--model", choices=["mlp", "conv", "text"], default="conv")
    return parser


def main() -> None:
    rows, features, batch, kind = (*map(int, sys.argv[1:4]), sys.argv[4])
    x, y = data(rows, features, kind)
    figures = []
    for jit in (True, False):
        keras.utils.set_random_seed(0)
        trainer = fitpipe.Trainer(build(features, kind))
        trainer.compile("adam", "mse", jit_compile=jit)
        trainer.fit(x, y, batch_size=batch, epochs=1, verbose=0, check=False)
        cpu, wall = time.process_time(), time.perf_counter()
        trainer.fit(x, y, batch_size=batch, epochs=2, verbose=0, check=False)
        per_cpu = 2 * rows / (time.process_time() - cpu) / 1e3
        per_wall = 2 * rows / (time.perf_counter() - wall) / 1e3
        figures.append(f"XLA {jit}: {per_cpu:.0f}k samples/cpu-s, {per_wall:.0f}k samples/s")
    print(rows, features, batch, kind, " | ".join(figures))


if __name__ == "__main__":
    main()
