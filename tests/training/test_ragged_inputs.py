"""A ragged tensor given for an input whose rows have a fixed size: as Keras where rows agree.

Keras hands the ragged tensor to the model's layers; where every row has the input's size
(``tf.ragged.constant`` of rows of one length) its ``Dense`` layer multiplies it as dense
rows, and ``fit``, ``evaluate``, ``predict`` and ``*_on_batch`` run. Before, fitpipe refused
it from its spec alone ("got rows of different lengths"), naming a list column and a
schema's ``lengths=`` for a tensor. Rows that do vary are still refused before any step
(Keras fails inside its step), worded for a tensor.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_close, assert_weights_close, compile_both, make_twins


def _uniform(rows: int, width: int) -> tf.RaggedTensor:
    values = np.random.default_rng(rows * 7 + width).normal(size=(rows, width))
    return tf.ragged.constant(values.astype("float32").tolist())


def _dense(width: int) -> keras.Model:
    return keras.Sequential([keras.Input((width,)), keras.layers.Dense(2)])


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(2, 12), width=st.integers(1, 5), batch_size=st.integers(1, 6))
def test_ragged_rows_of_the_inputs_size_run_as_keras(
    rows: int, width: int, batch_size: int
) -> None:
    x, y = _uniform(rows, width), np.ones((rows, 2), "float32")
    ref, twin = make_twins(lambda: _dense(width))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    kwargs = {"batch_size": batch_size, "shuffle": False, "verbose": 0}
    assert_close(
        ref.fit(x, y, **kwargs).history["loss"], api.fit(x, y, **kwargs).history["loss"], "fit"
    )
    assert_weights_close(ref, twin)
    assert_close(ref.evaluate(x, y, verbose=0), api.evaluate(x, y, verbose=0), "evaluate")
    assert_close(ref.predict(x, verbose=0), api.predict(x, verbose=0), "predict")
    assert_close(ref.train_on_batch(x, y), api.train_on_batch(x, y), "train_on_batch")
    assert_close(ref.predict_on_batch(x), api.predict_on_batch(x), "predict_on_batch")


CALLS: dict[str, Any] = {
    "fit": lambda t, x: t.fit(x, np.ones((6, 1)), verbose=0),
    "predict": lambda t, x: t.predict(x, verbose=0),
    "train_on_batch": lambda t, x: t.train_on_batch(x, np.ones((6, 1))),
    "predict_on_batch": lambda t, x: t.predict_on_batch(x),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_ragged_rows_that_vary_are_refused_worded_for_a_tensor(call: str) -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    x = tf.RaggedTensor.from_row_lengths(np.arange(16, dtype="float32"), [3, 2, 3, 3, 2, 3])
    with pytest.raises(DataMismatchError, match=r"ragged.*fixed size.*\(None, 3\)") as info:
        CALLS[call](trainer, x)
    text = str(info.value)
    assert "to_tensor(shape=" in text and "list column" not in text, text


@pytest.mark.parametrize("call", sorted(CALLS))
def test_ragged_rows_of_another_size_are_refused_by_their_shape(call: str) -> None:
    # Keras fails inside its step (RaggedMatMul: "Matrix size-incompatible").
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataMismatchError, match=r"shape \(None, 3\).*does not fit the model"):
        CALLS[call](trainer, _uniform(6, 3))


def test_a_stream_of_ragged_batches_is_refused_from_its_spec() -> None:
    # Its values are not known before the first step: a list column's fix named too.
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    x = tf.RaggedTensor.from_row_lengths(np.arange(16, dtype="float32"), [3, 2, 3, 3, 2, 3])
    batches = tf.data.Dataset.from_tensor_slices((x, np.ones((6, 1), "float32"))).batch(2)
    with pytest.raises(DataMismatchError, match=r"lengths=\{column: n\}.*to_tensor"):
        trainer.fit(batches, verbose=0)
