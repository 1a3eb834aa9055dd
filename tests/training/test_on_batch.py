"""Differential tests of ``train_on_batch``, ``test_on_batch`` and ``predict_on_batch``.

What the ``*_on_batch`` methods hand the model's steps, and the checks before them, against
Keras' methods of those names.
"""

from __future__ import annotations

from typing import Any

import keras
import ml_dtypes  # noqa: F401  (NumPy's bfloat16 for tf)
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.testing.keras_diff import assert_structures_close, compile_both, make_twins

ROWS = 6
RNG = np.random.default_rng(0)
# the dtypes NumPy arrays have that TensorFlow takes (bfloat16 only as a tensor: see r05)
_DTYPES = ["float16", "float32", "float64", "bfloat16", "int32", "int64", "uint8", "bool"]


class StepRecorder(keras.Model):
    """Records the dtypes of the batches its steps are given (at trace time).

    Its steps run Keras' own on the batch cast to float32, so any dtype trains.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen: list[Any] = []

    def call(self, x: Any) -> Any:
        return self.dense(tf.cast(x, "float32"))

    def _record(self, data: Any) -> Any:
        self.seen.append([t.dtype.name for t in tf.nest.flatten(data) if t is not None])
        return tf.nest.map_structure(lambda t: t if t is None else tf.cast(t, "float32"), data)

    def train_step(self, data: Any) -> Any:
        return super().train_step(self._record(data))

    def test_step(self, data: Any) -> Any:
        return super().test_step(self._record(data))

    def predict_step(self, data: Any) -> Any:
        return super().predict_step(self._record(data))


def _recorder() -> keras.Model:
    model = StepRecorder()
    model.build((None, 2))
    return model


def _tensor(values: np.ndarray, dtype: str) -> Any:
    if dtype == "bfloat16":  # fitpipe refuses NumPy bfloat16 arrays (r05); tensors pass
        return tf.cast(tf.constant(values.astype("float32")), tf.bfloat16)
    return values.astype(dtype)


@settings(deadline=None, max_examples=10)
@given(
    x_dtype=st.sampled_from(_DTYPES),
    y_dtype=st.sampled_from(_DTYPES),
    w_dtype=st.sampled_from([None, *_DTYPES]),
    floatx=st.sampled_from(["float32", "float64"]),
)
def test_on_batch_steps_get_the_batch_in_its_own_dtypes_as_in_keras(
    x_dtype: str, y_dtype: str, w_dtype: str | None, floatx: str
) -> None:
    """Keras casts floats to floatx only in ``fit``/``evaluate``/``predict``'s array adapter.

    Its ``*_on_batch`` hand the steps the batch as given. Before: fitpipe cast every float
    leaf of such a batch to floatx.
    """
    x = _tensor(RNG.integers(0, 2, (ROWS, 2)), x_dtype)
    y = _tensor(RNG.integers(0, 2, (ROWS, 1)), y_dtype)
    w = None if w_dtype is None else _tensor(RNG.integers(1, 3, ROWS), w_dtype)
    previous = keras.config.floatx()
    keras.config.set_floatx(floatx)
    try:
        ref, twin = make_twins(_recorder)
        api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
        for model in (ref, api):
            model.train_on_batch(x, y, sample_weight=w)
            model.test_on_batch(x, y, sample_weight=w)
            model.predict_on_batch(x)
    finally:
        keras.config.set_floatx(previous)
    # Keras hands (x, y, None) and (x,): the dtypes of the leaves given are compared
    assert twin.seen == ref.seen
    assert_structures_close(ref.get_weights(), twin.get_weights(), "weights")


def _float64_model() -> keras.Model:
    inputs = keras.Input((1,), dtype="float64")
    shifted = keras.layers.Lambda(lambda t: (t - 1.0) * 1e9, dtype="float64")(inputs)
    dense = keras.layers.Dense(1, dtype="float64", kernel_initializer="ones")
    return keras.Model(inputs, dense(shifted))


@pytest.mark.parametrize("method", ["predict", "test", "train"])
def test_float64_model_on_batch_sees_float64_rows_as_in_keras(method: str) -> None:
    """Rows 1e-9 apart (float64) reach a float64 model unrounded. Before: rounded to float32."""
    x = np.array([[1.0 + 1e-9], [1.0 + 2e-9], [1.0 + 3e-9], [1.0 - 1e-9]])
    y = np.array([[1.0], [2.0], [3.0], [-1.0]])
    ref, twin = make_twins(_float64_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    if method == "predict":
        expected, got = ref.predict_on_batch(x), api.predict_on_batch(x)
    else:
        expected = getattr(ref, f"{method}_on_batch")(x, y)
        got = getattr(api, f"{method}_on_batch")(x, y)
        assert got < 1e-6  # the float32-rounded rows gave 3.75
    assert_structures_close(expected, got, f"{method}_on_batch")
