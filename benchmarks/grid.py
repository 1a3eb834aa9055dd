"""The speed grid: fitpipe at its defaults against Keras 3 at its defaults and at its best.

Every cell (rows x features x batch x model x input) runs in a fresh process, ``--repeats``
times; the table reports the median of each figure and its spread (min-max over repeats).
In each run of a cell, on the same data and model:

- Keras at its defaults (``jit_compile="auto"``, one step per call) and at each of
  ``jit_compile`` on/off x ``steps_per_execution`` 1/32; "best" is the fastest of the four;
- fitpipe at its defaults, with the tuner's choices (steps per call, XLA) read back;
- the compute-only limit: the same train step in a compiled loop over tensors already in
  memory, best of XLA and no XLA.

Throughput is samples/s of ``--epochs`` epochs after a warm-up epoch. ``first_step`` is the
time from the call of ``fit`` to the end of the first batch of the warm-up call (the first
epoch's start-up cost: tracing, compilation, reading); ``run3`` is the wall time of a fresh
3-epoch ``fit`` on a fresh model (what a short script pays in total).

Run the whole grid (hours on 2 cores) or a slice of it:

    python benchmarks/grid.py --rows 64000 640000 --features 32 --batch 256 \
        --models mlp --inputs numpy parquet --repeats 3

One cell in this process, printing one JSON line (what the driver runs per child):

    python benchmarks/grid.py --cell 64000 32 256 mlp numpy
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

ROWS = (64_000, 640_000, 2_000_000)
FEATURES = (32, 512)
BATCHES = (32, 256, 1024)
MODELS = ("mlp", "conv", "text")
INPUTS = ("numpy", "parquet", "parquet-streamed", "generator")
VOCABULARY = 1000


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--features", type=int, nargs="+", default=list(FEATURES))
    parser.add_argument("--batch", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=INPUTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cell", nargs=5, metavar=("ROWS", "FEATURES", "BATCH", "MODEL", "INPUT"))
    parser.add_argument("--json", help="also write every run's figures to this file")
    return parser.parse_args()


# ----------------------------------------------------------------------------------------
# One cell, in this process.
# ----------------------------------------------------------------------------------------


def run_cell(rows: int, features: int, batch: int, kind: str, source: str, epochs: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import fitpipe
    from fitpipe import limits

    rng = np.random.default_rng(0)
    if kind == "text":
        x = rng.integers(0, VOCABULARY, (rows, features), dtype=np.int64).astype(np.int32)
        y = (x[:, :1] % 2).astype(np.float32)
    else:
        x = rng.standard_normal((rows, features), dtype=np.float32)
        y = x[:, :1] * 0.5 + rng.standard_normal((rows, 1), dtype=np.float32) * 0.1
    columns = [f"f{i}" for i in range(features)]
    schema = fitpipe.Schema(features=columns, targets="y")
    path = ""
    if source.startswith("parquet"):
        path = os.path.join(tempfile.mkdtemp(), "data.parquet")
        table = pa.table({**{c: x[:, i] for i, c in enumerate(columns)}, "y": y[:, 0]})
        pq.write_table(table, path, row_group_size=65536)
        del table
    steps = -(-rows // batch)

    def build(**compile_kwargs: Any) -> keras.Model:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((features,), dtype="int32" if kind == "text" else "float32")
        if kind == "mlp":
            hidden = keras.layers.Dense(64, activation="relu")(inputs)
            hidden = keras.layers.Dense(64, activation="relu")(hidden)
        elif kind == "conv":
            hidden = keras.layers.Reshape((features, 1))(inputs)
            hidden = keras.layers.Conv1D(16, 5, activation="relu")(hidden)
            hidden = keras.layers.GlobalAveragePooling1D()(hidden)
        else:
            hidden = keras.layers.Embedding(VOCABULARY, 16)(inputs)
            hidden = keras.layers.GlobalAveragePooling1D()(hidden)
        built = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        built.compile("adam", "mse", **compile_kwargs)
        return built

    def generator(count: int) -> Iterator[tuple[Any, Any]]:
        for _ in range(count):
            for i in range(0, rows, batch):
                yield x[i : i + batch], y[i : i + batch]

    def keras_fit(model: keras.Model, count: int, callbacks: list) -> None:
        if source == "generator":
            model.fit(
                generator(count),
                steps_per_epoch=steps,
                epochs=count,
                verbose=0,
                callbacks=callbacks,
            )
            return
        xs, ys = x, y
        if path:  # what a Keras user does with Parquet: pandas, then NumPy
            import pandas as pd

            frame = pd.read_parquet(path)
            xs, ys = frame[columns].to_numpy(), frame[["y"]].to_numpy()
        model.fit(xs, ys, batch_size=batch, epochs=count, verbose=0, callbacks=callbacks)

    def fitpipe_fit(trainer: fitpipe.Trainer, count: int, callbacks: list) -> None:
        kwargs = {"epochs": count, "verbose": 0, "callbacks": callbacks}
        if source == "generator":
            trainer.fit(generator(count), steps_per_epoch=steps, **kwargs)
        elif path:
            held = limits.RESIDENT_BYTES_LIMIT
            if source == "parquet-streamed":
                limits.RESIDENT_BYTES_LIMIT = 0
            try:
                trainer.fit(path, schema=schema, batch_size=batch, **kwargs)
            finally:
                limits.RESIDENT_BYTES_LIMIT = held
        else:
            trainer.fit(x, y, batch_size=batch, **kwargs)

    def measure(fit: Callable[[Any, int, list], None], make: Callable[[], Any]) -> dict:
        first = FirstStep()
        runner = make()
        start = time.perf_counter()
        fit(runner, 1, [first])
        warm = time.perf_counter() - start
        start = time.perf_counter()
        fit(runner, epochs, [])
        rate = epochs * rows / (time.perf_counter() - start)
        fresh = make()
        start = time.perf_counter()
        fit(fresh, 3, [])
        return {
            "rate": rate,
            "first_step": first.seconds(),
            "warm": warm,
            "run3": time.perf_counter() - start,
            "runner": runner,
        }

    class FirstStep(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.begin = time.perf_counter()
            self.end: float | None = None

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.end is None:
                self.end = time.perf_counter()

        def seconds(self) -> float:
            return (self.end or float("nan")) - self.begin

    result: dict[str, Any] = {}
    for jit in (False, True):
        for spe in (1, 32):
            name = f"keras jit={int(jit)} spe={spe}"
            figures = measure(
                keras_fit, lambda j=jit, s=spe: build(jit_compile=j, steps_per_execution=s)
            )
            figures.pop("runner")
            result[name] = figures
    result["keras default"] = measure(keras_fit, build)
    result["keras default"].pop("runner")

    def make_trainer() -> fitpipe.Trainer:
        trainer = fitpipe.Trainer(build())
        trainer.compile("adam", "mse")
        return trainer

    fitpipe_figures = measure(fitpipe_fit, make_trainer)
    fitpipe_figures["tuner"] = tuner_choice(fitpipe_figures.pop("runner"))
    result["fitpipe"] = fitpipe_figures
    result["limit"] = max(limit(build, x, y, batch, rows, epochs, jit) for jit in (False, True))
    return result


def tuner_choice(trainer: Any) -> str:
    """What fitpipe settled on: steps per compiled call and whether the step uses XLA."""
    state = getattr(trainer, "_state", None)
    size = getattr(getattr(state, "fused", None), "size", "?")
    steps = [f for f in getattr(state, "functions", {}).values() if hasattr(f, "jit_compile")]
    jit = steps[0].jit_compile if steps else "?"
    return f"spe={size} xla={jit}"


def limit(
    build: Callable[..., Any], x: Any, y: Any, batch: int, rows: int, epochs: int, jit: bool
) -> float:
    """Samples/s of the same step in a compiled loop over tensors already in memory."""
    import keras
    import tensorflow as tf

    model = build()
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.MeanSquaredError()
    xs, ys = tf.constant(x), tf.constant(y)
    steps = rows // batch
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit)
    def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function
    def epoch() -> None:
        for i in tf.range(steps):
            step(xs[i * batch : (i + 1) * batch], ys[i * batch : (i + 1) * batch])

    epoch()
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return epochs * steps * batch / (time.perf_counter() - start)


# ----------------------------------------------------------------------------------------
# The driver: a fresh process per cell and repeat, medians and spreads.
# ----------------------------------------------------------------------------------------


def child(cell: tuple[Any, ...], epochs: int) -> dict:
    command = [sys.executable, __file__, "--epochs", str(epochs), "--cell", *map(str, cell)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"cell {cell} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    med = statistics.median(values) / scale
    low, high = min(values) / scale, max(values) / scale
    return f"{med:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def summarize(cell: tuple[Any, ...], runs: list[dict]) -> str:
    keras_names = [name for name in runs[0] if name.startswith("keras jit")]
    fit = [run["fitpipe"]["rate"] for run in runs]
    best = [max(run[name]["rate"] for name in keras_names) for run in runs]
    best_name = max(keras_names, key=lambda n: statistics.median(r[n]["rate"] for r in runs))
    default = [run["keras default"]["rate"] for run in runs]
    limits = [run["limit"] for run in runs]
    ratio_best = [f / b for f, b in zip(fit, best, strict=True)]
    ratio_default = [f / d for f, d in zip(fit, default, strict=True)]
    ratio_limit = [f / c for f, c in zip(fit, limits, strict=True)]
    first_fit = [run["fitpipe"]["first_step"] for run in runs]
    first_keras = [run["keras default"]["first_step"] for run in runs]
    run3_fit = [run["fitpipe"]["run3"] for run in runs]
    run3_best = [min(run[name]["run3"] for name in keras_names) for run in runs]
    tuner = sorted({run["fitpipe"]["tuner"] for run in runs})
    rows, features, batch, model, source = cell
    return (
        f"| {rows} | {features} | {batch} | {model} | {source} | {spread(fit, 1e3)}k "
        f"| {spread(best, 1e3)}k {best_name.replace('keras ', '')} | {spread(ratio_best, 1, 2)} "
        f"| {spread(ratio_default, 1, 2)} | {spread(ratio_limit, 1, 2)} "
        f"| {spread(first_fit, 1, 2)} / {spread(first_keras, 1, 2)} "
        f"| {statistics.median(b / f for f, b in zip(run3_fit, run3_best, strict=True)):.2f} "
        f"| {', '.join(tuner)} |"
    )


HEADER = (
    "| rows | features | batch | model | input | fitpipe samples/s | best Keras samples/s "
    "(setting) | vs best | vs default | vs limit | first step s fitpipe / Keras "
    "| 3-epoch run: best Keras time / fitpipe time | fitpipe tuner |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    args = parse()
    if args.cell:
        rows, features, batch, model, source = args.cell
        result = run_cell(int(rows), int(features), int(batch), model, source, args.epochs)
        print(json.dumps(result), flush=True)
        return
    import platform

    print(
        f"grid: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"epochs={args.epochs}, repeats={args.repeats}; median (min-max)"
    )
    print(HEADER, flush=True)
    record: dict[str, list[dict]] = {}
    for rows in args.rows:
        for features in args.features:
            for batch in args.batch:
                for model in args.models:
                    for source in args.inputs:
                        cell = (rows, features, batch, model, source)
                        runs = [child(cell, args.epochs) for _ in range(args.repeats)]
                        record[" ".join(map(str, cell))] = runs
                        print(summarize(cell, runs), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main()
