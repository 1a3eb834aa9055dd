"""Batch inference from Parquet: fitpipe's ``predict`` against the routes Keras users take.

A Parquet file of an ``id`` column, ``--features`` feature columns and a target is
predicted by a model of the grid (``xla_cpu.build``), and the predictions written with the
ids to a Parquet file, or returned as arrays. Routes, each given the same model's weights,
one warm-up call each, then ``--repeats`` rounds in turns (CPU and wall seconds of the
process, medians):

- Keras, pandas: ``pandas.read_parquet`` -> NumPy -> ``model.predict`` -> ``pyarrow`` write;
- Keras, pyarrow: ``pyarrow.parquet.read_table`` -> stacked columns -> the same;
- Keras, pandas, ``steps_per_execution=32`` (its best predict setting on CPU here);
- fitpipe, ``output=``: ``Trainer.predict(path, schema=..., output=...)``, streamed to the
  file chunk by chunk with the ids;
- fitpipe, arrays: ``Trainer.predict(path, schema=...)`` (a held file's rows are kept for the
  calls that follow, so its timed calls do not read the file again);
- fitpipe, first: the arrays route's first call on a fresh trainer (the file read,
  converted and the loop traced): one figure per round.

Usage:

    python benchmarks/batch_inference.py --rows 640000 --features 32 --batch 1024 --model mlp
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from xla_cpu import build, cell_arguments

import fitpipe


def write_file(args: argparse.Namespace, path: str) -> list[str]:
    """The input file (row groups of 65,536 rows); returns the feature columns' names."""
    rng = np.random.default_rng(0)
    shape = (args.rows, args.features)
    values = rng.standard_normal(shape, dtype=np.float32)
    if args.model == "text":
        values = rng.integers(0, 1000, shape).astype(np.int32)
    columns = [f"f{i}" for i in range(args.features)]
    table = pa.table(
        {
            "id": np.arange(args.rows, dtype=np.int64),
            **{name: values[:, i] for i, name in enumerate(columns)},
            "y": rng.standard_normal(args.rows, dtype=np.float32),
        }
    )
    pq.write_table(table, path, row_group_size=65536)
    return columns


def model(args: argparse.Namespace, steps: int = 1) -> keras.Model:
    keras.utils.set_random_seed(0)
    made = build(args.features, args.model)
    made.compile("adam", "mse", steps_per_execution=steps)
    return made


def routes(args: argparse.Namespace, path: str, columns: list[str]) -> dict[str, Any]:
    """Each route as ``out_path -> None``."""
    dtype = np.int32 if args.model == "text" else np.float32
    plain, best = model(args), model(args, 32)
    trainer = fitpipe.Trainer(model(args))
    schema = fitpipe.Schema(features=columns, targets="y", passthrough=["id"])
    batch = args.batch

    def keras_pandas(made: keras.Model, out: str) -> None:
        frame = pd.read_parquet(path)
        predicted = made.predict(frame[columns].to_numpy(dtype), batch_size=batch, verbose=0)
        pq.write_table(pa.table({"id": frame["id"].to_numpy(), "out": predicted[:, 0]}), out)

    def keras_arrow(out: str) -> None:
        table = pq.read_table(path, columns=["id", *columns])
        x = np.stack([table.column(name).to_numpy() for name in columns], axis=1)
        predicted = plain.predict(x, batch_size=batch, verbose=0)
        pq.write_table(pa.table({"id": table.column("id"), "out": predicted[:, 0]}), out)

    return {
        "Keras, pandas": lambda out: keras_pandas(plain, out),
        "Keras, pyarrow": keras_arrow,
        "Keras, pandas, 32 a call": lambda out: keras_pandas(best, out),
        "fitpipe, output=": lambda out: trainer.predict(
            path, schema=schema, batch_size=batch, output=out, verbose=0
        ),
        "fitpipe, arrays": lambda out: trainer.predict(
            path, schema=schema, batch_size=batch, verbose=0
        ),
    }


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return time.process_time() - cpu, time.perf_counter() - wall


def first_call(args: argparse.Namespace, path: str, columns: list[str]) -> tuple[float, float]:
    """A fresh trainer's first ``predict`` of the file (read, converted, traced)."""
    trainer = fitpipe.Trainer(model(args))
    schema = fitpipe.Schema(features=columns, targets="y", passthrough=["id"])
    return timed(lambda: trainer.predict(path, schema=schema, batch_size=args.batch, verbose=0))


def main() -> None:
    parser = cell_arguments(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "in.parquet")
        columns = write_file(args, path)
        calls = routes(args, path, columns)
        out = os.path.join(folder, "out.parquet")
        for call in calls.values():
            call(out)  # warm-up: traces, and the first read of the file
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
        figures["fitpipe, first"] = []
        for _ in range(args.repeats):
            for name, call in calls.items():
                figures[name].append(timed(functools.partial(call, out)))
            figures["fitpipe, first"].append(first_call(args, path, columns))
    cell = f"{args.rows} x {args.features}, batch {args.batch}, {args.model}"
    print(f"{cell}: rows per CPU second and per wall second, medians of {args.repeats}")
    base = statistics.median(cpu for cpu, _ in figures["Keras, pandas"])
    for name, runs in figures.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(
            f"{name:26s} {args.rows / cpu / 1e3:8.0f}k CPU  {args.rows / wall / 1e3:8.0f}k wall"
            f"  ({base / cpu:.2f}x Keras, pandas, CPU)",
            flush=True,
        )


if __name__ == "__main__":
    main()
