"""XLA against the plain graph, per step kind: train, test and predict steps timed apart.

``jit_compile="auto"`` decides XLA by timing the train step; this script shows why the test
and predict steps time it for themselves: the gain of XLA in one does not carry to another.
Each step runs in a compiled loop over consecutive slices of tensors in memory (as the grid's
limits), with and without XLA; figures are CPU microseconds a step, median of 5 passes.

Run: python benchmarks/xla_modes.py --rows 64000 --features 32 --batch 256 --model conv

(the grid's models, as ``xla_cpu.py`` builds them).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf
from xla_cpu import build, cell_arguments, data


def main() -> None:
    parser = cell_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = build(args.features, args.model)
    model.compile("adam", "mse")
    model.optimizer.build(model.trainable_variables)
    arrays = data(args.rows, args.features, args.model)
    x, y = (tf.constant(a) for a in arrays)
    batch, steps = args.batch, args.rows // args.batch
    kinds: dict[str, Callable[[Any, Any], Any]] = {
        "train": lambda a, b: model.train_step((a, b))["loss"],
        "test": lambda a, b: model.test_step((a, b))["loss"],
        "predict": lambda a, b: tf.reduce_sum(model.predict_step((a,))),
    }

    def loop(step: Callable[[Any, Any], Any]) -> Callable[[], Any]:
        def body(i: tf.Tensor, _: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return i + 1, step(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch])

        return tf.function(lambda: tf.while_loop(lambda i, _: i < steps, body, (0, 0.0)))

    loops = {
        (kind, jit): loop(tf.function(step, jit_compile=jit))
        for kind, step in kinds.items()
        for jit in (False, True)
    }
    for run in loops.values():
        run()  # traced and compiled
    seconds: dict[tuple[str, bool], list[float]] = {key: [] for key in loops}
    for _ in range(5):
        for key, run in loops.items():
            start = time.process_time()
            run()
            seconds[key].append(1e6 * (time.process_time() - start) / steps)
    for kind in kinds:
        plain, xla = (sorted(seconds[(kind, jit)])[2] for jit in (False, True))
        print(
            f"{args.model} {args.rows}x{args.features} batch {batch} {kind}: plain {plain:.1f} "
            f"us, XLA {xla:.1f} us a step (CPU), XLA / plain {xla / plain:.2f}"
        )


if __name__ == "__main__":
    main()
