"""Time of fitpipe's checks of wide and many-file columnar sources, before any step.

* table: a ``pyarrow.Table`` of --columns float32 feature columns (and one target): the
  schema check alone, then the whole adapt (check and columnar conversion).
* file: the same table as one Parquet file: planning (open, check, row groups) and the
  whole adapt.
* folder: --files Parquet files of 8 feature columns each: planning and the whole adapt.
* inspect: ``fitpipe inspect`` of the wide file and of the folder, with the schema.

Every check of the data layer must be linear in columns and in files: doubling --columns or
--files should about double each time, not multiply it by 4 or 8.

Run: python benchmarks/bench_schema_check.py --columns 5000 --files 2000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import fitpipe
from fitpipe.adapters import AdaptRequest, registry
from fitpipe.cli.inspection import inspect_source
from fitpipe.columnar import check_arrow_schema, plan_source
from fitpipe.schemas import Role

ROWS = 64
FOLDER_COLUMNS = 8


def wide_table(columns: int, rows: int = ROWS) -> pa.Table:
    """``columns`` float32 feature columns ``f0``... and a float32 target ``y``."""
    data = np.random.default_rng(0).random((rows, columns + 1), dtype=np.float32)
    names = [f"f{i}" for i in range(columns)] + ["y"]
    return pa.Table.from_arrays(list(data.T), names=names)


def write_folder(folder: str, files: int, rows: int = 4) -> None:
    """``files`` Parquet files of ``FOLDER_COLUMNS`` features and a target."""
    table = wide_table(FOLDER_COLUMNS, rows)
    for i in range(files):
        pq.write_table(table, os.path.join(folder, f"part-{i:05d}.parquet"))


def schema_of(columns: int) -> fitpipe.Schema:
    """Every feature column stacked into one input, ``y`` the target."""
    return fitpipe.Schema(features=[f"f{i}" for i in range(columns)], targets="y")


def timed(label: str, run: Callable[[], Any]) -> float:
    """Runs ``run`` once and prints its wall time."""
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"RESULT {label}: {seconds:.3f} s", flush=True)
    return seconds


def adapt(x: Any, schema: fitpipe.Schema) -> Any:
    """The adapter's whole work on ``x`` for ``fit`` (checks and conversion)."""
    request = AdaptRequest(x=x, schema=schema, batch_size=32, caller="fit")
    return registry.find(x, "fit").adapt(request)


def main() -> None:
    """Builds the sources in a temporary folder and times each check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=5000)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    roles = (Role.FEATURE, Role.TARGET, Role.WEIGHT)
    table = wide_table(args.columns)
    schema = schema_of(args.columns)
    narrow = schema_of(FOLDER_COLUMNS)
    with tempfile.TemporaryDirectory() as tmp:
        wide_file = os.path.join(tmp, "wide.parquet")
        pq.write_table(table, wide_file)
        folder = os.path.join(tmp, "folder")
        os.mkdir(folder)
        write_folder(folder, args.files)
        print(f"{args.columns} columns x {ROWS} rows; {args.files} files", flush=True)
        timed(
            f"table {args.columns} columns: check_arrow_schema",
            lambda: check_arrow_schema(schema, table.schema, "table", roles),
        )
        timed(f"table {args.columns} columns: adapt", lambda: adapt(table, schema))
        timed(f"file {args.columns} columns: plan", lambda: plan_source(wide_file, schema, "fit"))
        timed(f"file {args.columns} columns: adapt", lambda: adapt(wide_file, schema))
        timed(
            f"file {args.columns} columns: inspect",
            lambda: inspect_source(wide_file, schema),
        )
        timed(f"folder {args.files} files: plan", lambda: plan_source(folder, narrow, "fit"))
        timed(f"folder {args.files} files: adapt", lambda: adapt(folder, narrow))
        timed(f"folder {args.files} files: inspect", lambda: inspect_source(folder, narrow))


if __name__ == "__main__":
    main()
