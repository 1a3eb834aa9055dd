"""``fitpipe.adapt(..., steps=n)``: every iteration of the pipeline's dataset is at most ``n``
batches, whatever the input (it was ignored once the batch size was known: a repeating
``tf.data`` input gave an epoch that never ended, and ``num_batches`` said None)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe

X = np.arange(23, dtype="float32")[:, None]
Y = np.arange(23, dtype="float32")


def _input(form: str, batch: int, repeat: bool) -> dict[str, Any]:
    """``adapt``'s arguments for the rows of X and Y in batches of ``batch``."""
    if form == "arrays":
        return {"x": X, "y": Y, "batch_size": batch}
    if form == "generator":

        def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            starts = itertools.count(0, batch) if repeat else range(0, len(X), batch)
            for start in starts:
                start %= len(X)
                yield X[start : start + batch], Y[start : start + batch]

        return {"x": rows()}
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(batch)
    return {"x": dataset.repeat() if repeat else dataset}


@settings(max_examples=20, deadline=None)
@given(
    form=st.sampled_from(["arrays", "tf.data", "generator"]),
    batch=st.integers(1, 30),
    steps=st.integers(1, 30),
    repeat=st.booleans(),
)
def test_each_epoch_of_an_adapted_input_is_at_most_steps_batches(
    form: str, batch: int, steps: int, repeat: bool
) -> None:
    repeat = repeat and form != "arrays"
    in_a_pass = None if repeat else -(-len(X) // batch)
    expected = steps if in_a_pass is None else min(steps, in_a_pass)
    with fitpipe.adapt(**_input(form, batch, repeat), steps=steps) as pipeline:
        for _ in range(1 if form == "generator" else 2):  # a generator is read once
            counted = pipeline.num_batches
            assert counted == (steps if form == "generator" else expected)
            assert len(list(itertools.islice(pipeline.dataset, steps + 5))) == expected
            pipeline.on_epoch_end()


def test_steps_without_a_batch_size_still_sizes_the_batches_of_arrays() -> None:
    with fitpipe.adapt(X, Y, steps=3) as pipeline:
        assert pipeline.batch_size == 8
        assert [len(x) for x, _ in pipeline.dataset] == [8, 8, 7]
