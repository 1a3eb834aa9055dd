"""Streamed Parquet's input pipeline alone against pyarrow's own read-and-convert, one process.

The physical limit of streaming a Parquet file on this machine is what pyarrow itself does
with the same columns: ``ParquetFile.iter_batches`` and each column to NumPy, stacked into
the ``(rows, features)`` matrix the model takes (the layout fitpipe's batches have). This
script writes a file of ``--rows`` rows of ``--features`` float32 columns and a target
(row groups of ``--row-group`` rows), then times, in the same process, epoch after epoch:

- ``pyarrow``: ``iter_batches`` of a row group's rows, ``to_numpy`` per column, ``np.stack``;
- ``pyarrow (no stack)``: the same without the stack (column vectors only);
- ``fitpipe streamed``: fitpipe's streamed pipeline (``limits.RESIDENT_BYTES_LIMIT = 0``)
  for ``--batch``, consumed by a ``tf.data`` reduce that touches every batch (no model
  step): what a compiled train loop would be fed; ``shuffled``: the same with
  ``shuffle=True`` (``fit``'s default: row groups mixed in a shuffle buffer);
- ``fitpipe streamed in blocks``: what ``fit`` takes instead (``limits.STREAM_IN_BLOCKS``):
  the converted blocks, read on a thread, each held as tensors while a compiled loop
  slices its batches (touching every batch, no model step); ``shuffled`` as above;
- ``fitpipe in memory``: the rows held in memory, batch after batch sliced by the same
  graph function fitpipe's compiled loop uses (the in-memory path the streamed one is
  compared with in ``fit``).

Each figure is rows per second of wall time and of the process's CPU time (all threads),
the median of ``--repeats`` epochs after one warm-up epoch. The issue's goal: streamed
``>= 0.8x`` pyarrow's rate.

Run: python benchmarks/bench_stream.py --rows 640000 --features 32 --batch 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grid  # benchmarks/grid.py, beside this script
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

import fitpipe
from fitpipe.training.block_cursor import BlockCursor


def file_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The Parquet file's arguments, shared with ``bench_stream_fit.py``."""
    parser.add_argument("--rows", type=int, default=640_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--row-group", type=int, default=65536)
    return parser


def parse() -> argparse.Namespace:
    parser = file_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def write(args: argparse.Namespace) -> tuple[str, list[str]]:
    """A random float32 Parquet file of ``args``' size; returns its path and feature columns.

    The target ``y`` is the features' mean, so a model can learn it.
    """
    rng = np.random.default_rng(0)
    x = rng.random((args.rows, args.features), dtype=np.float32)
    columns = [f"f{i}" for i in range(args.features)]
    table = pa.table({**{c: x[:, i] for i, c in enumerate(columns)}, "y": x.mean(axis=1)})
    path = os.path.join(tempfile.mkdtemp(), "data.parquet")
    pq.write_table(table, path, row_group_size=args.row_group)
    return path, columns


def pyarrow_epoch(path: str, columns: list[str], row_group: int, stack: bool) -> Callable[[], int]:
    def epoch() -> int:
        rows = 0
        file = pq.ParquetFile(path)
        for batch in file.iter_batches(batch_size=row_group, columns=[*columns, "y"]):
            vectors = [c.to_numpy() for c in batch.columns]
            if stack:
                x = np.stack(vectors[:-1], axis=1)
                rows += x.shape[0]
            else:
                rows += vectors[0].shape[0]
        return rows

    return epoch


def streamed_epoch(
    path: str, columns: list[str], batch: int, shuffle: bool = False
) -> Callable[[], int]:
    schema = fitpipe.Schema(features=columns, targets="y")
    with grid.resident_limit(0):
        pipeline = fitpipe.pipeline.adapt(path, schema=schema, batch_size=batch, shuffle=shuffle)
    assert pipeline.rows is None, "the file was not streamed"
    dataset = pipeline.dataset

    def count(total: tf.Tensor, element: tuple[tf.Tensor, ...]) -> tf.Tensor:
        return total + tf.cast(tf.shape(element[0])[0], tf.int64)

    return lambda: int(dataset.reduce(tf.constant(0, tf.int64), count))


def blocks_epoch(
    path: str, columns: list[str], batch: int, shuffle: bool = False
) -> Callable[[], int]:
    """Streamed in blocks, as ``fit`` takes it: batches sliced from each block in a loop."""
    schema = fitpipe.Schema(features=columns, targets="y")
    with grid.resident_limit(0):
        pipeline = fitpipe.pipeline.adapt(path, schema=schema, batch_size=batch, shuffle=shuffle)
    row_blocks = pipeline.row_blocks
    assert row_blocks is not None, "the file is not streamed in blocks"
    first = BlockCursor(row_blocks(), pipeline.element_spec, pipeline.element_spec)
    fetch = first.rows.fetch_function()
    first.close()

    @tf.function(reduce_retracing=True)
    def loop(arguments: object, start: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        def body(i: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x = tf.nest.flatten(fetch(arguments, start + i).get_value())[0]
            return i + 1, total + tf.cast(tf.shape(x)[0], tf.int64)

        _, total = tf.while_loop(lambda i, _: i < n, body, (0, tf.constant(0, tf.int64)))
        return total

    first.trace(loop)

    def epoch() -> int:
        cursor, total = BlockCursor(row_blocks(), pipeline.element_spec, pipeline.element_spec), [0]

        def call(c: BlockCursor, m: int) -> tuple[int, None]:
            total[0] += int(loop(c.arguments, tf.constant(c.position), tf.constant(m)))
            c.position += m
            return m, None

        while cursor.run(call, 1 << 30, False)[0]:  # type: ignore[arg-type]
            pass
        return total[0]

    return epoch


def in_memory_epoch(path: str, columns: list[str], batch: int) -> Callable[[], int]:
    schema = fitpipe.Schema(features=columns, targets="y")
    with grid.resident_limit(1 << 40):  # held in memory whatever its size
        pipeline = fitpipe.pipeline.adapt(path, schema=schema, batch_size=batch)
    rows = pipeline.rows
    assert rows is not None, "the file was not held in memory"
    fetch = rows.fetch_function()

    @tf.function
    def loop(arguments: object, n: tf.Tensor) -> tf.Tensor:
        def body(i: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x = tf.nest.flatten(fetch(arguments, i).get_value())[0]
            return i + 1, total + tf.cast(tf.shape(x)[0], tf.int64)

        _, total = tf.while_loop(lambda i, _: i < n, body, (0, tf.constant(0, tf.int64)))
        return total

    n = tf.constant(rows.num_batches)
    return lambda: int(loop(rows.loop_arguments(0), n))


def timed(epoch: Callable[[], int], rows: int, repeats: int) -> tuple[float, float]:
    assert epoch() == rows  # warm-up (traces), and every row delivered once
    walls, cpus = [], []
    for _ in range(repeats):
        start = grid.now()
        assert epoch() == rows
        wall, cpu = grid.since(start)
        walls.append(rows / wall)
        cpus.append(rows / cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    args = parse()
    path, columns = write(args)
    runs = {
        "pyarrow": pyarrow_epoch(path, columns, args.row_group, stack=True),
        "pyarrow (no stack)": pyarrow_epoch(path, columns, args.row_group, stack=False),
        "fitpipe streamed": streamed_epoch(path, columns, args.batch),
        "fitpipe streamed, shuffled": streamed_epoch(path, columns, args.batch, shuffle=True),
        "fitpipe streamed in blocks": blocks_epoch(path, columns, args.batch),
        "fitpipe streamed in blocks, shuffled": blocks_epoch(path, columns, args.batch, True),
        "fitpipe in memory": in_memory_epoch(path, columns, args.batch),
    }
    print(
        f"{args.rows} rows x {args.features} float32 features, row groups of {args.row_group}, "
        f"batch {args.batch}, median of {args.repeats} epochs; rows/s (wall, CPU)"
    )
    rates = {name: timed(epoch, args.rows, args.repeats) for name, epoch in runs.items()}
    base = rates["pyarrow"]
    for name, (wall, cpu) in rates.items():
        print(
            f"{name:38s} {wall:>12,.0f} wall {cpu:>12,.0f} CPU"
            f"   vs pyarrow {wall / base[0]:.2f}x wall {cpu / base[1]:.2f}x CPU"
        )


if __name__ == "__main__":
    main()
