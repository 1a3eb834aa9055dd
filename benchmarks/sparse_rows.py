"""Sparse rows held in memory: ``fit``, ``evaluate`` and ``predict`` against Keras' defaults.

A held sparse input (a ``tf.SparseTensor`` or a SciPy matrix, which fitpipe holds as one) is
grouped by row once (``fitpipe.pipeline.row_picks.SparseRows``), so a batch costs its own
entries. Each side is a fresh model (Dense over the sparse columns, then Dense(1)), compiled
at its defaults; one warm-up call of each method, then the timed ones, in turns for
``--repeats`` rounds; rows per CPU second, medians, and fitpipe's ratio to Keras measured in
the same process:

    python benchmarks/sparse_rows.py --rows 64000 --width 1000 --entries 10 --batch 32 256 1024

``--form scipy`` passes a ``scipy.sparse.csr_matrix`` to both. Without fitpipe's grouping
(before it existed) ``predict`` over 64,000 rows of 10 entries ran at 6k rows per CPU second
at batch 32 and 42k at 256 (Keras 46k and 206k).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

import fitpipe

METHODS = ("fit", "evaluate", "predict")


def data(args: argparse.Namespace) -> tuple[Any, np.ndarray]:
    """Random rows of ``args.entries`` entries (duplicates dropped) and a float target."""
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(args.rows), args.entries)
    columns = rng.integers(0, args.width, args.rows * args.entries)
    positions = np.unique(np.stack([rows, columns], 1), axis=0)
    values = rng.standard_normal(len(positions)).astype("float32")
    y = rng.standard_normal((args.rows, 1)).astype("float32")
    if args.form == "scipy":
        import scipy.sparse

        shape = (args.rows, args.width)
        return scipy.sparse.csr_matrix((values, (positions[:, 0], positions[:, 1])), shape), y
    return tf.SparseTensor(positions, values, (args.rows, args.width)), y


def model(width: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((width,), sparse=True)
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def calls(side: str, width: int, x: Any, y: np.ndarray, batch: int) -> dict[str, Callable[[], Any]]:
    """The three methods of a fresh model on ``side``, at its defaults."""
    made = model(width)
    runner: Any = made
    if side == "fitpipe":
        runner = fitpipe.Trainer(made)
    runner.compile("adam", "mse")
    kwargs = {"batch_size": batch, "verbose": 0}
    return {
        "fit": lambda: runner.fit(x, y, epochs=1, **kwargs),
        "evaluate": lambda: runner.evaluate(x, y, **kwargs),
        "predict": lambda: runner.predict(x, **kwargs),
    }


def cpu_seconds(call: Callable[[], Any]) -> float:
    begin = time.process_time()
    call()
    return time.process_time() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=64000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=10)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256, 1024])
    parser.add_argument("--form", choices=["tf", "scipy"], default="tf")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x, y = data(args)
    for batch in args.batch:
        sides = {side: calls(side, args.width, x, y, batch) for side in ("keras", "fitpipe")}
        for methods in sides.values():
            for call in methods.values():
                call()  # warm-up: traces and compiles
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for side, methods in sides.items():
                for name, call in methods.items():
                    rates.setdefault((side, name), []).append(args.rows / cpu_seconds(call))
        cells = []
        for name in METHODS:
            keras_rate = statistics.median(rates[("keras", name)])
            ours = statistics.median(rates[("fitpipe", name)])
            cells.append(
                f"{name} {ours / 1e3:.0f}k vs {keras_rate / 1e3:.0f}k ({ours / keras_rate:.2f}x)"
            )
        print(
            f"{args.form} {args.rows} x {args.width}, batch {batch}: " + "; ".join(cells),
            flush=True,
        )


if __name__ == "__main__":
    main()
