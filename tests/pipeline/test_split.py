"""``validation_split``: validation of the argument and the split of row-addressed sources."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.adapters import AdaptRequest, ArraySource, check_supported
from fitpipe.errors import UnsupportedArgumentError
from fitpipe.pipeline import (
    PipelineOptions,
    adapt_source,
    check_validation_split,
    pipeline_from_source,
    split_source,
)
from fitpipe.testing import epoch_batches
from fitpipe.testing.fixtures import ArrayPyDataset

N = 10
X = np.arange(N * 2, dtype="float32").reshape(N, 2)
Y = np.arange(N, dtype="int64")
SW = np.arange(N, dtype="float32") / 10


@pytest.mark.parametrize("value", [0, 0.0, 0.2, 0.5, 0.999, np.float32(0.25)])
def test_check_validation_split_accepts_fractions(value: Any) -> None:
    assert check_validation_split(value) == pytest.approx(float(value))
    assert isinstance(check_validation_split(value), float)


@pytest.mark.parametrize("value", [1.5, -0.1, 1.0, "0.2", True, None, float("nan"), [0.2]])
def test_check_validation_split_rejects_others(value: Any) -> None:
    with pytest.raises(
        ValueError,
        match=r"^`fit` got an invalid `validation_split`\. .*"
        r"Received: validation_split=",
    ):
        check_validation_split(value)


def test_check_validation_split_names_the_caller() -> None:
    with pytest.raises(ValueError, match=r"^`evaluate` got an invalid `validation_split`"):
        check_validation_split(2, caller="evaluate")


def source_of(x: Any, y: Any = None, sample_weight: Any = None) -> ArraySource:
    _, source = adapt_source(AdaptRequest(x=x, y=y, sample_weight=sample_weight))
    assert isinstance(source, ArraySource)
    return source


@pytest.mark.parametrize(
    ("rows", "fraction"), [(10, 0.2), (10, 0.25), (10, 0.3), (7, 0.5), (100, 0.7), (3, 0.34)]
)
def test_split_takes_the_last_fraction_from_every_part(rows: int, fraction: float) -> None:
    x, y, sw = np.arange(rows * 2.0).reshape(rows, 2), np.arange(rows), np.arange(rows) / 2
    train, val = split_source(source_of(x, y, sw), fraction)
    cut = math.floor(rows * (1 - fraction))
    assert train.num_samples == cut
    assert val.num_samples == rows - cut
    np.testing.assert_array_equal(train.x, x[:cut])
    np.testing.assert_array_equal(train.y, y[:cut])
    np.testing.assert_array_equal(train.sample_weight, sw[:cut])
    np.testing.assert_array_equal(val.x, x[cut:])
    np.testing.assert_array_equal(val.y, y[cut:])
    np.testing.assert_array_equal(val.sample_weight, sw[cut:])


def test_split_slices_numpy_as_views() -> None:
    train, val = split_source(source_of(X, Y), 0.3)
    assert np.shares_memory(train.x, X)
    assert np.shares_memory(val.x, X)
    assert train.sample_weight is None
    assert val.sample_weight is None


def test_split_of_structures_tensors_and_pandas() -> None:
    x = {
        "a": tf.constant(X),
        "b": [pd.Series(Y * 2), tf.ragged.constant([[i] * (i % 3) for i in Y])],
    }
    train, val = split_source(source_of(x, pd.DataFrame({"t": Y})), 0.2)
    np.testing.assert_array_equal(val.x["a"].numpy(), X[8:])
    np.testing.assert_array_equal(val.x["b"][0], Y[8:] * 2)
    assert val.x["b"][1].to_list() == [[8, 8], []]
    np.testing.assert_array_equal(train.y, Y[:8, None])


def test_split_of_sparse_tensor() -> None:
    dense = np.zeros((N, 3), "float32")
    dense[np.arange(N), np.arange(N) % 3] = np.arange(1, N + 1)
    train, val = split_source(source_of(tf.sparse.from_dense(dense), Y), 0.3)
    np.testing.assert_array_equal(tf.sparse.to_dense(train.x).numpy(), dense[:7])
    np.testing.assert_array_equal(tf.sparse.to_dense(val.x).numpy(), dense[7:])


def test_split_happens_before_shuffling(seeded: Any) -> None:
    seeded(3)
    request = AdaptRequest(x=X, y=Y, sample_weight=SW, batch_size=3, shuffle=True)
    adapter, source = adapt_source(request)
    options = PipelineOptions.of(request)
    train, val = split_source(source, 0.4)
    train_ids = np.concatenate(
        [b[1] for b in epoch_batches(pipeline_from_source(adapter.name, train, options))]
    )
    val_ids = np.concatenate(
        [b[1] for b in epoch_batches(pipeline_from_source(adapter.name, val, options))]
    )
    np.testing.assert_array_equal(np.sort(train_ids), np.arange(6))
    np.testing.assert_array_equal(np.sort(val_ids), np.arange(6, 10))


@pytest.mark.parametrize(("rows", "fraction"), [(1, 0.5), (3, 0.99), (5, 0.0), (4, 1e-17)])
def test_split_of_too_few_rows_is_an_error(rows: int, fraction: float) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^`fit` cannot split {rows} samples with "
        r"`validation_split=",
    ):
        split_source(source_of(X[:rows]), fraction)


def test_validation_split_supported_by_array_adapters_only() -> None:
    names = ("validation_split",)
    for x in (X, {"a": X}, [X], tf.constant(X), pd.DataFrame(X)):
        request = AdaptRequest(x=x)
        adapter = fitpipe.registry.find(x)
        check_supported(adapter, request, names)  # no error

    batch_inputs = [
        tf.data.Dataset.from_tensor_slices((X, Y)).batch(2),
        (b for b in [(X, Y)]),
        ArrayPyDataset(X, Y, None, 4),
    ]
    for x in batch_inputs:
        adapter = fitpipe.registry.find(x)
        assert "validation_split" not in adapter.supports
        with pytest.raises(UnsupportedArgumentError) as info:
            check_supported(adapter, AdaptRequest(x=x), names)
        assert isinstance(info.value, ValueError)
        assert str(info.value).startswith(
            f"`adapt` does not support `validation_split` when `x` is {adapter.accepts}"
        )
        assert "Pass `validation_data` instead" in str(info.value)


def test_check_supported_names_the_caller() -> None:
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(2)
    request = AdaptRequest(x=dataset, caller="fit")
    with pytest.raises(ValueError, match=r"^`fit` does not support `validation_split`"):
        check_supported(fitpipe.registry.find(dataset), request, ("validation_split",))
