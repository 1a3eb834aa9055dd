"""A process killed while ``predict`` writes Parquet leaves no partial output file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fitpipe.columnar import write_atomically

CHILD = str(Path(__file__).with_name("predict_child.py"))


def kill_while_writing(output: Path, ready: Path, rel: Any, *extra: str) -> None:
    rel.kill_when_ready([sys.executable, CHILD, str(output), str(ready), *extra], ready)


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="unnamed files are Linux-only")
def test_killed_predict_leaves_nothing_in_the_output_folder(tmp_path: Path, rel: Any) -> None:
    out = tmp_path / "out"
    out.mkdir()
    kill_while_writing(out / "preds.parquet", tmp_path / "ready", rel)
    assert os.listdir(out) == []


def test_portable_path_leaves_a_partial_that_the_next_write_removes(
    tmp_path: Path, rel: Any
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    kill_while_writing(out / "preds.parquet", tmp_path / "ready", rel, "named")
    left = os.listdir(out)
    assert (
        len(left) == 1 and left[0].startswith(".preds.parquet.") and left[0].endswith(".partial")
    ), left
    assert (out / left[0]).stat().st_size > 0  # the first row group was being written
    write_atomically(out / "preds.parquet", iter([pa.table({"p": [1.0, 2.0]})]), lambda n: None)
    assert os.listdir(out) == ["preds.parquet"]
    assert pq.read_table(out / "preds.parquet").column("p").to_pylist() == [1.0, 2.0]


def test_partial_of_a_live_writer_is_kept(tmp_path: Path) -> None:
    live = tmp_path / f".preds.parquet.{os.getppid()}.partial"
    live.write_bytes(b"in progress")
    write_atomically(tmp_path / "preds.parquet", iter([pa.table({"p": [1.0]})]), lambda n: None)
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "preds.parquet"])
