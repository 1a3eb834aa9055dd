"""Predictions of a model with a sparse output: a ``tf.SparseTensor``, as Keras returns it.

Before, a compiled ``predict`` call held every step's outputs in growable ``TensorArray``s
made for dense and ragged outputs only, and a sparse one failed the call ("Failed to convert
elements of SparseTensor ... to Tensor"), worded as a mismatch of the data; only
``predict_on_batch`` returned it. The oracle: Keras' ``predict`` of the same model and data,
its indices, values and dense shape, over batch sizes that do or do not divide the rows,
several steps per call, XLA on or off, run eagerly, alone or beside dense outputs.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeTypeError
from fitpipe.testing.keras_diff import make_twins


class ToSparse(keras.layers.Layer):
    """Its input as a ``tf.SparseTensor`` of the input's nonzero values."""

    def call(self, x: Any) -> Any:
        return tf.sparse.from_dense(x)

    def compute_output_shape(self, shape: Any) -> Any:
        return shape


def _build(structure: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    sparse = ToSparse()(keras.layers.ReLU()(keras.layers.Dense(4)(inputs)))
    dense = keras.layers.Dense(2)(inputs)
    outputs = {
        "sparse": sparse,
        "dict": {"s": sparse, "d": dense},
        "list": [dense, sparse],
    }[structure]
    return keras.Model(inputs, outputs)


VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"jit_compile": False},
    "auto": {"jit_compile": "auto"},
    "xla": {"jit_compile": True},
    "eager": {"run_eagerly": True},
    "3 steps per call": {"steps_per_execution": 3, "jit_compile": False},
}


@functools.cache
def _pair(structure: str, variant: str) -> tuple[keras.Model, fitpipe.Trainer]:
    ref, twin = make_twins(lambda: _build(structure))
    trainer = fitpipe.Trainer(twin)
    trainer.compile(optimizer="sgd", **VARIANTS[variant])
    return ref, trainer


def _assert_same(expected: Any, got: Any) -> None:
    flat_expected, flat_got = tf.nest.flatten(expected), tf.nest.flatten(got)
    assert len(flat_expected) == len(flat_got)
    for want, have in zip(flat_expected, flat_got, strict=True):
        if not isinstance(want, tf.SparseTensor):
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
            continue
        assert isinstance(have, tf.SparseTensor), type(have)
        assert have.dense_shape.numpy().tolist() == want.dense_shape.numpy().tolist()
        np.testing.assert_array_equal(have.indices.numpy(), want.indices.numpy())
        np.testing.assert_allclose(have.values.numpy(), want.values.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("structure", ["sparse", "dict", "list"])
@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 30), data=st.data())
def test_predict_returns_a_sparse_output_as_keras(
    structure: str, variant: str, rows: int, data: st.DataObject
) -> None:
    batch_size = data.draw(st.integers(1, rows + 3), label="batch_size")
    source = data.draw(st.sampled_from(["arrays", "tf.data"]), label="source")
    x = np.random.default_rng(rows).normal(size=(rows, 4)).astype("float32")
    ref, trainer = _pair(structure, variant)
    given_x: Any = x
    if source == "tf.data":
        given_x = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    kwargs = {"batch_size": batch_size} if source == "arrays" else {}
    expected = ref.predict(given_x, verbose=0, **kwargs)
    _assert_same(expected, trainer.predict(given_x, verbose=0, **kwargs))
    _assert_same(ref.predict_on_batch(x), trainer.predict_on_batch(x))


def test_predict_to_a_file_refuses_a_sparse_output_before_the_file_appears(
    tmp_path: Path,
) -> None:
    trainer = fitpipe.Trainer(_build("dict"))
    target = tmp_path / "predictions.parquet"
    x = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    with pytest.raises(
        FitpipeTypeError,
        match=r"cannot write model output 's' to `output`: it is a tf.SparseTensor.*"
        r"tf.sparse.to_dense",
    ):
        trainer.predict(x, output=target, batch_size=4, verbose=0)
    assert not target.exists()
