"""Cost of the pre-flight check per GB: Parquet read in full, its footers, rows in memory.

Writes a Parquet file of about --gb GB (--columns float32 feature columns and an int32
label, row groups of 64Ki rows, uncompressed unless --compression) into --dir, then times:

* ``scan``: ``check_data(path, full=True)``: every value of the used columns read and
  checked (``fitpipe check DATA``, ``fit(check="full")`` on streamed Parquet);
* ``read only``: ``pyarrow.dataset`` reading the same columns, for comparison;
* ``footers``: ``check_data(path, full=False)`` (``fitpipe check --stats-only``, the
  default ``fit`` check of streamed Parquet);
* ``in memory``: ``check_data(x, y)`` on the same values as NumPy arrays (the default
  ``fit`` check of rows held in memory).

Run: python benchmarks/bench_check.py --gb 1 --dir /tmp
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

import fitpipe
from fitpipe.training.preflight import check_data

GROUP = 65536


def write(path: str, gb: float, columns: int, compression: str) -> int:
    rows = int(gb * 2**30 / (4 * (columns + 1)))
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(columns)]
    with pq.ParquetWriter(path, _schema(names), compression=compression) as writer:
        for start in range(0, rows, GROUP):
            n = min(GROUP, rows - start)
            block = rng.standard_normal((n, columns), dtype=np.float32)
            arrays = [pa.array(block[:, i]) for i in range(columns)]
            arrays.append(pa.array(rng.integers(0, 10, n, dtype=np.int32)))
            writer.write_table(pa.Table.from_arrays(arrays, names=[*names, "label"]))
    return rows


def _schema(names: list[str]) -> pa.Schema:
    return pa.schema([*(pa.field(n, pa.float32()) for n in names), pa.field("label", pa.int32())])


def timed(label: str, gb: float, fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:8.2f} s  {gb / seconds:8.2f} GB/s  {seconds / gb:7.2f} s/GB")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=0.5)
    parser.add_argument("--columns", type=int, default=32)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(dir=args.dir)
    path = os.path.join(folder, "bench.parquet")
    rows = write(path, args.gb, args.columns, args.compression)
    size = os.path.getsize(path) / 2**30
    model = keras.Sequential(
        [keras.Input((args.columns,)), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(loss="sparse_categorical_crossentropy")
    schema = fitpipe.Schema(features=[f"f{i}" for i in range(args.columns)], targets="label")
    print(
        f"file: {size:.3f} GiB, {rows:,} rows, {args.columns} float32 columns + int32 label, "
        f"compression={args.compression}, cpus={os.cpu_count()}"
    )
    columns = [*schema.columns()]
    timed("read only (pyarrow.dataset)", size, lambda: _read(path, columns))
    timed("scan (check_data full=True)", size, lambda: check_data(path, model=model, schema=schema))
    timed(
        "footers (check_data full=False)",
        size,
        lambda: check_data(path, model=model, schema=schema, full=False),
    )
    table = pq.read_table(path)
    x = np.stack([table[c].to_numpy() for c in columns[:-1]], axis=1)
    y = table["label"].to_numpy()
    del table
    memory = (x.nbytes + y.nbytes) / 2**30
    timed(
        f"in memory ({memory:.2f} GiB, check_data x, y)",
        memory,
        lambda: check_data(x, y, model=model),
    )
    os.remove(path)
    os.rmdir(folder)


def _read(path: str, columns: list[str]) -> None:
    for _ in pads.dataset(path).to_batches(columns=columns, batch_size=GROUP):
        pass


if __name__ == "__main__":
    main()
