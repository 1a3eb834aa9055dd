"""Time from the call of ``fit`` to the end of the first batch, fitpipe against Keras.

CPU time of the process (all threads) is reported beside wall time: on a shared machine it
moves far less with the other work running. One run per process (a process's first ``fit``
pays for what later ones reuse):

    python benchmarks/first_step.py keras 64000 32      # Keras at its defaults
    python benchmarks/first_step.py fitpipe 64000 32    # fitpipe at its defaults
    python benchmarks/first_step.py nojit 64000 32      # fitpipe, jit_compile=False
    python benchmarks/first_step.py nocheck 64000 32    # fitpipe, check=False
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np


class FirstBatch(keras.callbacks.Callback):
    """Records (CPU seconds, wall seconds) since ``start`` at the end of the first batch."""

    def __init__(self, start: tuple[float, float]) -> None:
        super().__init__()
        self.start = start
        self.first: tuple[float, float] | None = None

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.first is None:
            cpu, wall = self.start
            self.first = (time.process_time() - cpu, time.perf_counter() - wall)


def main() -> None:
    which, rows, features = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    y = rng.normal(size=(rows, 1)).astype("float32")
    inputs = keras.Input((features,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    if which != "keras":
        import fitpipe
    start = (time.process_time(), time.perf_counter())
    callback = FirstBatch(start)
    fit: dict[str, Any] = {"batch_size": 256, "epochs": 1, "verbose": 0, "callbacks": [callback]}
    if which == "keras":
        model.compile("adam", "mse")
        model.fit(x, y, **fit)
    else:
        trainer = fitpipe.Trainer(model)
        trainer.compile("adam", "mse", jit_compile=which != "nojit" and "auto")
        trainer.fit(x, y, **fit, check=which != "nocheck" and "warn")
    assert callback.first is not None
    cpu, wall = callback.first
    total_cpu, total_wall = time.process_time() - start[0], time.perf_counter() - start[1]
    print(
        f"{which:8s} {rows}x{features} first step: cpu {cpu:.2f} s, wall {wall:.2f} s | "
        f"one epoch: cpu {total_cpu:.2f} s, wall {total_wall:.2f} s"
    )


if __name__ == "__main__":
    main()
