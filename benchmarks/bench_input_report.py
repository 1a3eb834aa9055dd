"""Cost of the input-bound instrumentation and of the streamed NaN/inf checks, in CPU time.

For each input form (NumPy rows in memory, Parquet streamed from disk, a Python generator),
``fit`` runs one epoch over the same data in four settings:

* ``timing on`` / ``timing off``: the input-bound report's timing (``tf.timestamp`` around
  each fetch of the compiled loop, ``perf_counter`` around the Python stages), switched
  with ``fitpipe.adapters.set_timing`` (the ``FITPIPE_INPUT_TIMING`` environment
  variable), both with ``check=False``;
* ``check warn`` / ``timing on``: the NaN/inf checks of streamed batches (timing on in
  both; ``check=False`` against ``check="warn"``, the default).

Each setting gets a fresh model, compiled by a warm-up ``fit`` on the same form, then one
timed ``fit``; settings are interleaved within each repeat so drift hits them alike. The
process CPU time of the timed ``fit`` (``time.process_time``: user + system, all threads)
is reported as its median over --repeats, with the spread (min-max), and the ratio of the
medians. The model and data are those of ``bench_fit.py``: an MLP 32 -> 64 -> 64 -> 1, Adam,
MSE, float32 features.

With the default ``jit_compile="auto"`` some timed fits also try and compile the step's XLA
variant (about 2 s of CPU, a bimodal spread); ``--jit-compile false`` keeps the plain step, so
only the input's cost differs between settings.

Run: python benchmarks/bench_input_report.py --n 32000 --batch 32 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

import fitpipe
from fitpipe import limits
from fitpipe.adapters import set_timing

FEATURES = 32
SETTINGS = {
    "timing off": (False, False),
    "timing on": (True, False),
    "check warn": (True, "warn"),
}


def model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, FEATURES), dtype=np.float32)
    return x, (x[:, :1] * 0.5).astype(np.float32)


def batches(x: np.ndarray, y: np.ndarray, size: int) -> Iterator[Any]:
    for start in range(0, len(x), size):
        yield x[start : start + size], y[start : start + size]


def forms(n: int, size: int, folder: str) -> dict[str, Callable[[int], tuple[Any, dict[str, Any]]]]:
    """Each form: ``make(rows)`` returns the input and the fit keywords."""
    x, y = data(n)
    path = os.path.join(folder, "bench.parquet")
    table = pa.table({**{f"f{i}": x[:, i] for i in range(FEATURES)}, "y": y[:, 0]})
    pq.write_table(table, path, row_group_size=8192)
    schema = fitpipe.Schema([f"f{i}" for i in range(FEATURES)], "y")
    return {
        "numpy (in memory)": lambda rows: (x[:rows], {"y": y[:rows], "batch_size": size}),
        "Parquet streamed": lambda rows: (path, {"schema": schema, "batch_size": size}),
        "generator": lambda rows: (batches(x[:rows], y[:rows], size), {}),
    }


def run(
    make: Callable[[int], tuple[Any, dict[str, Any]]], n: int, setting: str, jit: bool | str
) -> float:
    timing, check = SETTINGS[setting]
    old = set_timing(timing)
    try:
        trainer = fitpipe.Trainer(model())
        trainer.compile("adam", "mse", jit_compile=jit)
        x, kwargs = make(min(n, 512))
        trainer.fit(x, verbose=0, check=check, **kwargs)  # compiles the step
        x, kwargs = make(n)
        start = time.process_time()
        trainer.fit(x, verbose=0, check=check, **kwargs)
        return time.process_time() - start
    finally:
        set_timing(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    args = parser.parse_args()
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    warnings.simplefilter("ignore")
    keras.utils.set_random_seed(0)
    print(
        f"n={args.n} batch={args.batch} features={FEATURES} repeats={args.repeats} "
        f"jit_compile={jit} "
        f"tensorflow={tf.__version__} keras={keras.__version__} (CPU s per fit: median [min-max])"
    )
    old_limit = limits.RESIDENT_BYTES_LIMIT
    with tempfile.TemporaryDirectory() as folder:
        for name, make in forms(args.n, args.batch, folder).items():
            limits.RESIDENT_BYTES_LIMIT = 0 if "streamed" in name else old_limit
            times: dict[str, list[float]] = {s: [] for s in SETTINGS}
            for _ in range(args.repeats):
                for setting in SETTINGS:
                    times[setting].append(run(make, args.n, setting, jit))
            medians = {s: statistics.median(t) for s, t in times.items()}
            for setting, values in times.items():
                print(
                    f"{name:<20} {setting:<12} {medians[setting]:7.3f} s "
                    f"[{min(values):.3f}-{max(values):.3f}]"
                )
            print(
                f"{name:<20} timing on / off: {medians['timing on'] / medians['timing off']:.3f}"
                f"   check warn / False: {medians['check warn'] / medians['timing on']:.3f}"
            )
    limits.RESIDENT_BYTES_LIMIT = old_limit


if __name__ == "__main__":
    main()
