"""Where a streamed row group's CPU goes: pyarrow's read, fitpipe's conversion, fresh memory.

At 512 features streamed Parquet spends about as much CPU reading and converting each row
group as the MLP's steps spend on its rows. This script takes one file (``--rows`` x
``--features`` float32 columns and a target, row groups of ``--row-group`` rows) and times,
in one process:

- the read of one row group as fitpipe reads it (a dataset fragment's ``to_table``, pyarrow's
  threads), and the same read from a memory-mapped file (``LocalFileSystem(use_mmap=True)``);
- the conversion of the features to rows (``stack_columns``: columns copied side by side,
  transposed by TensorFlow at 64 columns and more);
- fitpipe's blocks of a whole pass (``Pipeline.row_blocks``, read and converted, no step),
  pass after pass in this fresh process, with the process's user and system CPU and page
  faults per pass: the first passes of a process pay for memory never touched before.

Figures: milliseconds, median of ``--repeats`` (after two untimed runs), wall and CPU.

Run: python benchmarks/stream_costs.py --rows 65536 --features 512 --passes 6
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import fitpipe
from fitpipe import limits
from fitpipe.columnar.convert import stack_columns


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--row-group", type=int, default=65536)
    parser.add_argument("--passes", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=8)
    return parser.parse_args()


def usage() -> tuple[float, float, int]:
    """The process's user and system CPU seconds and minor page faults so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime, used.ru_stime, used.ru_minflt


def passes(path: str, columns: list[str], count: int) -> None:
    """fitpipe's blocks of whole passes (no step), each pass's CPU and faults."""
    schema = fitpipe.Schema(features=columns, targets="y")
    limits.RESIDENT_BYTES_LIMIT = 0
    pipeline = fitpipe.pipeline.adapt(path, schema=schema, batch_size=256, shuffle=False)
    assert pipeline.row_blocks is not None, "the file is not streamed in blocks"
    for index in range(count):
        start, before = time.perf_counter(), usage()
        blocks = list(pipeline.row_blocks().blocks)
        after = usage()
        wall = time.perf_counter() - start
        print(
            f"pass {index}: {len(blocks)} blocks, wall {wall * 1000:.0f} ms, user "
            f"{(after[0] - before[0]) * 1000:.0f} ms, system {(after[1] - before[1]) * 1000:.0f}"
            f" ms, page faults {after[2] - before[2]}",
            flush=True,
        )
        del blocks


def timed(name: str, call: Callable[[], Any], repeats: int) -> None:
    call()
    call()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        del out
    wall_ms, cpu_ms = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    print(f"{name}: wall {wall_ms:.1f} ms, CPU {cpu_ms:.1f} ms", flush=True)


def main() -> None:
    args = parse()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    columns = [f"f{i}" for i in range(args.features)]
    path = os.path.join(tempfile.mkdtemp(), "data.parquet")
    table = pa.table({**{c: x[:, i] for i, c in enumerate(columns)}, "y": x[:, 0]})
    pq.write_table(table, path, row_group_size=args.row_group)
    del x, table
    print(f"{args.rows} x {args.features} float32, row groups of {args.row_group} rows")
    passes(path, columns, args.passes)  # first: this process's memory is fresh
    wanted = [*columns, "y"]
    for name, filesystem in [
        ("read a row group (fitpipe's way)", None),
        ("read a row group, memory-mapped", pafs.LocalFileSystem(use_mmap=True)),
    ]:
        dataset = ds.dataset(path, format="parquet", filesystem=filesystem)
        fragment = next(iter(dataset.get_fragments()))

        def read(f: Any = fragment, s: pa.Schema = dataset.schema) -> pa.Table:
            return f.subset(row_group_ids=[0]).to_table(columns=wanted, schema=s)

        timed(name, read, args.repeats)
    group = pq.ParquetFile(path).read_row_group(0, columns=columns)
    parts = [column.to_numpy() for column in group.columns]
    timed("convert its features to rows (stack_columns)", lambda: stack_columns(parts), 8)


if __name__ == "__main__":
    main()
