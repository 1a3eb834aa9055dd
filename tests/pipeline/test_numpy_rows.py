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


def test_an_order_is_4_bytes_a_row_below_2_to_the_32_and_hands_out_its_index_dtype(
    monkeypatch: Any,
) -> None:
    # From 2**31 rows the order is uint32 (an int64 order of 3e9 rows took 24 GB); the
    # indices handed out are int64 there, the dtype the pipeline declares.
    assert numpy_rows._order_dtype(2**31 - 1) is np.int32
    assert numpy_rows._order_dtype(2**31) is np.uint32
    assert numpy_rows._order_dtype(2**32 - 1) is np.uint32
    assert numpy_rows._order_dtype(2**32) is np.int64
    reference = numpy_rows.NumpyOrder(50, 7, seed=3)
    monkeypatch.setattr(numpy_rows, "_order_dtype", lambda size: np.uint32)
    wide = numpy_rows.NumpyOrder(50, 7, seed=3)
    wide.dtype = np.int64  # (as for 2**31 rows and more)
    for batch in range(8):
        got = wide.rows(np.int64(1), np.int64(batch))
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, reference.rows(np.int64(1), np.int64(batch)))
    assert wide.span(1, 2, 3).dtype == np.int64
    np.testing.assert_array_equal(wide.span(1, 2, 3), reference.span(1, 2, 3))


def test_an_order_over_the_machines_memory_share_is_refused_naming_the_fix(
    monkeypatch: Any,
) -> None:
    import keras
    import pytest

    import fitpipe
    from fitpipe import limits
    from fitpipe.errors import FitpipeValueError

    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # the arrays are read in blocks
    monkeypatch.setattr(numpy_rows, "_memory_bytes", lambda: 600)  # 300 bytes an order
    x = np.arange(200, dtype="float32").reshape(100, 2)
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(FitpipeValueError, match=r'row order of 100 rows.*shuffle="batch"'):
        trainer.fit(x, x[:, :1], batch_size=10, verbose=0)
    for shuffle in ("batch", False):
        trainer.fit(x, x[:, :1], batch_size=10, verbose=0, shuffle=shuffle)
    monkeypatch.setattr(numpy_rows, "_memory_bytes", lambda: 800)  # 400 bytes: it fits
    trainer.fit(x, x[:, :1], batch_size=10, verbose=0)
