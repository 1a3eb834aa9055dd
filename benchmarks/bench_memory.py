"""Peak memory of fitpipe on data larger than what it may hold, each case in a fresh process.

* parquet: one epoch streamed from a Parquet dataset whose float32 contents are several times
  the process's peak RSS (target: data >= 4x peak).
* array: adapting and fitting a NumPy float32 array of --array-gb GB (target: peak RSS under
  1.5x the array's size).

Run: python benchmarks/bench_memory.py --parquet-gb 4 --array-gb 2
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

FEATURES = 32


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _model() -> object:
    import keras

    import fitpipe

    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(hidden)))
    trainer.compile("adam", "mse", steps_per_execution="auto")
    return trainer


def child_parquet(folder: str, batch: int) -> None:
    import fitpipe

    trainer = _model()
    schema = fitpipe.Schema(features=[f"f{i}" for i in range(FEATURES)], targets="y")
    start = time.perf_counter()
    history = trainer.fit(folder, schema=schema, batch_size=batch, epochs=1, verbose=0)
    print(
        f"RESULT peak_gb={_peak_gb():.3f} seconds={time.perf_counter() - start:.1f} "
        f"loss={history.history['loss'][-1]:.4f}"
    )


def child_array(gigabytes: float, batch: int) -> None:
    import numpy as np

    rows = int(gigabytes * 2**30 / 4 / FEATURES)
    x = np.ones((rows, FEATURES), dtype=np.float32)
    x[:, 0] = np.linspace(-1, 1, rows, dtype=np.float32)
    y = x[:, :1] * 0.5
    base = _peak_gb()
    trainer = _model()
    start = time.perf_counter()
    trainer.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    print(
        f"RESULT peak_gb={_peak_gb():.3f} array_gb={x.nbytes / 2**30:.3f} "
        f"after_alloc_gb={base:.3f} seconds={time.perf_counter() - start:.1f}"
    )


def write_parquet(folder: str, gigabytes: float) -> float:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows_per_file = 2_000_000
    files = max(1, round(gigabytes * 2**30 / 4 / (FEATURES + 1) / rows_per_file))
    rng = np.random.default_rng(0)
    for i in range(files):
        x = rng.standard_normal((rows_per_file, FEATURES), dtype=np.float32)
        columns = {f"f{j}": x[:, j] for j in range(FEATURES)}
        columns["y"] = x[:, 0] * 0.5
        pq.write_table(
            pa.table(columns),
            os.path.join(folder, f"part-{i:04d}.parquet"),
            row_group_size=131072,
            compression="snappy",
        )
    return files * rows_per_file * (FEATURES + 1) * 4 / 2**30


def run(*child_args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *child_args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    return {k: float(v) for k, v in (p.split("=") for p in line.split()[1:])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parquet-gb", type=float, default=4.0)
    parser.add_argument("--array-gb", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--child", nargs="*")
    a = parser.parse_args()
    if a.child:
        kind, value = a.child
        if kind == "parquet":
            child_parquet(value, a.batch)
        else:
            child_array(float(value), a.batch)
        return
    if a.parquet_gb > 0:
        with tempfile.TemporaryDirectory() as folder:
            data_gb = write_parquet(folder, a.parquet_gb)
            r = run("--batch", str(a.batch), "--child", "parquet", folder)
            print(
                f"parquet: data {data_gb:.2f} GB (float32), peak RSS {r['peak_gb']:.2f} GB, "
                f"data/peak = {data_gb / r['peak_gb']:.2f}x (target >= 4x), "
                f"{r['seconds']:.0f} s for one epoch"
            )
    if a.array_gb > 0:
        r = run("--batch", str(a.batch), "--child", "array", str(a.array_gb))
        print(
            f"array: {r['array_gb']:.2f} GB float32, peak RSS {r['peak_gb']:.2f} GB = "
            f"{r['peak_gb'] / r['array_gb']:.2f}x the array (target < 1.5x); "
            f"{r['seconds']:.0f} s for one epoch"
        )


if __name__ == "__main__":
    main()
