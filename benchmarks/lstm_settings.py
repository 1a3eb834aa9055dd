"""The grid's LSTM cell at fixed settings: fitpipe or Keras, one jit_compile and one
steps_per_execution per process.

What it asks: when fitpipe runs XLA for the grid's LSTM over 64 time steps, does its XLA step
run as fast as Keras' at the same steps per call? (The grid compares fitpipe's *default*,
whose trial of XLA comes after the grid's timed epochs in that cell, with Keras' best.)

    python benchmarks/lstm_settings.py keras 1 32      # side, jit (0/1), steps per call
    python benchmarks/lstm_settings.py fitpipe 1 32

Prints samples per CPU second and per wall second of a 2-epoch ``fit`` of 16,000 rows of 512
features (an LSTM of 32 units over 64 steps of 8, batch 256, Adam, MSE) after a 1-epoch
warm-up ``fit``.
"""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np

import fitpipe

ROWS, FEATURES, BATCH = 16_000, 512, 256


def _model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Reshape((FEATURES // 8, 8))(inputs)
    hidden = keras.layers.LSTM(32)(hidden)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def main(side: str, jit: bool, steps: int) -> None:
    """Times one side at one setting and prints its rates."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = rng.normal(size=(ROWS, 1)).astype("float32")
    model = _model()
    api: object = model if side == "keras" else fitpipe.Trainer(model)
    api.compile("adam", "mse", jit_compile=jit, steps_per_execution=steps)  # type: ignore[attr-defined]
    api.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # type: ignore[attr-defined]
    cpu, wall = _cpu(), time.perf_counter()
    api.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)  # type: ignore[attr-defined]
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    print(
        f"{side} jit={int(jit)} spe={steps}: {2 * ROWS / cpu:.0f} samples/CPU s, "
        f"{2 * ROWS / wall:.0f} samples/wall s"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]))
