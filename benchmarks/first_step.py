"""Time from the call of ``fit`` to the end of the first batch, fitpipe against Keras.

CPU time of the process (all threads) is reported beside wall time: on a shared machine it
moves far less with the other work running. One run per process (a process's first ``fit``
pays for what later ones reuse):

    python benchmarks/first_step.py keras 64000 32      # Keras at its defaults
    python benchmarks/first_step.py fitpipe 64000 32    # fitpipe at its defaults
    python benchmarks/first_step.py nojit 64000 32      # fitpipe, jit_compile=False
    python benchmarks/first_step.py nocheck 64000 32    # fitpipe, check=False
    python benchmarks/first_step.py keras 64000 32 parquet    # from a Parquet file

With ``parquet`` the data is first written to a Parquet file (not timed); the clock starts
before reading it: Keras reads it the usual way (``pandas.read_parquet``, then NumPy), fitpipe
takes the path with a schema. With ``parquet-file`` the file exists before the process starts
(written once by a child process, kept in the temporary folder), as a script that trains on
a file finds it: the process has made no data of its own, and its memory is fresh.
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


def _write(path: str, x: np.ndarray, y: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({**{f"f{i}": x[:, i] for i in range(x.shape[1])}, "y": y[:, 0]})
    pq.write_table(table, path, row_group_size=65536)


def _data(source: str, rows: int, features: int) -> tuple[Any, Any, str]:
    """The arrays (None for ``parquet-file``) and the Parquet file's path ("" for NumPy)."""
    import subprocess
    import tempfile

    if source == "parquet-file":
        path = os.path.join(tempfile.gettempdir(), f"fitpipe_first_step_{rows}x{features}.parquet")
        if not os.path.exists(path):
            command = [sys.executable, __file__, "write", str(rows), str(features), path]
            subprocess.run(command, check=True)
        return None, None, path
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    y = rng.normal(size=(rows, 1)).astype("float32")
    path = ""
    if source == "parquet":
        path = os.path.join(tempfile.mkdtemp(), "data.parquet")
        _write(path, x, y)
    return x, y, path


def main() -> None:
    which, rows, features = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    source = sys.argv[4] if len(sys.argv) > 4 else "numpy"
    if which == "write":  # the child process of ``parquet-file``
        _, _, path = _data("parquet", rows, features)
        os.replace(path, source)
        return
    x, y, path = _data(source, rows, features)
    columns = [f"f{i}" for i in range(features)]
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
        if path:
            import pandas as pd

            frame = pd.read_parquet(path)
            x, y = frame[columns].to_numpy(), frame[["y"]].to_numpy()
        model.compile("adam", "mse")
        model.fit(x, y, **fit)
    else:
        trainer = fitpipe.Trainer(model)
        trainer.compile("adam", "mse", jit_compile=which != "nojit" and "auto")
        check = which != "nocheck" and "warn"
        if path:
            schema = fitpipe.Schema(features=columns, targets="y")
            trainer.fit(path, schema=schema, **fit, check=check)
        else:
            trainer.fit(x, y, **fit, check=check)
    assert callback.first is not None
    cpu, wall = callback.first
    total_cpu, total_wall = time.process_time() - start[0], time.perf_counter() - start[1]
    print(
        f"{which:8s} {source:7s} {rows}x{features} first step: cpu {cpu:.2f} s, "
        f"wall {wall:.2f} s | "
        f"one epoch: cpu {total_cpu:.2f} s, wall {total_wall:.2f} s"
    )


if __name__ == "__main__":
    main()
