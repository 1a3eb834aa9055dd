"""The row order of NumPy arrays too large to hold, and their rows in blocks (``numpy_rows``).

A block of batches (``NumpyOrder.span``) must hold exactly the rows the ``tf.data`` path
reads batch by batch (``NumpyOrder.rows``), whichever pass drew its order last; the blocks
of a pass (``ArrayBlocks``) hold every row once, in that order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.pipeline import numpy_rows
from fitpipe.pipeline.arrays import pass_counter


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 60),
    batch=st.integers(1, 9),
    count=st.integers(1, 4),
    blocks=st.booleans(),
    passes=st.lists(st.integers(0, 3), min_size=1, max_size=4),
)
def test_a_span_is_the_rows_of_its_batches_whichever_pass_drew_last(
    rows: int, batch: int, count: int, blocks: bool, passes: list[int]
) -> None:
    order = numpy_rows.NumpyOrder(rows, batch, seed=7, blocks=blocks)
    reference = numpy_rows.NumpyOrder(rows, batch, seed=7, blocks=blocks)
    batches = math.ceil(rows / batch)
    for pass_index in passes:  # passes drawn in turn: each span redraws its own order
        for first in range(0, batches, count):
            last = min(first + count, batches)
            want = [reference.rows(np.int64(pass_index), np.int64(b)) for b in range(first, last)]
            got = order.span(pass_index, first, count)
            np.testing.assert_array_equal(got, np.concatenate(want))


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 60),
    batch=st.integers(1, 9),
    per_block=st.integers(1, 4),
    shuffle=st.sampled_from([True, False, "batch"]),
)
def test_a_pass_of_blocks_holds_every_row_once_in_the_pass_order(
    rows: int, batch: int, per_block: int, shuffle: Any
) -> None:
    x = np.arange(rows * 2, dtype="float32").reshape(rows, 2)
    y = np.arange(rows, dtype="int64")
    old = numpy_rows.BLOCK_BYTES
    numpy_rows.BLOCK_BYTES = per_block * batch * (2 * 4 + 8)
    try:
        made = numpy_rows.ArrayBlocks((x, y), rows, batch, shuffle, 3, pass_counter())
        for pass_index in range(2):
            blocks = list(made.row_blocks().blocks)
            assert all(len(b[1]) % batch == 0 for b in blocks[:-1])  # whole batches
            assert all(len(b[1]) <= per_block * batch for b in blocks)
            seen = np.concatenate([b[1] for b in blocks])
            np.testing.assert_array_equal(np.sort(seen), y)  # every row once
            for block in blocks:
                np.testing.assert_array_equal(block[0], x[block[1]])
            order = numpy_rows.NumpyOrder(rows, batch, 3, shuffle == "batch")
            if shuffle:
                want = np.concatenate(
                    [
                        order.rows(np.int64(pass_index), np.int64(b))
                        for b in range(math.ceil(rows / batch))
                    ]
                )
                np.testing.assert_array_equal(seen, want)
            else:
                np.testing.assert_array_equal(seen, y)
    finally:
        numpy_rows.BLOCK_BYTES = old
