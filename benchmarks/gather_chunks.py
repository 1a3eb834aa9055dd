"""Keras' own train step in a compiled loop over rows in CPU variables, gathered three ways.

What the loop over rows held in memory costs beyond the step (``pipeline/row_chunks.py``'s
``CHUNK_BYTES``): the rows of each batch gathered from a shuffled order one batch at a time,
or a chunk of several batches' rows gathered at once and each batch sliced from it, against
no shuffle (a gather of consecutive rows). Every variant runs one epoch in turn, ``--rounds``
times, each on a new permutation; samples per CPU second (all threads), median and all runs:

    python benchmarks/gather_chunks.py --rows 640000 --features 32 --batch 256 --model mlp
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf
import xla_cpu  # benchmarks/xla_cpu.py, beside this script: the grid's models and data


def parse() -> argparse.Namespace:
    parser = xla_cpu.cell_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--chunks-mib", type=float, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--rounds", type=int, default=4)
    return parser.parse_args()


def main() -> None:
    args = parse()
    rows, batch = args.rows, args.batch
    x, y = xla_cpu.data(rows, args.features, args.model)
    model = xla_cpu.build(args.features, args.model)
    model.compile("adam", "mse")
    model.optimizer.build(model.trainable_variables)
    with tf.device("/CPU:0"):
        xv, yv = tf.Variable(x, trainable=False), tf.Variable(y, trainable=False)
    steps = rows // batch
    row_bytes = x.itemsize * args.features + y.itemsize

    def loop(per_chunk: int) -> Callable[[tf.Tensor], None]:
        """An epoch: chunks of ``per_chunk`` batches gathered at once (1: a gather a batch)."""

        @tf.function(autograph=False)
        def epoch(order: tf.Tensor) -> None:
            def chunk(done: tf.Tensor) -> tf.Tensor:
                count = tf.minimum(per_chunk, steps - done)
                picked = order[done * batch : (done + count) * batch]
                xs, ys = tf.gather(xv, picked), tf.gather(yv, picked)

                def step(i: tf.Tensor) -> tf.Tensor:
                    model.train_step(
                        (xs[i * batch : (i + 1) * batch], ys[i * batch : (i + 1) * batch])
                    )
                    return i + 1

                tf.while_loop(lambda i: i < count, step, [tf.constant(0)])
                return done + count

            tf.while_loop(lambda done: done < steps, chunk, [tf.constant(0)])

        return epoch

    sizes = {"a gather per batch": 1}
    for mib in args.chunks_mib:
        sizes[f"chunks of {mib:g} MiB"] = max(int(mib * 2**20) // (batch * row_bytes), 1)
    variants = {name: (loop(per_chunk), True) for name, per_chunk in sizes.items()}
    variants["not shuffled"] = (loop(1), False)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for epoch, _ in variants.values():
        epoch(tf.range(rows))  # traced and run once
    for _ in range(args.rounds):
        for name, (epoch, shuffled) in variants.items():
            order = tf.random.shuffle(tf.range(rows)) if shuffled else tf.range(rows)
            start = time.process_time()
            epoch(order)
            rates[name].append(steps * batch / (time.process_time() - start))
    print(f"{rows} x {args.features}, batch {batch}: samples per CPU second, median (runs)")
    for name, values in rates.items():
        runs = ", ".join(f"{v / 1e3:.0f}k" for v in values)
        print(f"  {name:24s} {statistics.median(values) / 1e3:6.0f}k  ({runs})")


if __name__ == "__main__":
    main()
