"""TensorFlow's errors inside a step: only the data not fitting the model is fitpipe's to word.

A failing ``tf.data`` source (a missing or corrupt file, an assertion or a Python error in a
map) raised in the step was re-worded as a data mismatch ("could not run the model on the
input's batches"); Keras raises TensorFlow's error, of its own type, and so does fitpipe now.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf

import fitpipe
from fitpipe.errors import DataMismatchError, FitpipeError
from fitpipe.testing.keras_diff import assert_close, assert_weights_close, compile_both, make_twins
from fitpipe.training.step_errors import SPARSE_TARGETS

ROWS = 8
X = np.arange(ROWS * 2, dtype="float32").reshape(ROWS, 2) / 10
Y = np.linspace(0, 1, ROWS, dtype="float32").reshape(ROWS, 1)


def _pairs() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((X, Y))


def _asserting(_: Path) -> tf.data.Dataset:
    def check(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        tf.debugging.assert_less(tf.reduce_sum(x), -1.0, message="rows must be negative")
        return x, y

    return _pairs().map(check).batch(4)


def _python_error(error: type[Exception]) -> Callable[[Path], tf.data.Dataset]:
    def dataset(_: Path) -> tf.data.Dataset:
        def fail(x: tf.Tensor) -> Any:
            raise error("the record is unreadable")

        def read(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = tf.py_function(fail, [x], tf.float32)
            out.set_shape(x.shape)
            return out, y

        return _pairs().map(read).batch(4)

    return dataset


def _records(path: Path) -> tf.data.Dataset:
    def parse(_: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.zeros([2]), tf.zeros([1])

    return tf.data.TFRecordDataset([str(path)]).map(parse).batch(4)


def _missing_file(tmp: Path) -> tf.data.Dataset:
    return _records(tmp / "missing.tfrecord")


def _corrupt_file(tmp: Path) -> tf.data.Dataset:
    path = tmp / "corrupt.tfrecord"
    path.write_bytes(b"\x07" * 64)  # no record's framing
    return _records(path)


#: Each failing source, and the error Keras raises for it.
SOURCES: dict[str, tuple[Callable[[Path], tf.data.Dataset], type[Exception]]] = {
    "tf.debugging assertion in a map": (_asserting, tf.errors.InvalidArgumentError),
    "ValueError in a py_function": (_python_error(ValueError), tf.errors.InvalidArgumentError),
    "OSError in a py_function": (_python_error(OSError), tf.errors.UnknownError),
    "missing TFRecord file": (_missing_file, tf.errors.NotFoundError),
    "corrupt TFRecord file": (_corrupt_file, tf.errors.DataLossError),
}


def _run(model: Any, method: str, data: Any) -> None:
    if method == "fit":
        model.fit(data, epochs=1, verbose=0)
    else:
        getattr(model, method)(data, verbose=0)


def _model(kind: Callable[..., Any]) -> Any:
    model = kind([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize("run_eagerly", [False, True])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("source", list(SOURCES))
def test_a_failing_source_raises_tensorflows_error_as_keras_does(
    source: str, method: str, run_eagerly: bool, tmp_path: Path
) -> None:
    make, raised = SOURCES[source]
    keras_model = _model(keras.Sequential)
    with pytest.raises(raised):  # the oracle
        _run(keras_model, method, make(tmp_path))
    model = _model(fitpipe.Sequential)
    model.compile(optimizer="sgd", loss="mse", run_eagerly=run_eagerly)
    with pytest.raises(raised) as caught:
        _run(model, method, make(tmp_path))
    assert not isinstance(caught.value, FitpipeError), str(caught.value)


class Rows3(keras.layers.Layer):
    """Reshapes its input to rows of 3 values: data of other sizes fails when the step runs."""

    def call(self, x: Any) -> Any:
        return tf.reshape(x, [-1, 3])


@pytest.mark.parametrize("method", ["fit", "predict"])
def test_data_that_does_not_fit_the_model_when_run_is_still_a_mismatch(method: str) -> None:
    model = fitpipe.Sequential([keras.Input((None,)), Rows3(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((ROWS, 4), "float32"), Y)).batch(2)
    with pytest.raises(DataMismatchError, match="could not run the model") as caught:
        _run(model, method, data)
    assert isinstance(caught.value.__cause__, tf.errors.InvalidArgumentError)


class _UsersError(ValueError):
    """A model's own validation error (found from outside: re-worded as a data mismatch)."""


class _NumericsGuard(keras.layers.Layer):
    def call(self, x: Any) -> Any:
        return tf.debugging.check_numerics(x, "activations went NaN")


class _EagerCheck(keras.layers.Layer):
    def call(self, x: Any) -> Any:
        if tf.executing_eagerly():
            raise _UsersError("my domain check failed")
        return x

    def compute_output_shape(self, shape: Any) -> Any:
        return shape


class _TraceCheck(keras.layers.Layer):
    def call(self, x: Any) -> Any:
        raise ValueError("my layer refuses this batch")

    def compute_output_shape(self, shape: Any) -> Any:  # (not called to build the model)
        return shape


