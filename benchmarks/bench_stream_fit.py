"""Streamed Parquet in ``fit`` against the same rows in memory, the routes timed in turns.

The issue's goal: streamed Parquet runs ``fit`` at >= 0.9x of the in-memory path. A grid
cell times each route in its own process, where the machine's speed moves 20-40% between
runs; here every route is timed in the same process, round after round, so drift hits all of
them alike. The routes, on one file (``--rows`` x ``--features`` float32 columns and a
target, row groups of ``--row-group`` rows) and the grid's MLP (features -> 64 -> 64 -> 1,
Adam, MSE, fitpipe's defaults):

- ``in memory``: the file read whole (``limits.RESIDENT_BYTES_LIMIT`` raised), rows sliced in
  the compiled loop;
- ``streamed, tf.data``: streamed row group by row group (the limit at 0), batches cut by
  ``tf.data`` (``limits.STREAM_IN_BLOCKS = False``, the path before blocks);
- ``streamed, blocks``: streamed, each converted block held as tensors and its batches cut in
  the compiled loop, the next block read on a thread (``STREAM_IN_BLOCKS = True``, the
  default).

Each route has its own trainer, warmed up by one 1-epoch ``fit``; then each round times one
``--epochs``-epoch ``fit`` of every route (a ``fit`` reads the file again, as a user's does).
Figures: samples/s of wall time and of the process's CPU time, median (min-max) over rounds.

Run: python benchmarks/bench_stream_fit.py --rows 640000 --features 32 --batch 256
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_stream  # benchmarks/bench_stream.py, beside this script
import grid  # benchmarks/grid.py, beside this script
import keras

import fitpipe
from fitpipe import limits


def parse() -> argparse.Namespace:
    parser = bench_stream.file_arguments(
        argparse.ArgumentParser(description=__doc__.split("\n")[0])
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-shuffle", action="store_true", help="fit with shuffle=False")
    return parser.parse_args()


def write(args: argparse.Namespace) -> tuple[str, fitpipe.Schema]:
    path, features = bench_stream.write(args)
    return path, fitpipe.Schema(features=features, targets="y")


def route(
    path: str, schema: fitpipe.Schema, args: argparse.Namespace, limit: int, blocks: bool
) -> Callable[[int], None]:
    """A trainer warmed up on the route; returns ``fit(epochs)`` on it, under its settings."""
    inputs = keras.Input((args.features,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(hidden)))
    trainer.compile(optimizer="adam", loss="mse")

    def fit(epochs: int) -> None:
        saved = limits.RESIDENT_BYTES_LIMIT, limits.STREAM_IN_BLOCKS
        limits.RESIDENT_BYTES_LIMIT, limits.STREAM_IN_BLOCKS = limit, blocks
        try:
            trainer.fit(
                path,
                schema=schema,
                batch_size=args.batch,
                epochs=epochs,
                verbose=0,
                shuffle=not args.no_shuffle,
            )
        finally:
            limits.RESIDENT_BYTES_LIMIT, limits.STREAM_IN_BLOCKS = saved

    fit(1)
    return fit


def main() -> None:
    args = parse()
    path, schema = write(args)
    routes = {
        "in memory": route(path, schema, args, 1 << 40, True),
        "streamed, tf.data": route(path, schema, args, 0, False),
        "streamed, blocks": route(path, schema, args, 0, True),
    }
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in routes}
    samples = args.rows * args.epochs
    for _ in range(args.rounds):
        for name, fit in routes.items():
            start = grid.now()
            fit(args.epochs)
            wall, cpu = grid.since(start)
            rates[name].append((samples / wall, samples / cpu))
    print(
        f"{args.rows} rows x {args.features} features, batch {args.batch}, row groups of "
        f"{args.row_group}, {args.epochs}-epoch fits, shuffle={not args.no_shuffle}, "
        f"{args.rounds} rounds; samples/s median (min-max)"
    )
    memory = [statistics.median(r[i] for r in rates["in memory"]) for i in (0, 1)]
    for name, runs in rates.items():
        cells = []
        for i, clock in enumerate(("wall", "CPU")):
            values = [r[i] for r in runs]
            median = statistics.median(values)
            cells.append(
                f"{median / 1e3:,.0f}k ({min(values) / 1e3:,.0f}-{max(values) / 1e3:,.0f}k) "
                f"{clock}, {median / memory[i]:.2f}x in memory"
            )
        print(f"{name:20s} " + "; ".join(cells))


if __name__ == "__main__":
    main()
