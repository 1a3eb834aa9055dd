"""fit/predict throughput of fitpipe against Keras 3, per input form, in one process.

Same model, data and optimizer as ../shared/bench/keras_baseline.py: an MLP 32 -> 64 -> 64 -> 1,
Adam, MSE. Every row prints samples/s for Keras and fitpipe and their ratio; the compute-only
limit (the same XLA step in a compiled loop over tensors already in memory) is printed last,
with fitpipe's NumPy rows also as a fraction of it.

Run: python benchmarks/bench_fit.py --n 64000 --batch 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grid  # benchmarks/grid.py, beside this script
import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

import fitpipe
from fitpipe import limits

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=64000)
parser.add_argument("--features", type=int, default=32)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--only", default="", help="run only rows whose name contains this")
args = parser.parse_args()

rng = np.random.default_rng(0)
X = rng.standard_normal((args.n, args.features), dtype=np.float32)
Y = (X[:, :1] * 0.5 + rng.standard_normal((args.n, 1), dtype=np.float32) * 0.1).astype(np.float32)
STEPS = -(-args.n // args.batch)
COLUMNS = [f"f{i}" for i in range(args.features)]
SCHEMA = fitpipe.Schema(features=COLUMNS, targets="y")
TABLE = pa.table({**{c: X[:, i] for i, c in enumerate(COLUMNS)}, "y": Y[:, 0]})
FOLDER = tempfile.mkdtemp()
PARQUET = os.path.join(FOLDER, "data.parquet")
pq.write_table(TABLE, PARQUET, row_group_size=65536)


def model(**compile_kwargs: Any) -> keras.Model:
    """The benchmark model, compiled (Keras' default compile arguments unless given)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((args.features,), name="x")
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    built = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    built.compile("adam", "mse", **compile_kwargs)
    return built


def batches(epochs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A generator of batches, enough for ``epochs`` epochs."""
    for _ in range(epochs):
        for i in range(0, args.n, args.batch):
            yield X[i : i + args.batch], Y[i : i + args.batch]


class Batches(keras.utils.PyDataset):
    """The same batches as a PyDataset."""

    def __len__(self) -> int:
        return STEPS

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return X[i * args.batch : (i + 1) * args.batch], Y[i * args.batch : (i + 1) * args.batch]


def dataset() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(args.batch).prefetch(tf.data.AUTOTUNE)


def table_to_numpy(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    xs = np.stack([table.column(c).to_numpy() for c in COLUMNS], axis=1)
    return xs, table.column("y").to_numpy()[:, None]


def pandas_route(fit: Callable[..., Any], epochs: int) -> None:
    frame = pd.read_parquet(PARQUET)
    fit(
        frame[COLUMNS].to_numpy(),
        frame[["y"]].to_numpy(),
        batch_size=args.batch,
        epochs=epochs,
        verbose=0,
    )


def timed(fn: Callable[[int], Any], samples_per_epoch: int) -> float:
    fn(1)  # warm-up: tracing and XLA compilation
    start = time.perf_counter()
    fn(args.epochs)
    return args.epochs * samples_per_epoch / (time.perf_counter() - start)


def streamed(run: Callable[[], Any]) -> Any:
    """Runs with Parquet always streamed by row group (the path of data over 256 MiB)."""
    held = limits.RESIDENT_BYTES_LIMIT
    limits.RESIDENT_BYTES_LIMIT = 0
    try:
        return run()
    finally:
        limits.RESIDENT_BYTES_LIMIT = held


def fit_case(
    keras_fit: Callable[[keras.Model, int], Any],
    fitpipe_fit: Callable[[fitpipe.Trainer, int], Any],
    keras_kwargs: dict[str, Any] | None = None,
    fitpipe_kwargs: dict[str, Any] | None = None,
) -> tuple[float, float]:
    keras_model = model(**(keras_kwargs or {}))
    trainer = fitpipe.Trainer(model())
    trainer.compile("adam", "mse", **(fitpipe_kwargs or {}))
    k = timed(lambda e: keras_fit(keras_model, e), args.n)
    f = timed(lambda e: fitpipe_fit(trainer, e), args.n)
    return k, f


B, N = args.batch, args.n
CASES: dict[str, Callable[[], tuple[float, float]]] = {
    "numpy": lambda: fit_case(
        lambda m, e: m.fit(X, Y, batch_size=B, epochs=e, verbose=0),
        lambda t, e: t.fit(X, Y, batch_size=B, epochs=e, verbose=0),
    ),
    "numpy shuffle=False": lambda: fit_case(
        lambda m, e: m.fit(X, Y, batch_size=B, epochs=e, verbose=0, shuffle=False),
        lambda t, e: t.fit(X, Y, batch_size=B, epochs=e, verbose=0, shuffle=False),
    ),
    "numpy steps_per_execution=auto": lambda: fit_case(
        lambda m, e: m.fit(X, Y, batch_size=B, epochs=e, verbose=0),
        lambda t, e: t.fit(X, Y, batch_size=B, epochs=e, verbose=0),
        fitpipe_kwargs={"steps_per_execution": "auto"},
    ),
    "numpy spe=32 both, jit both": lambda: fit_case(
        lambda m, e: m.fit(X, Y, batch_size=B, epochs=e, verbose=0),
        lambda t, e: t.fit(X, Y, batch_size=B, epochs=e, verbose=0),
        keras_kwargs={"steps_per_execution": 32, "jit_compile": True},
        fitpipe_kwargs={"steps_per_execution": 32, "jit_compile": True},
    ),
    "dict": lambda: fit_case(
        lambda m, e: m.fit({"x": X}, Y, batch_size=B, epochs=e, verbose=0),
        lambda t, e: t.fit({"x": X}, Y, batch_size=B, epochs=e, verbose=0),
    ),
    "numpy validation_split=0.2": lambda: fit_case(
        lambda m, e: m.fit(X, Y, batch_size=B, epochs=e, verbose=0, validation_split=0.2),
        lambda t, e: t.fit(X, Y, batch_size=B, epochs=e, verbose=0, validation_split=0.2),
    ),
    "numpy, y 1-D (as Parquet gives)": lambda: fit_case(
        lambda m, e: m.fit(X, Y[:, 0], batch_size=B, epochs=e, verbose=0),
        lambda t, e: t.fit(X, Y[:, 0], batch_size=B, epochs=e, verbose=0),
    ),
    "generator": lambda: fit_case(
        lambda m, e: m.fit(batches(e), steps_per_epoch=STEPS, epochs=e, verbose=0),
        lambda t, e: t.fit(batches(e), steps_per_epoch=STEPS, epochs=e, verbose=0),
    ),
    "PyDataset workers=1": lambda: fit_case(
        lambda m, e: m.fit(Batches(), epochs=e, verbose=0),
        lambda t, e: t.fit(Batches(), epochs=e, verbose=0),
    ),
    "PyDataset workers=2 threads": lambda: fit_case(
        lambda m, e: m.fit(Batches(workers=2), epochs=e, verbose=0),
        lambda t, e: t.fit(Batches(workers=2), epochs=e, verbose=0),
    ),
    "tf.data (prebuilt)": lambda: fit_case(
        lambda m, e: m.fit(dataset(), epochs=e, verbose=0),
        lambda t, e: t.fit(dataset(), epochs=e, verbose=0),
    ),
    "Arrow table (Keras: ->numpy)": lambda: fit_case(
        lambda m, e: m.fit(*table_to_numpy(TABLE), batch_size=B, epochs=e, verbose=0),
        lambda t, e: t.fit(TABLE, schema=SCHEMA, batch_size=B, epochs=e, verbose=0),
    ),
    "Parquet (Keras: pandas->numpy)": lambda: fit_case(
        lambda m, e: pandas_route(m.fit, e),
        lambda t, e: t.fit(PARQUET, schema=SCHEMA, batch_size=B, epochs=e, verbose=0),
    ),
    "Parquet streamed (Keras: pandas)": lambda: fit_case(
        lambda m, e: pandas_route(m.fit, e),
        lambda t, e: streamed(
            lambda: t.fit(PARQUET, schema=SCHEMA, batch_size=B, epochs=e, verbose=0)
        ),
    ),
}


def predict_case() -> tuple[float, float]:
    keras_model = model()
    trainer = fitpipe.Trainer(model())
    trainer.compile("adam", "mse")
    k = timed(lambda e: [keras_model.predict(X, verbose=0) for _ in range(e)], N)
    f = timed(lambda e: [trainer.predict(X, verbose=0) for _ in range(e)], N)
    return k, f


def limit() -> float:
    """The compute-only limit: the same XLA train step in a compiled loop, no pipeline."""
    return grid.limit(model, X, Y, B, N, args.epochs, jit=True)[0]  # samples per wall second


def main() -> None:
    print(
        f"n={N} batch={B} features={args.features} epochs={args.epochs} "
        f"tensorflow={tf.__version__} keras={keras.__version__}"
    )
    print(f"{'form':34s} {'keras/s':>10s} {'fitpipe/s':>10s} {'ratio':>7s}")
    results: dict[str, tuple[float, float]] = {}
    rows = dict(CASES, **{"predict (default batch)": predict_case})
    for name, case in rows.items():
        if args.only and args.only not in name:
            continue
        k, f = case()
        results[name] = (k, f)
        print(f"{name:34s} {k:10.0f} {f:10.0f} {f / k:7.2f}x", flush=True)
    if args.only and args.only not in "limit":
        return
    cap = limit()
    print(f"{'LIMIT: compiled loop, no pipeline':34s} {cap:10.0f}")
    for name in ("numpy", "numpy steps_per_execution=auto"):
        if name in results:
            print(f"fitpipe {name} / limit: {results[name][1] / cap:.2f}")
    for parquet in ("Parquet (Keras: pandas->numpy)", "Parquet streamed (Keras: pandas)"):
        for numpy_row in ("numpy", "numpy, y 1-D (as Parquet gives)"):
            if parquet in results and numpy_row in results:
                ratio = results[parquet][1] / results[numpy_row][1]
                print(f"fitpipe {parquet.split(' (')[0]} / fitpipe {numpy_row}: {ratio:.2f}")


if __name__ == "__main__":
    main()
