"""A script's fits over a Parquet file that exists before it starts, in one fresh process.

What a training script pays: the first ``fit`` of a process (a fresh 3-epoch run: reading,
converting, checking, tracing, training), then three 2-epoch ``fit`` calls on the same model
(median samples/s, wall and CPU). ``held`` leaves fitpipe's default (data under the in-memory
limit is read once per ``fit``), ``stream`` forces every epoch to stream the file.

    python benchmarks/parquet_runs.py --rows 100000 --features 512 --mode held
    python benchmarks/parquet_runs.py --rows 100000 --features 512 --mode stream

The file (one row group, float32 features ``f0``... and target ``y``) is written once by a
child process into the temporary folder, so the timed process has made no data of its own.
Compare two commits by running each with ``PYTHONPATH=<worktree>/src``, in turns.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _write(path: str, rows: int, features: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.random.default_rng(0).standard_normal((rows, features), dtype=np.float32)
    table = pa.table({**{f"f{i}": x[:, i] for i in range(features)}, "y": x[:, 0] * 0.5})
    pq.write_table(table, path + ".part", row_group_size=rows)
    os.replace(path + ".part", path)


def _clock() -> np.ndarray:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([time.perf_counter(), use.ru_utime + use.ru_stime])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--mode", choices=["held", "stream"], default="held")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        _write(args.write, args.rows, args.features)
        return
    name = f"fitpipe_parquet_runs_{args.rows}x{args.features}.parquet"
    path = os.path.join(tempfile.gettempdir(), name)
    if not os.path.exists(path):
        command = [sys.executable, __file__, "--rows", str(args.rows)]
        subprocess.run([*command, "--features", str(args.features), "--write", path], check=True)
    import keras

    import fitpipe
    from fitpipe import limits

    if args.mode == "stream":
        limits.RESIDENT_BYTES_LIMIT = 0
    keras.utils.set_random_seed(0)
    inputs = keras.Input((args.features,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(hidden)))
    trainer.compile("adam", "mse")
    schema = fitpipe.Schema(features=[f"f{i}" for i in range(args.features)], targets="y")
    start = _clock()
    trainer.fit(path, schema=schema, batch_size=256, epochs=3, verbose=0)
    first = _clock() - start
    rates = []
    for _ in range(3):
        start = _clock()
        trainer.fit(path, schema=schema, batch_size=256, epochs=2, verbose=0)
        rates.append(2 * args.rows / (_clock() - start))
    wall, cpu = np.median(np.array(rates), axis=0)
    print(
        f"{args.mode} {args.rows}x{args.features}: fresh 3-epoch fit wall {first[0]:.2f} s, "
        f"cpu {first[1]:.2f} s; 2-epoch fits median {wall / 1e3:.0f}k samples/s wall, "
        f"{cpu / 1e3:.0f}k samples/CPU s"
    )


if __name__ == "__main__":
    main()
