"""Seconds per short call (a few steps) on inputs read in blocks, against Keras in the same process.

Scripts call ``fit``, ``evaluate`` and ``predict`` in loops of a few steps (a training loop
with its own schedule, a validation every so often, a live feed). What such a call costs
beside its steps is fixed work: building the pipeline, starting and stopping its reading
thread. A ``fit`` of a generator with ``steps_per_epoch`` once spent a second waiting for a
thread that waited inside the generator (sixteenth session); this benchmark times each kind
of short call on fitpipe and on Keras at its defaults, in turns, and prints the ratio.

Inputs (``--rows`` x ``--features`` float32, batch ``--batch``): an endless generator, a
Parquet file streamed (``limits.RESIDENT_BYTES_LIMIT`` at 0; Keras reads it with pandas,
as its users do), NumPy arrays over the limit, and the same arrays held in memory (the
limit at its default). Each call is made twice first (tracing),
then ``--calls`` times; figures are the median and spread of wall milliseconds per call.

Run: python benchmarks/short_calls.py --rows 4096 --features 8 --batch 32 --calls 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import fitpipe
from fitpipe import limits

#: The in-memory limit as fitpipe sets it (``main`` lowers it to 0 for the streamed cases).
DEFAULT_LIMIT = limits.RESIDENT_BYTES_LIMIT


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=7)
    return parser.parse_args()


def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    built = keras.Sequential([keras.layers.Dense(16), keras.layers.Dense(1)])
    built.compile(optimizer="sgd", loss="mse")
    return built


def timed(call: Callable[[], Any], calls: int) -> list[float]:
    call()
    call()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def cases(args: argparse.Namespace) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """``name: (fitpipe call, Keras call)``, each on its own model."""
    rng = np.random.default_rng(0)
    x = rng.random((args.rows, args.features), dtype=np.float32)
    y = x.mean(axis=1, keepdims=True)
    batch, steps = args.batch, args.steps

    def endless() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            for lo in range(0, args.rows - batch + 1, batch):
                yield x[lo : lo + batch], y[lo : lo + batch]

    columns = [f"f{i}" for i in range(args.features)]
    path = os.path.join(tempfile.mkdtemp(), "data.parquet")
    table = pa.table({**{c: x[:, i] for i, c in enumerate(columns)}, "y": y[:, 0]})
    pq.write_table(table, path, row_group_size=max(batch, args.rows // 4))
    schema = fitpipe.Schema(features=columns, targets="y")

    def parquet_arrays() -> tuple[np.ndarray, np.ndarray]:
        frame = pd.read_parquet(path)
        return frame[columns].to_numpy(), frame[["y"]].to_numpy()

    made: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    gen_f, gen_k = endless(), endless()
    trainer, plain = fitpipe.Trainer(model()), model()
    trainer.compile(optimizer="sgd", loss="mse")
    made[f"generator, fit {steps} steps"] = (
        lambda: trainer.fit(gen_f, steps_per_epoch=steps, verbose=0),
        lambda: plain.fit(gen_k, steps_per_epoch=steps, verbose=0, shuffle=False),
    )
    made[f"generator, evaluate {steps} steps"] = (
        lambda: trainer.evaluate(gen_f, steps=steps, verbose=0),
        lambda: plain.evaluate(gen_k, steps=steps, verbose=0),
    )
    p_trainer, p_plain = fitpipe.Trainer(model()), model()
    p_trainer.compile(optimizer="sgd", loss="mse")
    made[f"Parquet, fit {steps} steps x 2 epochs"] = (
        lambda: p_trainer.fit(
            path, schema=schema, batch_size=batch, steps_per_epoch=steps, epochs=2, verbose=0
        ),
        lambda: p_plain.fit(
            *parquet_arrays(), batch_size=batch, steps_per_epoch=steps, epochs=2, verbose=0
        ),
    )
    made["Parquet, fit the whole file"] = (
        lambda: p_trainer.fit(path, schema=schema, batch_size=batch, verbose=0),
        lambda: p_plain.fit(*parquet_arrays(), batch_size=batch, verbose=0),
    )
    made[f"NumPy over the limit, fit {steps} steps"] = (
        lambda: trainer.fit(x, y, batch_size=batch, steps_per_epoch=steps, verbose=0),
        lambda: plain.fit(x, y, batch_size=batch, steps_per_epoch=steps, verbose=0),
    )
    made["NumPy over the limit, predict all"] = (
        lambda: trainer.predict(x, batch_size=batch, verbose=0),
        lambda: plain.predict(x, batch_size=batch, verbose=0),
    )
    made[f"NumPy held in memory, fit {steps} steps"] = (
        held(lambda: trainer.fit(x, y, batch_size=batch, steps_per_epoch=steps, verbose=0)),
        lambda: plain.fit(x, y, batch_size=batch, steps_per_epoch=steps, verbose=0),
    )
    made["NumPy held in memory, evaluate all"] = (
        held(lambda: trainer.evaluate(x, y, batch_size=batch, verbose=0)),
        lambda: plain.evaluate(x, y, batch_size=batch, verbose=0),
    )
    made["NumPy held in memory, predict all"] = (
        held(lambda: trainer.predict(x, batch_size=batch, verbose=0)),
        lambda: plain.predict(x, batch_size=batch, verbose=0),
    )
    return made


def held(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` with the in-memory limit at its default: NumPy arrays held, not streamed."""

    def run() -> Any:
        limits.RESIDENT_BYTES_LIMIT = DEFAULT_LIMIT
        try:
            return call()
        finally:
            limits.RESIDENT_BYTES_LIMIT = 0

    return run


def main() -> None:
    args = parse()
    limits.RESIDENT_BYTES_LIMIT = 0  # Parquet and arrays streamed (read in blocks)
    print(f"{args.rows} x {args.features}, batch {args.batch}; ms per call, median (min-max)")
    print("| call | fitpipe | Keras defaults | Keras / fitpipe |")
    print("|---|---|---|---|")
    for name, (ours, theirs) in cases(args).items():
        mine, keras_ = timed(ours, args.calls), timed(theirs, args.calls)

        def text(seconds: list[float]) -> str:
            low, mid, high = min(seconds), statistics.median(seconds), max(seconds)
            return f"{mid * 1000:.1f} ({low * 1000:.1f}-{high * 1000:.1f})"

        ratio = statistics.median(keras_) / statistics.median(mine)
        print(f"| {name} | {text(mine)} | {text(keras_)} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
