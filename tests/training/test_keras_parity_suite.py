"""Differential tests for the differences Keras' own test suite found (benchmarks/keras_suite).

Keras is the oracle: a ragged tensor fed to a ``keras.Input`` whose varying sizes are
``None`` (not declared ``ragged=True``) reaches the model's layers and trains as in Keras,
``None`` given for an input that is not optional is a ``ValueError`` saying so, and a
generator may yield SciPy sparse or JAX BCOO batches, which train as ``tf.SparseTensor``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_close, assert_weights_close, compile_both, make_twins

# ------------------------------------------------------------ ragged data, input not ragged


class Scale(keras.layers.Layer):
    """Multiplies its input, ragged or not, by one trainable scalar."""

    def build(self, input_shape: Any) -> None:
        self.factor = self.add_weight(shape=(), initializer="ones")

    def call(self, x: Any) -> Any:
        return x * self.factor


def _ragged_mse(y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
    return tf.reduce_mean(tf.square((y_pred - y_true).flat_values))


def _scale_model() -> keras.Model:
    inputs = keras.Input((None,))  # sizes that vary are None; not declared ragged
    return keras.Model(inputs, Scale()(inputs))


RAGGED_X = tf.ragged.constant([[1.0], [2.0, 3.0], [4.0, 5.0, 6.0], [7.0], [8.0, 9.0]])
RAGGED_Y = RAGGED_X * 3.0


@pytest.mark.parametrize("jit_compile", ["auto", False])  # Keras: no XLA kernel either
def test_ragged_data_trains_an_input_whose_varying_sizes_are_none(jit_compile: Any) -> None:
    # Before: fitpipe refused the data before the first step ("got rows of different lengths
    # (a ragged tensor) for input 0, which takes a dense tensor"), and with XLA (its "auto")
    # the compiled step failed on the ragged loss; Keras trains it (trainer_test.py,
    # test_trainer_with_raggeds).
    ref, twin = make_twins(_scale_model)
    compile_kwargs = {"optimizer": "sgd", "loss": _ragged_mse, "jit_compile": jit_compile}
    api = compile_both(ref, twin, compile_kwargs)
    fit_kwargs = {"batch_size": 2, "epochs": 2, "verbose": 0, "shuffle": False}
    expected = ref.fit(RAGGED_X, RAGGED_Y, **fit_kwargs).history
    got = api.fit(RAGGED_X, RAGGED_Y, **fit_kwargs).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)
    assert_close(
        ref.evaluate(RAGGED_X, RAGGED_Y, batch_size=2, verbose=0),
        api.evaluate(RAGGED_X, RAGGED_Y, batch_size=2, verbose=0),
        "evaluate",
    )
    predicted = api.predict(RAGGED_X, batch_size=2, verbose=0)
    assert isinstance(predicted, tf.RaggedTensor)
    assert_close(
        ref.predict(RAGGED_X, batch_size=2, verbose=0).flat_values,
        predicted.flat_values,
        "predict",
    )


def test_ragged_data_for_an_input_of_a_fixed_size_is_refused() -> None:
    inputs = keras.Input((3,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataMismatchError, match=r"ragged.*fixed size.*\(None, 3\)"):
        trainer.predict(RAGGED_X, verbose=0)


# --------------------------------------------------------------- None for a required input


def _two_inputs() -> keras.Model:
    a = keras.Input((2,), name="a")
    b = keras.Input((2,), name="b", optional=True)
    return keras.Model([a, b], keras.layers.Dense(1)(a))


X2 = np.ones((4, 2), "float32")
Y1 = np.ones((4, 1), "float32")


@pytest.mark.parametrize(
    "x",
    [[None, X2], {"a": None, "b": X2}],
    ids=["list", "dict"],
)
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "train_on_batch"])
def test_none_for_an_input_not_optional_is_a_value_error(x: Any, method: str) -> None:
    # Before: `fit` found no adapter for the list (a TypeError), or failed in the step.
    ref, twin = make_twins(_two_inputs)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    arguments = (x,) if method == "predict" else (x, Y1)
    kwargs = {} if method == "train_on_batch" else {"verbose": 0}
    with pytest.raises(ValueError, match="not optional"):
        getattr(ref, method)(*arguments, **kwargs)
    with pytest.raises(ValueError, match=r"`\w+` got None for the model input 'a', which is not"):
        getattr(api, method)(*arguments, **kwargs)


def test_none_for_an_optional_input_still_trains_as_keras() -> None:
    ref, twin = make_twins(_two_inputs)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    x = {"a": X2, "b": None}
    expected = ref.fit(x, Y1, batch_size=2, epochs=2, verbose=0, shuffle=False).history
    got = api.fit(x, Y1, batch_size=2, epochs=2, verbose=0, shuffle=False).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)


# ------------------------------------------------- SciPy and JAX sparse batches, generators


def _sparse_batches(kind: str) -> list[tuple[Any, np.ndarray]]:
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        dense = (rng.random((2, 4)) * (rng.random((2, 4)) < 0.4)).astype("float32")
        x: Any = scipy_sparse.csr_matrix(dense)
        if kind == "jax":
            x = pytest.importorskip("jax.experimental.sparse").BCOO.fromdense(dense)
        batches.append((x, rng.random((2, 3)).astype("float32")))
    return batches


def _sparse_input_model() -> keras.Model:
    inputs = keras.Input((4,), sparse=True)
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def _yielding(batches: list[Any]) -> Iterator[Any]:
    yield from batches  # a generator: Keras takes no other iterator


@pytest.mark.parametrize("kind", ["scipy", "jax"])
def test_sparse_batches_from_a_generator_train_as_keras(kind: str) -> None:
    # Before: a generator yielding SciPy sparse matrices or JAX BCOO arrays was refused at the
    # first batch ("`x` is an object array holding Python objects"), although fitpipe takes
    # both as arrays; Keras converts them to tf.SparseTensor (trainer_test.py, test_*_sparse_*).
    batches = _sparse_batches(kind)
    ref, twin = make_twins(_sparse_input_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse", "jit_compile": False})
    expected = ref.fit(_yielding(batches), epochs=1, verbose=0).history
    got = api.fit(_yielding(batches), epochs=1, verbose=0).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)
    assert_close(
        ref.evaluate(_yielding(batches), verbose=0),
        api.evaluate(_yielding(batches), verbose=0),
        "evaluate",
    )
    xs = [(x,) for x, _ in batches]
    assert_close(
        ref.predict(_yielding(xs), verbose=0), api.predict(_yielding(xs), verbose=0), "predict"
    )
