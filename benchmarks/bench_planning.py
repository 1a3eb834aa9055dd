"""Planning at scale: the time ``fit`` spends before its first step on many files or row groups.

Planning is what a Parquet source costs before any data is read: finding the files, reading
each footer, and building the plan (a piece per row group, with its rows, and the schema
unified over the files): :func:`fitpipe.columnar.plan_source`. The script generates

* ``files``: N files of one row each (tiny footers), for N in ``--files``;
* ``groups``: files of 1,000 row groups of one row each, N row groups in all, for N in
  ``--groups``;

under ``--dir`` (kept between runs: generation is the slow part), then plans each one with
the footers read sequentially (``threads=1``) and by the thread pool (``--threads``), and
prints CPU seconds (``time.process_time``, the figure to compare on a loaded machine), wall
seconds, and microseconds of CPU per file or row group (flat when growth is linear).

``--share`` also times what a multi-worker run adds: the chief turning its plan into bytes
(:func:`fitpipe.columnar.plan_bytes`) and another worker rebuilding the plan from them
(:func:`fitpipe.columnar.plan_from_bytes`, no footer read), in this one process (the
all-reduces between them need a cluster), with the bytes shared; and the bytes again with
each row group's rows drawn at random below 2**20 (row counts that do not compress).

``--s3-files N`` also writes N one-row files to a local S3 server (moto, started and
stopped by the script) and plans them from ``s3://``: every footer is then a request, which
the thread pool overlaps.

Run: python benchmarks/bench_planning.py --files 1000,10000 --groups 100000,1000000 \\
    --dir /tmp/fitpipe-planning --s3-files 500 [--share]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import fitpipe
from fitpipe.columnar import ParquetPlan, Piece, plan_bytes, plan_from_bytes, plan_source
from fitpipe.schemas import Mode

SCHEMA = fitpipe.Schema(["a"], "y")
GROUPS_PER_FILE = 1000


def _one_row(i: int) -> pa.Table:
    return pa.table({"a": [float(i)], "y": [i % 2]})


def generate(folder: Path, kind: str, count: int) -> float:
    """Writes the dataset unless a complete one is there; returns the CPU seconds spent."""
    done = folder / "_COMPLETE"
    if done.exists():
        return 0.0
    folder.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    if kind == "files":
        for i in range(count):
            pq.write_table(_one_row(i), folder / f"part-{i:07d}.parquet")
    else:
        rows = np.arange(GROUPS_PER_FILE)
        table = pa.table({"a": rows.astype("float32"), "y": rows % 2})
        for i in range(count // GROUPS_PER_FILE):
            path = folder / f"part-{i:05d}.parquet"
            pq.write_table(table, path, row_group_size=1, write_statistics=False)
    done.write_text("")
    return time.process_time() - start


def timed(plan: Callable[[], object]) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = plan()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def report(label: str, units: int, source: str, threads: list[int]) -> None:
    for count in threads:
        cpu, wall, plan = timed(lambda c=count: plan_source(source, SCHEMA, "fit", threads=c))
        pieces = len(plan.pieces)  # type: ignore[attr-defined]
        per = 1e6 * cpu / units
        print(
            f"{label:28s} threads={count:<3d} pieces={pieces:<8d} cpu={cpu:7.2f}s "
            f"wall={wall:7.2f}s  cpu/unit={per:6.1f}us",
            flush=True,
        )


def report_share(label: str, source: str) -> None:
    """Times the plan to bytes and back (one process); the bytes, as planned and random rows."""
    plan: ParquetPlan = plan_source(source, SCHEMA, "fit")
    cpu_out, wall_out, data = timed(lambda: plan_bytes(plan))
    assert isinstance(data, bytes)
    cpu_in, wall_in, rebuilt = timed(
        lambda: plan_from_bytes(data, source, SCHEMA, "fit", Mode.TRAIN)
    )
    assert len(rebuilt.pieces) == len(plan.pieces)  # type: ignore[attr-defined]
    rows = np.random.default_rng(0).integers(1, 2**20, len(plan.pieces)).tolist()
    pieces = tuple(Piece(p.source, n, p.read) for p, n in zip(plan.pieces, rows, strict=True))
    random = plan_bytes(ParquetPlan(pieces, plan.arrow_schema, plan.schema))
    print(
        f"{label:28s} share bytes={len(data):<9d} to-bytes cpu={cpu_out:6.2f}s "
        f"wall={wall_out:6.2f}s  rebuild cpu={cpu_in:6.2f}s wall={wall_in:6.2f}s  "
        f"random-rows bytes={len(random)}",
        flush=True,
    )


def s3_run(count: int, threads: list[int]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from object_store import s3_server

    with s3_server() as s3:
        s3.bucket("plan")
        for i in range(count):
            pq.write_table(
                _one_row(i), f"plan/files/part-{i:07d}.parquet", filesystem=s3.filesystem
            )
        report(f"s3 files={count}", count, "s3://plan/files/", threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", default="1000,10000")
    parser.add_argument("--groups", default="100000,1000000")
    parser.add_argument("--dir", default="/tmp/fitpipe-planning")
    parser.add_argument("--threads", default="1,16")
    parser.add_argument("--s3-files", type=int, default=0)
    parser.add_argument("--share", action="store_true")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    root = Path(args.dir)
    runs = [("files", int(n)) for n in args.files.split(",") if n]
    runs += [("groups", int(n)) for n in args.groups.split(",") if n]
    print(f"pyarrow={pa.__version__} cores={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    for kind, count in runs:
        folder = root / f"{kind}-{count}"
        spent = generate(folder, kind, count)
        if spent:
            print(f"generated {folder} in {spent:.1f}s CPU", flush=True)
        report(f"{kind}={count}", count, str(folder), threads)
        if args.share:
            report_share(f"{kind}={count}", str(folder))
    if args.s3_files:
        s3_run(args.s3_files, threads)


if __name__ == "__main__":
    main()