#: A layer raising an error of the user's own, and (``run_eagerly``) the error Keras raises.
GUARDS: dict[str, tuple[type[keras.layers.Layer], bool, type[Exception]]] = {
    "check_numerics": (_NumericsGuard, False, tf.errors.InvalidArgumentError),
    "check_numerics eagerly": (_NumericsGuard, True, tf.errors.InvalidArgumentError),
    "the user's ValueError subclass eagerly": (_EagerCheck, True, _UsersError),
    "the user's ValueError while traced": (_TraceCheck, False, ValueError),
}


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "train_on_batch"])
@pytest.mark.parametrize("guard", list(GUARDS))
def test_the_models_own_errors_come_back_as_keras_raises_them(guard: str, method: str) -> None:
    layer, eagerly, raised = GUARDS[guard]
    bad = keras.initializers.Constant(np.inf)  # the guard sees inf and NaN
    caught = []
    for kind in (keras.Sequential, fitpipe.Sequential):
        model = kind([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer=bad), layer()])
        model.compile(optimizer="sgd", loss="mse", run_eagerly=eagerly)
        with pytest.raises(raised) as error:
            if method == "train_on_batch":
                model.train_on_batch(X, Y)
            else:
                getattr(model, method)(X, *([Y] if method != "predict" else []), verbose=0)
        caught.append(error.value)
    keras_error, error = caught
    assert type(error) is type(keras_error), str(error)
    assert not isinstance(error, FitpipeError), str(error)


SPARSE_Y = np.eye(3, dtype="float32")[np.arange(24) % 3]
SPARSE_X = np.random.default_rng(3).normal(size=(24, 4)).astype("float32")


def _to_dense_mse(y_true: Any, y_pred: Any) -> Any:
    if isinstance(y_true, tf.SparseTensor):
        y_true = tf.sparse.to_dense(y_true)
    return tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)


def _three_outputs() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


@pytest.mark.parametrize("form", ["scipy", "tf.SparseTensor"])
@pytest.mark.parametrize("loss", ["huber", "msle", "own"])
def test_sparse_targets_train_as_keras_where_its_loss_takes_them(loss: str, form: str) -> None:
    # Keras' Huber and MeanSquaredLogarithmicError, and a loss of the user's, take sparse
    # targets: they are not refused.
    y = scipy.sparse.csr_matrix(SPARSE_Y) if form == "scipy" else tf.sparse.from_dense(SPARSE_Y)
    ref, twin = make_twins(_three_outputs)
    compiled = {"optimizer": "sgd", "loss": _to_dense_mse if loss == "own" else loss}
    api = compile_both(ref, twin, compiled)
    kwargs = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    expected = ref.fit(SPARSE_X, y, **kwargs).history["loss"]
    assert_close(expected, api.fit(SPARSE_X, y, **kwargs).history["loss"], "History loss")
    assert_weights_close(ref, twin)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "tf.data"])
@pytest.mark.parametrize("loss", ["mse", "categorical_crossentropy", "mae"])
def test_sparse_targets_a_loss_fails_on_are_noted_with_the_fix(loss: str, method: str) -> None:
    # Keras fails in its step with a raw TensorFlow error naming graph tensors ("Expected
    # float32, but got SparseTensor(indices=Tensor("data_1:0", ...)"); fitpipe raises the
    # same, noted with what was sparse and how to make it dense.
    trainer = fitpipe.Trainer(_three_outputs())
    trainer.compile(optimizer="sgd", loss=loss)
    y = scipy.sparse.csr_matrix(SPARSE_Y)
    with pytest.raises(TypeError, match="SparseTensor") as info:
        if method == "tf.data":
            parts = (SPARSE_X, tf.sparse.from_dense(SPARSE_Y))
            trainer.fit(tf.data.Dataset.from_tensor_slices(parts).batch(8), verbose=0)
        elif method == "train_on_batch":
            trainer.train_on_batch(SPARSE_X[:8], y[:8])
        else:
            getattr(trainer, method)(SPARSE_X, y, batch_size=8, verbose=0)
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "y=sparse float32(" in note and SPARSE_TARGETS in note, note
    assert "y.toarray()" in note and "tf.sparse.to_dense(y)" in note


@pytest.mark.parametrize(
    ("method", "rows", "batch_size"),
    [("fit", 30, None), ("fit", 30, 8), ("evaluate", 24, 6), ("predict", 24, None)],
)
def test_a_model_of_a_fixed_batch_size_names_it_in_the_fix(
    method: str, rows: int, batch_size: int | None
) -> None:
    # A stateful RNN (or `keras.Input(batch_shape=...)`) takes batches of one size: a batch of
    # another (the default 32, a shorter last one) fails in the step; the fix says the size.
    inputs = keras.Input(batch_shape=(8, 5, 2))
    hidden = keras.layers.LSTM(4, stateful=True)(inputs)
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(hidden)))
    trainer.compile(optimizer="sgd", loss="mse")
    x = np.zeros((rows, 5, 2), "float32")
    args = (x,) if method == "predict" else (x, x[:, 0, :1])
    with pytest.raises(DataMismatchError, match=r"batches of exactly 8 rows.*`batch_size=8`"):
        getattr(trainer, method)(*args, batch_size=batch_size, verbose=0)
    trainer.fit(x[:16], x[:16, 0, :1], batch_size=8, shuffle=False, verbose=0)  # as it must


def test_a_model_of_any_batch_size_gets_no_batch_size_fix() -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataMismatchError) as caught:
        trainer.fit(np.zeros((8, 3), "float32"), np.zeros((8, 4), "float32"), verbose=0)
    assert "batches of exactly" not in str(caught.value)
