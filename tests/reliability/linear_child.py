"""Times fitpipe's checks of a wide table and a many-file folder, run as a child process.

Usage: ``python linear_child.py COLUMNS FILES FOLDER``. Prints one JSON line: seconds per
check. A check that grows faster than linearly does not finish, and the parent's timeout
fails the test instead of hanging pytest.
"""

from __future__ import annotations

import json
import os
import sys
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


def _table(columns: int, rows: int) -> pa.Table:
    data = np.random.default_rng(0).random((columns + 1, rows), dtype=np.float32)
    return pa.Table.from_arrays(list(data), names=[f"f{i}" for i in range(columns)] + ["y"])


def _schema(columns: int) -> fitpipe.Schema:
    return fitpipe.Schema(
        features=[f"f{i}" for i in range(columns)],
        targets="y",
        fill={f"f{i}": 0.0 for i in range(0, columns, 2)},  # fill lookups per column too
    )


def _adapt(x: Any, schema: fitpipe.Schema, caller: str = "fit") -> Any:
    request = AdaptRequest(x=x, schema=schema, batch_size=32, caller=caller)
    return registry.find(x, caller).adapt(request)


def _seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(columns: int, files: int, folder: str) -> None:
    wide = _table(columns, 16)
    wide_file = os.path.join(folder, "wide.parquet")
    pq.write_table(wide, wide_file)
    many = os.path.join(folder, "many")
    os.mkdir(many)
    narrow = _table(4, 2)
    for i in range(files):
        pq.write_table(narrow, os.path.join(many, f"part-{i:05d}.parquet"))
    schema, narrow_schema = _schema(columns), _schema(4)
    timings = {
        "table adapt": _seconds(lambda: _adapt(wide, schema)),
        "table predict adapt": _seconds(lambda: _adapt(wide, schema, "predict")),
        "file adapt": _seconds(lambda: _adapt(wide_file, schema)),
        "file inspect": _seconds(lambda: inspect_source(wide_file, schema)),
        "folder adapt": _seconds(lambda: _adapt(many, narrow_schema)),
        "folder inspect": _seconds(lambda: inspect_source(many, narrow_schema)),
    }
    print(json.dumps(timings), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
