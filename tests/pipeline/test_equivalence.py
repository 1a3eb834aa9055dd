"""Property: every input form of the same data yields the same rows (and shuffles fairly)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.testing import epoch_batches, epoch_rows, flat_rows
from fitpipe.testing.fixtures import weight_of_rows
from fitpipe.testing.forms import equivalent_forms
from fitpipe.testing.strategies import Example, examples


def expected_rows(example: Example) -> tuple[np.ndarray, ...]:
    parts = [example.x, example.y, example.sample_weight]
    present = [p for p in parts if p is not None]
    return tuple(np.asarray(p, np.float64).reshape(example.rows, -1) for p in present)


def joined(rows: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.concatenate(rows, axis=1)


def sorted_rows(table: np.ndarray) -> np.ndarray:
    return table[np.lexsort(table.T[::-1])]


@given(examples())
def test_every_form_yields_the_same_rows_and_batches_in_order(example: Example) -> None:
    expected = expected_rows(example)
    full, last = divmod(example.rows, example.batch_size)
    expected_sizes = [example.batch_size] * full + ([last] if last else [])
    for form in equivalent_forms(example.x, example.y, example.sample_weight, example.batch_size):
        args, kwargs = form.build()
        # Columnar forms (Arrow table, Parquet file) pass their declared schema themselves.
        assert kwargs.get("schema") is form.schema, form.name
        with fitpipe.adapt(*args, **kwargs) as pipeline:
            assert pipeline.adapter == form.adapter, form.name
            for epoch in range(2 if form.row_addressed else 1):
                if pipeline.num_batches is not None:
                    assert pipeline.num_batches == len(expected_sizes), form.name
                batches = epoch_batches(pipeline)
                sizes = [len(tf.nest.flatten(batch[0])[0]) for batch in batches]
                assert sizes == expected_sizes, form.name
                assert {len(batch) for batch in batches} == {len(expected)}, form.name
                for i, want in enumerate(expected):
                    got = np.concatenate([flat_rows(batch[i]) for batch in batches])
                    np.testing.assert_array_equal(got, want, err_msg=f"{form.name} {epoch}")
                pipeline.on_epoch_end()


@given(examples(weights="of_rows"), st.integers(0, 2**31 - 2))
def test_shuffled_forms_yield_the_same_multiset_with_aligned_weights(
    example: Example, seed: int
) -> None:
    expected = sorted_rows(joined(expected_rows(example)))
    keras.utils.set_random_seed(seed)
    for form in equivalent_forms(example.x, example.y, example.sample_weight, example.batch_size):
        if not form.row_addressed:
            continue
        args, kwargs = form.build()
        with fitpipe.adapt(*args, shuffle=True, **kwargs) as pipeline:
            for _ in range(2):
                x_rows, y_rows, w_rows = epoch_rows(pipeline)
                np.testing.assert_array_equal(
                    w_rows[:, 0], weight_of_rows(x_rows.astype(np.float32)), err_msg=form.name
                )
                np.testing.assert_array_equal(
                    sorted_rows(joined((x_rows, y_rows, w_rows))), expected, err_msg=form.name
                )
                pipeline.on_epoch_end()


@given(examples(max_rows=24, weights="none").filter(lambda e: e.rows >= 8), st.integers(0, 99))
def test_shuffle_changes_the_order_between_epochs(example: Example, seed: int) -> None:
    # Rows are told apart by their index as the target, so any reordering shows.
    ids = np.arange(example.rows)
    keras.utils.set_random_seed(seed)
    pipeline = fitpipe.adapt(example.x, ids, batch_size=example.batch_size, shuffle=True)
    orders = {tuple(epoch_rows(pipeline)[1][:, 0].astype(int)) for _ in range(4)}
    assert all(sorted(order) == list(ids) for order in orders)
    assert len(orders) > 1
