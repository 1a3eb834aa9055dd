"""Every check of the data layer is linear in columns and in files (issue 13).

The schema check of a 2,000-column table took 71 s before the first step (it grew with the
cube of the column count). A 5,000-column table and file and a 2,000-file folder must be
adapted and inspected in seconds: the bound is generous (30 s each on a loaded 2-core
machine), a cubic or quadratic check misses it by minutes. The checks run in a child process
so that a slow one fails the test at the timeout instead of holding pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import fitpipe
from fitpipe.columnar import check_arrow_schema
from fitpipe.schemas import Role

CHILD = str(Path(__file__).with_name("linear_child.py"))
COLUMNS = 5000
FILES = 2000
BOUND_S = 30.0


def test_wide_table_and_many_files_are_checked_in_seconds(tmp_path: Path) -> None:
    try:
        done = subprocess.run(
            [sys.executable, CHILD, str(COLUMNS), str(FILES), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the checks of {COLUMNS} columns and {FILES} files took over 240 s")
    assert done.returncode == 0, done.stderr[-3000:]
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    slow = {name: seconds for name, seconds in timings.items() if seconds > BOUND_S}
    assert not slow, timings


@pytest.mark.parametrize("columns", [2000])
def test_missing_and_repeated_columns_of_a_wide_table_are_named(columns: int) -> None:
    # The message lists a readable part of the columns, with their count.
    names = [f"c{i}" for i in range(columns)]
    arrow_schema = pa.schema([(n, pa.float32()) for n in names])
    missing = fitpipe.Schema(features=[*names, "c_missing"])
    with pytest.raises(fitpipe.errors.SchemaError, match=r"and 1988 more\] \(2000 columns\)"):
        check_arrow_schema(missing, arrow_schema, "t", (Role.FEATURE,))
    repeated = pa.schema([*arrow_schema, pa.field("c7", pa.float32())])
    with pytest.raises(fitpipe.errors.SchemaError, match="two columns named 'c7'"):
        check_arrow_schema(fitpipe.Schema(features=names), repeated, "t", (Role.FEATURE,))
