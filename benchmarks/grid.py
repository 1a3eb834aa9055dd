"""The speed grid: fitpipe at its defaults against Keras 3 at its defaults and at its best.

Every cell (rows x features x batch x model x input) runs in a fresh process, ``--repeats``
times; the table reports the median of each figure and its spread (min-max over repeats).
In each run of a cell, on the same data and model:

- Keras at its defaults (``jit_compile="auto"``, one step per call) and at each of
  ``jit_compile`` on/off x ``steps_per_execution`` 1/32; "best" is the fastest of the four;
- fitpipe at its defaults, with the tuner's choices (steps per call, XLA) read back;
- two compute-only limits, each a train step in a compiled loop over consecutive slices of
  tensors already in memory (no input pipeline, no shuffle), best of XLA and no XLA: the
  *bare* limit, a hand-written step (the model's forward pass, the loss, the gradient, the
  optimizer's update), and the *same-step* limit, the model's own ``train_step``, the step
  Keras and fitpipe both run (it also updates the loss tracker and the compiled metrics).
  What separates fitpipe from the same-step limit is its input and its loop; what separates
  the two limits is Keras' step itself, which no input can remove.

Inputs: ``numpy`` arrays; ``parquet`` (one file, Keras through pandas to NumPy, fitpipe
holding it in memory) and ``parquet-streamed`` (fitpipe streaming it, every epoch read again);
``generator`` (batches of the arrays, ``steps_per_epoch``); ``arrow-stream`` (a
``pyarrow.RecordBatchReader`` of the rows once per epoch, ``steps_per_epoch``, for fitpipe;
Keras reads one pass whole into NumPy first, as a Keras user would); ``pydataset`` (a
``keras.utils.PyDataset`` of slices of the arrays, its defaults: one worker, given to both);
``tf.data`` (a ``tf.data.Dataset`` as users write it: ``from_tensor_slices`` of the arrays,
``shuffle`` over every row, ``batch``, ``prefetch(AUTOTUNE)``, given to both).

Models (``--models``): ``mlp`` (features -> 64 -> 64 -> 1), ``conv`` (a Conv1D of 16 filters
over the features as positions, pooled), ``text`` (the features as token ids: an Embedding of
16 and pooling) and ``lstm`` (an LSTM of 32 units over the features as a sequence of 8 at a
time: 4 time steps of 32 features, 64 of 512), each ending in one output under MSE and Adam.

Throughput is samples/s of ``--epochs`` epochs after a warm-up epoch (both without
callbacks: a callback listening per batch would keep fitpipe at one step per call).
``first_step`` is the time from the call of ``fit`` to the end of the first batch, on a fresh
model whose ``fit`` the timing callback then stops (the start-up cost: tracing, compilation,
reading); ``run3`` is the time of a fresh 3-epoch ``fit`` on a fresh model (what a short
script pays in total). Every figure is taken
with both clocks: wall time and the process's CPU time (all threads; on a shared machine it
moves far less with the other work running); ``--clock`` picks the one the table shows.

The tuner column is what fitpipe chose (``Trainer.tuning``) after the timed epochs: steps
per compiled call, XLA on or off, and the seconds per step without and with XLA that
decided ``jit_compile="auto"`` ("measuring" when the run was too short to decide).

Run the whole grid (hours on 2 cores) or a slice of it:

    python benchmarks/grid.py --rows 64000 640000 --features 32 --batch 256 \
        --models mlp --inputs numpy parquet --repeats 3

One cell in this process, printing one JSON line (what the driver runs per child):

    python benchmarks/grid.py --cell 64000 32 256 mlp numpy
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
MODELS = ("mlp", "conv", "text", "lstm")
INPUTS = (
    "numpy",
    "parquet",
    "parquet-streamed",
    "generator",
    "arrow-stream",
    "pydataset",
    "tf.data",
)
VOCABULARY = 1000
KERAS_SETTINGS = ("0/1", "0/32", "1/1", "1/32")


@contextlib.contextmanager
def resident_limit(limit: int) -> Iterator[None]:
    """``limits.RESIDENT_BYTES_LIMIT`` set to ``limit`` inside (0: Parquet is streamed)."""
    from fitpipe import limits  # here: the grid's own process never imports TensorFlow

    held = limits.RESIDENT_BYTES_LIMIT
    limits.RESIDENT_BYTES_LIMIT = limit
    try:
        yield
    finally:
        limits.RESIDENT_BYTES_LIMIT = held


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
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument(
        "--keras",
        nargs="+",
        default=list(KERAS_SETTINGS),
        choices=KERAS_SETTINGS,
        help="the Keras settings JIT/SPE to run besides its defaults (all four by default)",
    )
    return parser.parse_args()


# ----------------------------------------------------------------------------------------
# One cell, in this process.
# ----------------------------------------------------------------------------------------


def run_cell(
    rows: int,
    features: int,
    batch: int,
    kind: str,
    source: str,
    epochs: int,
    settings: tuple[str, ...] = KERAS_SETTINGS,
) -> dict:
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
    path, whole = "", None
    if source.startswith("parquet") or source == "arrow-stream":  # (a copy of the rows)
        whole = pa.table({**{c: x[:, i] for i, c in enumerate(columns)}, "y": y[:, 0]})
    if source.startswith("parquet"):
        path = os.path.join(tempfile.mkdtemp(), "data.parquet")
        pq.write_table(whole, path, row_group_size=65536)
        whole = None
    steps = -(-rows // batch)

    def stream(count: int) -> pa.RecordBatchReader:
        """The rows ``count`` times over, as a stream of record batches of 65,536 rows."""
        assert whole is not None
        parts = (b for _ in range(count) for b in whole.to_batches(max_chunksize=65536))
        return pa.RecordBatchReader.from_batches(whole.schema, parts)

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
        elif kind == "lstm":  # the features as a sequence of 8 at a time
            hidden = keras.layers.Reshape((features // 8, 8))(inputs)
            hidden = keras.layers.LSTM(32)(hidden)
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

    def dataset() -> Any:
        """The arrays as a ``tf.data.Dataset`` written the way users write one."""
        import tensorflow as tf

        slices = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(rows, seed=0)
        return slices.batch(batch).prefetch(tf.data.AUTOTUNE)

    class Slices(keras.utils.PyDataset):
        """The arrays' batches, by index (a ``PyDataset`` at its defaults)."""

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            return x[index * batch : (index + 1) * batch], y[index * batch : (index + 1) * batch]

    def keras_fit(model: keras.Model, count: int, callbacks: list) -> None:
        if source == "tf.data":
            model.fit(dataset(), epochs=count, verbose=0, callbacks=callbacks)
            return
        if source == "pydataset":
            model.fit(Slices(), epochs=count, verbose=0, callbacks=callbacks)
            return
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
        if source == "arrow-stream":  # what a Keras user does with a stream: read it, NumPy
            read = stream(1).read_all()
            xs = np.stack([read[c].to_numpy() for c in columns], axis=1)
            ys = read["y"].to_numpy()[:, None]
        if path:  # what a Keras user does with Parquet: pandas, then NumPy
            import pandas as pd

            frame = pd.read_parquet(path)
            xs, ys = frame[columns].to_numpy(), frame[["y"]].to_numpy()
        model.fit(xs, ys, batch_size=batch, epochs=count, verbose=0, callbacks=callbacks)

    def fitpipe_fit(trainer: fitpipe.Trainer, count: int, callbacks: list) -> None:
        kwargs = {"epochs": count, "verbose": 0, "callbacks": callbacks}
        if source == "tf.data":
            trainer.fit(dataset(), **kwargs)
        elif source == "pydataset":
            trainer.fit(Slices(), **kwargs)
        elif source == "generator":
            trainer.fit(generator(count), steps_per_epoch=steps, **kwargs)
        elif source == "arrow-stream":  # read once: the rows streamed once per epoch
            trainer.fit(
                stream(count), schema=schema, batch_size=batch, steps_per_epoch=steps, **kwargs
            )
        elif path:
            streamed = source == "parquet-streamed"
            with resident_limit(0 if streamed else limits.RESIDENT_BYTES_LIMIT):
                trainer.fit(path, schema=schema, batch_size=batch, **kwargs)
        else:
            trainer.fit(x, y, batch_size=batch, **kwargs)

    def measure(fit: Callable[[Any, int, list], None], make: Callable[[], Any]) -> dict:
        # Each timing starts after a full collection (not timed): the garbage the runs before
        # left (models, 128 MB frames held by reference cycles) is not the next run's cost.
        # Without it, the streamed 64k x 512 Parquet cell's first step read 1.40 s after two
        # Keras runs in a /tmp script and 1.01 s after a collection.
        gc.collect()
        first = FirstStep()  # timed from here: the model's build is in the first step
        fit(make(), 1, [first])  # a fresh model's first step; the callback then stops it
        runner = make()
        gc.collect()
        start = now()
        fit(runner, 1, [])  # no callback: one listening per batch keeps fitpipe at 1 step a call
        warm = since(start)
        gc.collect()
        start = now()
        fit(runner, epochs, [])
        rate = [epochs * rows / t for t in since(start)]
        fresh = make()
        gc.collect()
        start = now()
        fit(fresh, 3, [])
        run3 = since(start)
        return {
            "rate": rate[0],
            "rate_cpu": rate[1],
            "first_step": first.seconds()[0],
            "first_step_cpu": first.seconds()[1],
            "warm": warm[0],
            "run3": run3[0],
            "run3_cpu": run3[1],
            "runner": runner,
        }

    class FirstStep(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.begin = now()
            self.end: tuple[float, float] | None = None

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.end is None:
                self.end = now()
            self.model.stop_training = True

        def seconds(self) -> tuple[float, float]:
            if self.end is None:
                return float("nan"), float("nan")
            return self.end[0] - self.begin[0], self.end[1] - self.begin[1]

    result: dict[str, Any] = {}
    for setting in settings:
        jit, spe = (int(part) for part in setting.split("/"))
        figures = measure(
            keras_fit, lambda j=bool(jit), s=spe: build(jit_compile=j, steps_per_execution=s)
        )
        figures.pop("runner")
        result[f"keras jit={jit} spe={spe}"] = figures
    result["keras default"] = measure(keras_fit, build)
    result["keras default"].pop("runner")

    def make_trainer() -> fitpipe.Trainer:
        trainer = fitpipe.Trainer(build())
        trainer.compile("adam", "mse")
        # Seeded only for equal initial weights: fitpipe runs as an unseeded script, whose
        # `jit_compile="auto"` is timed (a seeded run takes Keras' choice untimed: on a CPU,
        # the plain graph, so that it repeats).
        import tensorflow as tf

        tf.random.set_seed(None)
        return trainer

    fitpipe_figures = measure(fitpipe_fit, make_trainer)
    fitpipe_figures["tuner"] = tuner_choice(fitpipe_figures.pop("runner"))
    result["fitpipe"] = fitpipe_figures
    for name, own in (("limit", False), ("step_limit", True)):
        rates = [limit(build, x, y, batch, rows, epochs, jit, own) for jit in (False, True)]
        result[name] = max(wall for wall, _ in rates)
        result[f"{name}_cpu"] = max(cpu for _, cpu in rates)
    return result


def now() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU seconds since ``start``."""
    wall, cpu = now()
    return wall - start[0], cpu - start[1]


def tuner_choice(trainer: Any) -> str:
    """What fitpipe chose (``Trainer.tuning``): steps per call, XLA, and why."""
    tuning = trainer.tuning
    size = tuning["steps_per_execution"]
    xla = tuning["xla"].get("train", {})
    text = f"spe={size.get('steps_per_execution', '?')}"
    if not size.get("settled", True):
        text += " (not settled)"
    text += f" xla={'on' if xla.get('xla') else 'off'}"
    plain, compiled = xla.get("plain_seconds_per_step"), xla.get("xla_seconds_per_step")
    if plain is not None and compiled is not None:
        text += f" [{1e3 * plain:.3f} vs XLA {1e3 * compiled:.3f} ms/step]"
    elif "reason" in xla:
        text += f" [{xla['reason']}]"
    if xla.get("trial_after_seconds") is not None and not xla.get("early_trial"):
        text += f" (trial after {xla['trial_after_seconds']:.1f} s)"
    return text


def limit(
    build: Callable[..., Any],
    x: Any,
    y: Any,
    batch: int,
    rows: int,
    epochs: int,
    jit: bool,
    own_step: bool = False,
) -> tuple[float, float]:
    """Samples per wall and per CPU second of a train step, compiled, over tensors in memory.

    ``own_step``: the model's own ``train_step`` (the same-step limit); else a bare step.
    """
    import keras
    import tensorflow as tf

    model = build()
    xs, ys = tf.constant(x), tf.constant(y)
    steps = rows // batch
    if own_step:
        model.optimizer.build(model.trainable_variables)
        step = tf.function(lambda xb, yb: model.train_step((xb, yb)), jit_compile=jit)
    else:
        optimizer = keras.optimizers.Adam()
        loss_fn = keras.losses.MeanSquaredError()
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
    start = now()
    for _ in range(epochs):
        epoch()
    wall, cpu = since(start)
    return epochs * steps * batch / wall, epochs * steps * batch / cpu


# ----------------------------------------------------------------------------------------
# The driver: a fresh process per cell and repeat, medians and spreads.
# ----------------------------------------------------------------------------------------


def child(cell: tuple[Any, ...], epochs: int, settings: list[str]) -> dict:
    command = [sys.executable, __file__, "--epochs", str(epochs), "--cell", *map(str, cell)]
    command += ["--keras", *settings]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"cell {cell} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    med = statistics.median(values) / scale
    low, high = min(values) / scale, max(values) / scale
    return f"{med:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def summarize(cell: tuple[Any, ...], runs: list[dict], clock: str = "wall") -> str:
    suffix = "_cpu" if clock == "cpu" else ""
    rate, first, run3 = f"rate{suffix}", f"first_step{suffix}", f"run3{suffix}"
    keras_names = [name for name in runs[0] if name.startswith("keras ")]
    fit = [run["fitpipe"][rate] for run in runs]
    best = [max(run[name][rate] for name in keras_names) for run in runs]
    best_name = max(keras_names, key=lambda n: statistics.median(r[n][rate] for r in runs))
    default = [run["keras default"][rate] for run in runs]
    limits = [run[f"limit{suffix}"] for run in runs]
    step_limits = [run.get(f"step_limit{suffix}", float("nan")) for run in runs]
    ratio_best = [f / b for f, b in zip(fit, best, strict=True)]
    ratio_default = [f / d for f, d in zip(fit, default, strict=True)]
    ratio_limit = [f / c for f, c in zip(fit, limits, strict=True)]
    ratio_step = [f / c for f, c in zip(fit, step_limits, strict=True)]
    first_fit = [run["fitpipe"][first] for run in runs]
    first_keras = [run["keras default"][first] for run in runs]
    run3_fit = [run["fitpipe"][run3] for run in runs]
    run3_best = [min(run[name][run3] for name in keras_names) for run in runs]
    tuner = sorted({run["fitpipe"]["tuner"].split(" [")[0] for run in runs})
    rows, features, batch, model, source = cell
    return (
        f"| {rows} | {features} | {batch} | {model} | {source} | {spread(fit, 1e3)}k "
        f"| {spread(best, 1e3)}k {best_name.replace('keras ', '')} | {spread(ratio_best, 1, 2)} "
        f"| {spread(ratio_default, 1, 2)} | {spread(ratio_limit, 1, 2)} "
        f"| {spread(ratio_step, 1, 2)} "
        f"| {spread(first_fit, 1, 2)} / {spread(first_keras, 1, 2)} "
        f"| {statistics.median(b / f for f, b in zip(run3_fit, run3_best, strict=True)):.2f} "
        f"| {', '.join(tuner)} |"
    )


HEADER = (
    "| rows | features | batch | model | input | fitpipe samples/s | best Keras samples/s "
    "(setting) | vs best | vs default | vs bare limit | vs same-step limit "
    "| first step s fitpipe / Keras | 3-epoch run: best Keras time / fitpipe time "
    "| fitpipe tuner |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    args = parse()
    if args.cell:
        rows, features, batch, model, source = args.cell
        settings = tuple(args.keras)
        result = run_cell(
            int(rows), int(features), int(batch), model, source, args.epochs, settings
        )
        print(json.dumps(result), flush=True)
        return
    import platform

    print(
        f"grid: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"epochs={args.epochs}, repeats={args.repeats}, clock={args.clock} "
        f"(samples per {args.clock} second), Keras settings {' '.join(args.keras)}; "
        "median (min-max)"
    )
    print(HEADER, flush=True)
    record: dict[str, list[dict]] = {}
    for rows in args.rows:
        for features in args.features:
            for batch in args.batch:
                for model in args.models:
                    for source in args.inputs:
                        cell = (rows, features, batch, model, source)
                        runs = [child(cell, args.epochs, args.keras) for _ in range(args.repeats)]
                        record[" ".join(map(str, cell))] = runs
                        print(summarize(cell, runs, args.clock), flush=True)
                        for run in runs:
                            print(f"  tuner: {run['fitpipe']['tuner']}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main()
