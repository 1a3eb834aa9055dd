"""The trainer's value check on streamed Parquet blocks (``checked_chunks``).

Blocks of converted rows are checked at once when clean and batch by batch otherwise; the
batches delivered, and where a raising check stops them, are the same as checking every
batch (``tf.data``'s ``rebatch`` then makes batches of the rows). A shuffle buffer's mix
handed on :class:`Reordered` (not gathered) is checked in its order, and passed on as it is
when clean.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.adapters.row_blocks import Reordered, checked_chunks, gathered


class _Bad(Exception):
    pass


class _Check:
    """Raises on a batch holding NaN; ``clean`` (when given) passes NaN-free blocks whole."""

    def __init__(self, with_clean: bool) -> None:
        self.calls: list[tuple[int, np.ndarray]] = []
        if with_clean:
            self.clean = lambda rows: bool(np.isfinite(rows[0]).all())

    def __call__(self, index: int, batch: tuple[Any, ...]) -> None:
        self.calls.append((index, batch[0][:, 0].copy()))
        if not np.isfinite(batch[0]).all():
            raise _Bad(index)


@settings(deadline=None, max_examples=200)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    size=st.integers(1, 7),
    with_clean=st.booleans(),
    data=st.data(),
)
def test_blocks_deliver_the_rows_before_the_first_bad_batch(
    sizes: list[int], size: int, with_clean: bool, data: st.DataObject
) -> None:
    rows = sum(sizes)
    values = np.arange(rows, dtype="float32")[:, None]
    nan_at = data.draw(st.none() | st.integers(0, rows - 1))
    if nan_at is not None:
        values[nan_at, 0] = np.nan
    blocks: list[Any] = []
    in_order = []  # each block's rows in the order its batches take them
    for a, b in itertools.pairwise(np.cumsum([0, *sizes])):
        block = (values[a:b], values[a:b] * 2)
        if data.draw(st.booleans()):  # a shuffle buffer's mix, not gathered
            order = np.asarray(data.draw(st.permutations(range(b - a))), dtype=np.int64)
            blocks.append(Reordered(block, order))
            in_order.append(values[a:b][order])
        else:
            blocks.append(block)
            in_order.append(values[a:b])
    x = np.concatenate(in_order)
    bad = None if nan_at is None else int(np.flatnonzero(np.isnan(x[:, 0]))[0])
    check = _Check(with_clean)
    delivered: list[np.ndarray] = []
    stopped = None
    try:
        for block in checked_chunks(iter(blocks), check, size):
            if isinstance(block, Reordered):  # passed on whole: clean, as it was given
                assert with_clean and any(block is b for b in blocks)
            block = gathered(block)
            assert np.array_equal(block[1], block[0] * 2, equal_nan=True)  # rows stay aligned
            delivered.append(block[0][:, 0])
    except _Bad as err:
        stopped = err.args[0]
    got = np.concatenate(delivered) if delivered else np.zeros(0, "float32")
    if bad is None:
        assert stopped is None and np.array_equal(got, x[:, 0])
    else:  # every batch before the bad one, which never completes (rebatching drops a
        # batch begun in a clean block when the pass fails before it is full)
        assert stopped == bad // size
        assert len(got) // size == bad // size and bad >= len(got)
        assert np.array_equal(got, x[: len(got), 0])
    for index, batch in check.calls:  # each check saw one batch: whole, or (after a clean
        # block that began it) its rest
        want = x[index * size : (index + 1) * size, 0]
        assert len(batch) and np.array_equal(batch, want[len(want) - len(batch) :], equal_nan=True)
        assert with_clean or len(batch) == len(want)
    if not with_clean:  # batch by batch: each checked once, in order
        assert [i for i, _ in check.calls] == list(range(len(check.calls)))
