"""Parquet to a trained model: fitpipe against the routes Keras users take instead.

One Parquet file (``--rows`` x ``--features`` float32 columns and a target ``y``), the MLP of
``grid.py`` (features -> 64 -> 64 -> 1, Adam, MSE), ``--epochs`` epochs at ``--batch``. Each
route starts from the file on disk and ends with the trained model, in a fresh process,
``--repeats`` times (routes interleaved); the table shows medians and the spread (min-max):

- ``fitpipe``: ``fitpipe.Trainer(model).fit(path, schema=...)`` at its defaults;
- ``keras pandas``: ``pandas.read_parquet``, then NumPy, then ``model.fit`` (Keras' defaults);
- ``keras pandas spe=32``: the same with ``steps_per_execution=32`` (Keras' best on this CPU
  for this model in ``grid.py``; XLA is slower here);
- ``keras tf.data/pyarrow``: a ``tf.data.Dataset.from_generator`` over
  ``pyarrow.parquet.ParquetFile.iter_batches`` (batches converted to NumPy), prefetched;
- ``keras hf datasets``: Hugging Face ``datasets.Dataset.from_parquet(path).to_tf_dataset``
  (needs ``pip install datasets``; skipped when it is not installed);
- ``keras ray data``: Ray Data ``ray.data.read_parquet(path).to_tf`` on a local Ray
  instance (its start-up is not timed; skipped when Ray is not installed).

The last three give a dict of one tensor per column; the route stacks them into the model's
one input in a ``map``, as a user would. Figures: ``total`` is the wall time from the file to
the trained model (reading, conversion, tracing and every epoch); ``rate`` is samples/s of
the last epoch (steady state); ``cpu`` is the process's CPU time over the whole route.

    python benchmarks/bench_peers.py --rows 64000 640000 --repeats 3

One route in this process, printing one JSON line (what the driver runs per child):

    python benchmarks/bench_peers.py --route fitpipe --file data.parquet --rows 64000
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
from collections.abc import Callable
from typing import Any

ROUTES = (
    "fitpipe",
    "keras pandas",
    "keras pandas spe=32",
    "keras tf.data/pyarrow",
    "keras hf datasets",
    "keras ray data",
)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[64_000, 640_000])
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument("--route", choices=ROUTES, help="run one route here (child mode)")
    parser.add_argument("--file", help="the Parquet file (child mode)")
    return parser.parse_args()


def write_file(rows: int, features: int, folder: str) -> str:
    """Writes the benchmark's Parquet file (row groups of 65,536 rows) and returns its path."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    y = x[:, 0] * 0.5 + rng.standard_normal(rows, dtype=np.float32) * 0.1
    path = os.path.join(folder, f"data-{rows}x{features}.parquet")
    table = pa.table({**{f"f{i}": x[:, i] for i in range(features)}, "y": y})
    pq.write_table(table, path, row_group_size=65536)
    return path


def build(features: int, **compile_kwargs: Any) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile("adam", "mse", **compile_kwargs)
    return model


