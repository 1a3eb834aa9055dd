"""``fit(shuffle=True)`` over rows held in memory in another layout than NumPy's C order.

A pandas 3 frame's ``to_numpy()`` is column-major, ``x[:, ::2]`` is strided and
``np.asfortranarray`` is Fortran-ordered: rows of such arrays gathered with ``np.take`` made
NumPy copy the whole array first, for every block of a shuffled epoch (its cost grew with
rows squared). Times 2 shuffled epochs of a tiny model (the input's gathering is the work)
and samples the process's peak RSS above its start, for fitpipe or Keras:

    python benchmarks/noncontiguous_rows.py fitpipe pandas 3000000
    python benchmarks/noncontiguous_rows.py keras pandas 3000000

Layouts: ``contiguous``, ``pandas``, ``strided``, ``fortran``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas as pd
import psutil

import fitpipe

FEATURES = 32


def _data(layout: str, rows: int) -> Any:
    base = np.random.default_rng(0).normal(size=(rows, FEATURES)).astype("float32")
    if layout == "pandas":
        return pd.DataFrame(base)
    if layout == "strided":
        return np.repeat(base, 2, axis=1)[:, ::2]
    if layout == "fortran":
        return np.asfortranarray(base)
    return base


def main(side: str, layout: str, rows: int) -> None:
    """Prints the seconds of 2 shuffled epochs and the peak RSS above the start."""
    x, y = _data(layout, rows), np.zeros((rows, 1), "float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(4), keras.layers.Dense(1)]
    )
    api: Any = fitpipe.Trainer(model) if side == "fitpipe" else model
    api.compile(optimizer="sgd", loss="mse")
    api.fit(np.zeros((64, FEATURES), "float32"), np.zeros((64, 1), "float32"), verbose=0)
    process = psutil.Process()
    start = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    extra = {"check": False} if side == "fitpipe" else {}
    api.fit(x, y, batch_size=4096, epochs=2, shuffle=True, verbose=0, **extra)
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    size = rows * FEATURES * 4 / 2**20
    print(
        f"{side} {layout} {rows:,} rows: 2 epochs {seconds:.1f} s wall, peak RSS "
        f"{(peak - start) / 2**20:.0f} MiB above start (the array: {size:.0f} MiB)"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3_000_000)
