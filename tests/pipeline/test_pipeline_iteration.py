"""Iterating a pipeline: its batches, and an error producing one raised as ``fit`` raises it.

A loop over ``pipeline.dataset`` gets TensorFlow's wrapping of an error the input raised
(an ``InvalidArgumentError`` quoting it); a loop over the pipeline gets the error itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import SchemaError

SCHEMA = fitpipe.Schema("a", "y")


def _reader(rows: int, null_at: int, column: str = "a", chunk: int = 4) -> pa.RecordBatchReader:
    values = [float(i) for i in range(rows)]
    table = pa.table({"a": values, "y": values})
    held = table.column(column).to_pylist()
    held[null_at] = None
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(held))
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(chunk))


def _generator(fail_at: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(8):
        if i == fail_at:
            raise ValueError(f"the source broke at batch {i}")
        yield np.full((2, 1), i, "float32"), np.zeros((2, 1), "float32")


def _changing_dtype() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(8):
        x = np.full((2, 1), i, "float32") if i < 5 else np.array([["s"], ["t"]])
        yield x, np.zeros((2, 1), "float32")


class _Broken(keras.utils.PyDataset):
    """A ``PyDataset`` whose fourth batch fails."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index == 5:
            raise KeyError(f"no batch {index}")
        return np.full((2, 1), index, "float32"), np.zeros((2, 1), "float32")


#: Inputs whose later batches fail: ``(x, adapt's and fit's keywords)``.
FAILING: dict[str, Callable[[], tuple[Any, dict[str, Any]]]] = {
    "null in a feature column": lambda: (
        _reader(40, 30),
        {"schema": SCHEMA, "batch_size": 4},
    ),
    "null in a target column": lambda: (
        _reader(40, 33, "y"),
        {"schema": SCHEMA, "batch_size": 4},
    ),
    "a generator's own error": lambda: (_generator(6), {}),
    "a batch of another dtype": lambda: (_changing_dtype(), {}),
    "a PyDataset's own error": lambda: (_Broken(), {}),
}


def _fit_error(make: Callable[[], tuple[Any, dict[str, Any]]]) -> BaseException:
    x, kwargs = make()
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    with pytest.raises(Exception) as info:
        trainer.fit(x, verbose=0, **kwargs)
    return info.value


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_loop_over_the_pipeline_raises_the_error_fit_raises(case: str) -> None:
    want = _fit_error(FAILING[case])
    x, kwargs = FAILING[case]()
    with fitpipe.adapt(x, **kwargs) as pipeline:
        text = re.escape(str(want).replace("`fit`", "`adapt`"))
        with pytest.raises(type(want), match=f"^{text}$"):
            for _ in pipeline:
                pass


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_loop_over_the_dataset_gets_tensorflows_wrapping_and_take_error_the_error(
    case: str,
) -> None:
    x, kwargs = FAILING[case]()
    with fitpipe.adapt(x, **kwargs) as pipeline:
        with pytest.raises(tf.errors.OpError) as info:
            for _ in pipeline.dataset:
                pass
        kept = pipeline.take_error()
        assert kept is not None and str(kept).split(".")[0] in str(info.value)


@settings(max_examples=10, deadline=None)
@given(
    rows=st.integers(4, 48),
    chunk=st.integers(1, 8),
    data=st.data(),
)
def test_a_null_anywhere_is_named_with_its_row(rows: int, chunk: int, data: st.DataObject) -> None:
    # In a batch read ahead (`adapt` raises it) or a later one (the loop raises it).
    null_at = data.draw(st.integers(0, rows - 1))
    batch_size = data.draw(st.integers(1, 6))
    with pytest.raises(SchemaError, match=f"null in column 'a' at row {null_at} "):
        pipeline = fitpipe.adapt(
            _reader(rows, null_at, chunk=chunk), schema=SCHEMA, batch_size=batch_size
        )
        with pipeline:
            for _ in pipeline:
                pass


def test_a_loop_over_the_pipeline_gives_the_datasets_batches() -> None:
    x, y = np.arange(20, dtype="float32").reshape(10, 2), np.arange(10, dtype="float32")
    pipeline = fitpipe.adapt(x, y, batch_size=3)
    ours, theirs = list(pipeline), list(pipeline.dataset)
    assert len(ours) == len(theirs) == 4
    for got, want in zip(ours, theirs, strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def _below_three(i: tf.Tensor) -> tuple[tf.Tensor]:
    tf.debugging.assert_less(i, tf.constant(3, tf.int64))
    return (tf.cast(tf.reshape(i, (1, 1)), tf.float32),)


def test_tensorflows_own_errors_come_as_they_are() -> None:
    dataset = tf.data.Dataset.range(6).map(_below_three)
    with pytest.raises(tf.errors.InvalidArgumentError, match="assert"):
        for _ in fitpipe.adapt(dataset):
            pass