def epoch_clock() -> Any:
    """A Keras callback noting the wall time at the start of each epoch (in ``times``)."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.times.append(time.perf_counter())

    return EpochClock()


def stacked(columns: list[str]) -> Callable[..., Any]:
    """A ``map`` function stacking a dict of per-column tensors into one feature matrix."""
    import tensorflow as tf

    def stack(features: dict[str, Any], target: Any) -> tuple[Any, Any]:
        return tf.stack([tf.cast(features[c], tf.float32) for c in columns], axis=1), target

    return stack


def route_fitpipe(path: str, columns: list[str], batch: int, epochs: int, cb: Any) -> None:
    import fitpipe

    schema = fitpipe.Schema(features=columns, targets="y")
    model = build(len(columns))
    fitpipe.Trainer(model).fit(
        path, schema=schema, batch_size=batch, epochs=epochs, verbose=0, callbacks=[cb]
    )


def route_pandas(path: str, columns: list[str], batch: int, epochs: int, cb: Any, spe=1) -> None:
    import pandas as pd

    frame = pd.read_parquet(path)
    x, y = frame[columns].to_numpy(), frame[["y"]].to_numpy()
    del frame
    model = build(len(columns), steps_per_execution=spe)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[cb])


def route_pyarrow(path: str, columns: list[str], batch: int, epochs: int, cb: Any) -> None:
    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow as tf

    def batches() -> Any:
        for record in pq.ParquetFile(path).iter_batches(batch_size=batch, columns=[*columns, "y"]):
            x = np.stack([record.column(c).to_numpy() for c in columns], axis=1)
            yield x, record.column("y").to_numpy()[:, None]

    signature = (
        tf.TensorSpec((None, len(columns)), tf.float32),
        tf.TensorSpec((None, 1), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    model = build(len(columns))
    model.fit(dataset.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=0, callbacks=[cb])


def route_hf(path: str, columns: list[str], batch: int, epochs: int, cb: Any) -> None:
    import datasets
    import tensorflow as tf

    data = datasets.Dataset.from_parquet(path)
    dataset = data.to_tf_dataset(columns=columns, label_cols="y", batch_size=batch, shuffle=True)
    model = build(len(columns))
    dataset = dataset.map(stacked(columns)).prefetch(tf.data.AUTOTUNE)
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[cb])


def route_ray(path: str, columns: list[str], batch: int, epochs: int, cb: Any) -> float:
    start = time.perf_counter()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    untimed = time.perf_counter() - start
    try:
        data = ray.data.read_parquet(path)
        dataset = data.to_tf(feature_columns=columns, label_columns="y", batch_size=batch)
        model = build(len(columns))
        model.fit(dataset.map(stacked(columns)), epochs=epochs, verbose=0, callbacks=[cb])
    finally:
        ray.shutdown()
    return untimed


def child(route: str, path: str, rows: int, features: int, batch: int, epochs: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # imported before the clocks start: every route pays it alike

    keras.backend.clear_session()
    columns = [f"f{i}" for i in range(features)]
    runs: dict[str, Callable[..., Any]] = {
        "fitpipe": route_fitpipe,
        "keras pandas": route_pandas,
        "keras pandas spe=32": lambda *a: route_pandas(*a, spe=32),
        "keras tf.data/pyarrow": route_pyarrow,
        "keras hf datasets": route_hf,
        "keras ray data": route_ray,
    }
    callback = epoch_clock()
    wall, cpu = time.perf_counter(), time.process_time()
    untimed = runs[route](path, columns, batch, epochs, callback) or 0.0
    end_wall, end_cpu = time.perf_counter(), time.process_time()
    last = end_wall - callback.times[-1]
    return {
        "total": end_wall - wall - untimed,
        "cpu": end_cpu - cpu,
        "rate": rows / last,
        "epochs_seen": len(callback.times),
    }


def available(route: str) -> bool:
    module = {"keras hf datasets": "datasets", "keras ray data": "ray"}.get(route)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def spread(values: list[float], digits: int = 0) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    args = parse()
    if args.route:
        figures = child(args.route, args.file, args.rows[0], args.features, args.batch, args.epochs)
        print(json.dumps(figures))
        return
    load = os.getloadavg()[0]
    print(f"cores={os.cpu_count()} load={load:.1f} features={args.features} batch={args.batch}")
    print(f"epochs={args.epochs} repeats={args.repeats} (median, min-max)")
    routes = [r for r in args.routes if available(r)]
    for skipped in sorted(set(args.routes) - set(routes)):
        print(f"skipped (not installed): {skipped}")
    folder = tempfile.mkdtemp()
    print("| rows | route | total s | rate samples/s | CPU s | total vs fitpipe |")
    print("|---|---|---|---|---|---|")
    for rows in args.rows:
        path = write_file(rows, args.features, folder)
        figures: dict[str, list[dict]] = {r: [] for r in routes}
        for _ in range(args.repeats):
            for route in routes:
                command = [sys.executable, __file__, "--route", route, "--file", path]
                command += ["--rows", str(rows), "--features", str(args.features)]
                command += ["--batch", str(args.batch), "--epochs", str(args.epochs)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    sys.exit(f"{route} failed:\n{done.stderr[-3000:]}")
                figures[route].append(json.loads(done.stdout.strip().splitlines()[-1]))
        ours = statistics.median(run["total"] for run in figures["fitpipe"])
        for route in routes:
            runs = figures[route]
            totals = [run["total"] for run in runs]
            print(
                f"| {rows:,} | {route} | {spread(totals, 1)} | "
                f"{spread([run['rate'] for run in runs])} | "
                f"{spread([run['cpu'] for run in runs], 1)} | "
                f"{statistics.median(totals) / ours:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
