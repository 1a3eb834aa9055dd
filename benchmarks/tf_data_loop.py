"""A user's ``tf.data.Dataset`` through ``fit``, ``evaluate``, ``predict``: fitpipe and Keras.

The dataset is written the way users write one (``from_tensor_slices``, ``shuffle`` over
every row for ``fit``, ``batch``, ``prefetch(AUTOTUNE)``) and built again for every call, as
a script does; the grid's MLP (features -> 64 -> 64 -> 1, Adam, MSE). Keras runs without
XLA at 32 steps per call (its best setting for this model on a CPU, see the grid) and at
its defaults; fitpipe at its defaults. After one warm call each, ``--repeats`` calls are
timed; the figures are samples per CPU second of the process (all threads) and per wall
second, and the ratio of fitpipe's median to Keras' best median, measured in this process.

    python benchmarks/tf_data_loop.py --batch 32 --repeats 4
    python benchmarks/tf_data_loop.py --batch 256 --calls evaluate predict
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument(
        "--calls", nargs="+", default=["fit"], choices=["fit", "evaluate", "predict"]
    )
    args = parser.parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    import fitpipe

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    y = x[:, :1] * 0.5 + rng.standard_normal((args.rows, 1), dtype=np.float32) * 0.1

    def dataset(call: str) -> tf.data.Dataset:
        rows = tf.data.Dataset.from_tensor_slices(x if call == "predict" else (x, y))
        rows = rows.shuffle(args.rows, seed=0) if call == "fit" else rows
        return rows.batch(args.batch).prefetch(tf.data.AUTOTUNE)

    def build(**kwargs: Any) -> keras.Model:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((args.features,))
        hidden = keras.layers.Dense(64, activation="relu")(inputs)
        hidden = keras.layers.Dense(64, activation="relu")(hidden)
        model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        model.compile("adam", "mse", **kwargs)
        return model

    trainer = fitpipe.Trainer(build())
    trainer.compile("adam", "mse")
    runners = {
        "keras 0/32": build(jit_compile=False, steps_per_execution=32),
        "keras default": build(),
        "fitpipe": trainer,
    }
    for call in args.calls:
        figures = {name: _timed(runner, call, dataset, args) for name, runner in runners.items()}
        best = max(cpu for name, (cpu, _) in figures.items() if name.startswith("keras"))
        for name, (cpu, wall) in figures.items():
            print(f"{call} {name}: {cpu:,.0f} samples/CPU s, {wall:,.0f} samples/wall s")
        print(f"{call} fitpipe / Keras' best (CPU): {figures['fitpipe'][0] / best:.2f}x")


def _timed(runner: Any, call: str, dataset: Callable[[str], Any], args: Any) -> tuple[float, float]:
    """Median samples per CPU second and per wall second of ``--repeats`` calls after a warm one."""
    kwargs: dict[str, Any] = {"verbose": 0}
    if call == "fit":
        kwargs["epochs"] = args.epochs
    samples = args.rows * (args.epochs if call == "fit" else 1)
    getattr(runner, call)(dataset(call), **kwargs)
    cpu, wall = [], []
    for _ in range(args.repeats):
        data = dataset(call)
        began, began_cpu = time.perf_counter(), time.process_time()
        getattr(runner, call)(data, **kwargs)
        cpu.append(samples / (time.process_time() - began_cpu))
        wall.append(samples / (time.perf_counter() - began))
    return statistics.median(cpu), statistics.median(wall)


if __name__ == "__main__":
    main()
