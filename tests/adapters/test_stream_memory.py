"""Streamed Parquet's memory is bounded in bytes, whatever the width of the rows.

Resident memory cannot be asserted reliably in a test; these tests check the bounds where
they are planned: the rows a shuffle buffer mixes at once (in bytes, against the resident
limit), and the free mappings the recycled pool keeps (in bytes, not only in number).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters.row_blocks import gathered, num_rows
from fitpipe.columnar import aligned_empty, convert, recycle, recycling

WIDTH = 300  # float32 columns: 1,200 bytes a row
GROUP = 100  # rows per row group


def _wide_file(path: Path, rows: int = 2000) -> str:
    rng = np.random.default_rng(0)
    columns = {f"f{i}": rng.standard_normal(rows, dtype=np.float32) for i in range(WIDTH)}
    columns["y"] = rng.standard_normal(rows, dtype=np.float32)
    pq.write_table(pa.table(columns), path, row_group_size=GROUP)
    return str(path)


@pytest.mark.parametrize("limit", [256 << 10, 1 << 20])
def test_a_shuffle_buffer_of_wide_rows_holds_half_the_resident_limit_or_a_row_group(
    tmp_path: Path, limit: int
) -> None:
    path = _wide_file(tmp_path / "wide.parquet")
    row_bytes = 4 * (WIDTH + 1)
    schema = fitpipe.Schema(features="f*", targets="y")
    with mock.patch.object(limits, "RESIDENT_BYTES_LIMIT", limit):
        pipeline = fitpipe.adapt(path, schema=schema, batch_size=8, shuffle=True)
        made = pipeline.row_blocks
        assert made is not None
        blocks = [gathered(block) for block in made().blocks]
    assert sum(map(num_rows, blocks)) == 2000
    most = max(limit // 2, GROUP * row_bytes) + GROUP * row_bytes  # (the last group read)
    assert max(num_rows(block) for block in blocks) * row_bytes <= most
    assert len(blocks) > 1  # rows counted alone, all 2,000 (2.4 MB) were one buffer


MAPPED = 4096


def test_the_pool_keeps_free_mappings_of_sizes_no_block_asks_for_within_a_byte_bound() -> None:
    limit = 64 << 10
    with (
        mock.patch.object(convert, "MAPPED_BYTES", MAPPED),
        mock.patch.object(limits, "RESIDENT_BYTES_LIMIT", limit),
        recycling(),
    ):
        blocks = [aligned_empty((1024 * (i + 1),), np.float32) for i in range(7)]
        del blocks  # seven free mappings of seven sizes: 112 KiB in all
        asked = aligned_empty((1024,), np.float32)
        free = sum(root.nbytes for root in recycle._pool if root.base is not asked.base)
        assert free <= max(limit // 2, 2 * asked.nbytes)
        del asked
    recycle.release()
    assert not recycle._pool


# --------------------------------------------------- patterns over the files of a folder

COLUMNS = ("f0", "f1", "f2", "f3")


@settings(max_examples=25, deadline=None)
@given(
    held=st.lists(
        st.lists(st.sampled_from(COLUMNS), min_size=1, unique=True).map(sorted),
        min_size=2,
        max_size=3,
    ),
    pattern=st.sampled_from(["f*", "re:f[0-3]", fitpipe.OTHER_COLUMNS]),
)
def test_a_pattern_over_a_folder_means_the_same_whatever_file_comes_first(
    tmp_path_factory: Any, held: list[list[str]], pattern: str
) -> None:
    """Each file has some of f0..f3 and y: the same columns in all, or an error naming one."""
    folder = tmp_path_factory.mktemp("folder")
    rows = 8
    for index, columns in enumerate(held):
        table = {c: np.full(rows, index, np.float32) for c in columns}
        table["y"] = np.zeros(rows, np.float32)
        pq.write_table(pa.table(table), folder / f"part-{index}.parquet")
    schema = fitpipe.Schema(features=pattern, targets="y")
    every = set.intersection(*map(set, held))
    some = set.union(*map(set, held)) - every
    if some:
        with pytest.raises(fitpipe.errors.SchemaError) as caught:
            fitpipe.adapt(str(folder), schema=schema, batch_size=rows)
        found = re.search(
            r"found column '(f\d)', which a pattern of the schema matches", str(caught.value)
        )
        assert found is not None and found[1] in some  # the same error whatever the order
        lacking = [i for i, columns in enumerate(held) if found[1] not in columns]
        assert all(f"part-{i}.parquet" in str(caught.value) for i in lacking)
        return
    pipeline = fitpipe.adapt(str(folder), schema=schema, batch_size=rows)
    shapes = {tuple(x.shape) for x, _ in pipeline.dataset.as_numpy_iterator()}
    assert shapes == {(rows, len(every))}
