"""NumPy arrays over the in-memory limit: blocks of gathered rows against ``tf.data``.

Arrays over ``fitpipe.limits.RESIDENT_BYTES_LIMIT`` (256 MiB) are never copied whole.
fitpipe hands their rows to the compiled loop in blocks (``fitpipe.pipeline.numpy_rows``,
``BLOCK_BYTES`` each) or, with ``limits.STREAM_IN_BLOCKS`` off (a distributed input),
through ``tf.data`` a ``numpy_function`` per batch. For one cell, each variant trains a
fresh model one warm-up epoch, then ``--epochs`` timed epochs (shuffled, as by default), in
turns for ``--repeats`` rounds; samples per CPU second (all threads) and per wall second:

    python benchmarks/numpy_streamed.py --rows 640000 --features 512 --batch 256 --model mlp \\
        --block-mib 4 16 64 --limit-mib 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from xla_cpu import build, cell_arguments, data

import fitpipe
from fitpipe import limits
from fitpipe.pipeline import numpy_rows


def parse() -> argparse.Namespace:
    parser = cell_arguments(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--block-mib", type=float, nargs="+", default=[16])
    parser.add_argument("--limit-mib", type=float, default=None, help="the limit (default 256)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def timed_fit(args: argparse.Namespace, x: object, y: object) -> tuple[float, float]:
    """A fresh model's warm-up epoch, then ``--epochs`` timed: samples per CPU and wall s."""
    keras.utils.set_random_seed(0)
    trainer = fitpipe.Trainer(build(args.features, args.model))
    trainer.compile("adam", "mse")
    trainer.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
    cpu, wall = time.process_time(), time.perf_counter()
    trainer.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0)
    samples = args.epochs * args.rows
    return samples / (time.process_time() - cpu), samples / (time.perf_counter() - wall)


def main() -> None:
    args = parse()
    if args.limit_mib is not None:
        limits.RESIDENT_BYTES_LIMIT = int(args.limit_mib * 2**20)
    x, y = data(args.rows, args.features, args.model)
    variants = {f"blocks of {mib:g} MiB": mib for mib in args.block_mib}
    variants["tf.data, a numpy_function a batch"] = 0.0
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, mib in variants.items():
            limits.STREAM_IN_BLOCKS = bool(mib)
            numpy_rows.BLOCK_BYTES = int(mib * 2**20) or numpy_rows.BLOCK_BYTES
            figures[name].append(timed_fit(args, x, y))
    print(
        f"{args.rows} x {args.features}, batch {args.batch}, {args.model}, "
        f"{x.nbytes / 2**20:.0f} MiB of x, limit {limits.RESIDENT_BYTES_LIMIT / 2**20:g} MiB"
    )
    for name, runs in figures.items():
        cpu = [c / 1e3 for c, _ in runs]
        wall = [w / 1e3 for _, w in runs]
        print(
            f"{name:36s} {statistics.median(cpu):6.0f}k/CPU s ({min(cpu):.0f}-{max(cpu):.0f})"
            f"  {statistics.median(wall):6.0f}k/s ({min(wall):.0f}-{max(wall):.0f})"
        )


if __name__ == "__main__":
    main()
