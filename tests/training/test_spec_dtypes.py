"""Dtypes no input form may bring to the model's step, refused alike in every form.

float8 and int4 numbers (``ml_dtypes``) fail inside TensorFlow (no ``Switch`` kernel, no
cast to floats); complex targets and weights lose their imaginary parts in Keras' loss. NumPy
arrays of them were refused in words; tensors, ``tf.data`` datasets and generators were not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.adapters.numbers import complex_refusal, dtype_refusal
from fitpipe.errors import FitpipeTypeError, message
from fitpipe.testing.strategies import narrow_number_dtypes

ROWS = 8
X = np.arange(ROWS * 2, dtype="float32").reshape(ROWS, 2) / 10
Y = np.linspace(0, 1, ROWS, dtype="float32").reshape(ROWS, 1)
W = np.ones(ROWS, "float32")
PARTS = ("x", "y", "sample_weight")
#: Input forms, each a function of the batch's parts to the arguments ``(x, y, sample_weight)``
#: (or as many of them as parts).
FORMS: dict[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]] = {
    "ndarray": lambda parts: parts,
    "tensor": lambda parts: tuple(tf.constant(p) for p in parts),
    "tf.data": lambda parts: (tf.data.Dataset.from_tensor_slices(parts).batch(4), None, None),
    "generator": lambda parts: (
        (tuple(p[s : s + 4] for p in parts) for s in range(0, ROWS, 4)),
        None,
        None,
    ),
    "generator of tensors": lambda parts: (
        (tuple(tf.constant(p[s : s + 4]) for p in parts) for s in range(0, ROWS, 4)),
        None,
        None,
    ),
}
ON_BATCH_FORMS = ("ndarray", "tensor")

_TRAINER: dict[str, fitpipe.Trainer] = {}


def _trainer() -> fitpipe.Trainer:
    """One compiled trainer for every example: the refusals come before any step."""
    if "trainer" not in _TRAINER:
        trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        trainer.compile(optimizer="sgd", loss="mse")
        _TRAINER["trainer"] = trainer
    return _TRAINER["trainer"]


def _call(trainer: Any, method: str, form: str, parts: tuple[Any, ...]) -> None:
    x, y, weights = (*FORMS[form](parts), None, None)[:3]
    if method == "fit":
        trainer.fit(x, y, sample_weight=weights, epochs=1, verbose=0)
    elif method == "evaluate":
        trainer.evaluate(x, y, sample_weight=weights, verbose=0)
    elif method == "predict":
        trainer.predict(x, verbose=0)
    else:
        getattr(trainer, method)(x, y, sample_weight=weights)


@st.composite
def _cases(draw: st.DrawFn, parts: tuple[str, ...]) -> tuple[str, str, str]:
    """A method, an input form it takes, and the part of the batch that is wrong."""
    part = draw(st.sampled_from(parts))
    methods = ["fit", "evaluate", "train_on_batch", "test_on_batch"]
    method = draw(st.sampled_from([*methods, "predict"] if part == "x" else methods))
    forms = ON_BATCH_FORMS if method.endswith("_on_batch") else tuple(FORMS)
    return method, draw(st.sampled_from(forms)), part


def _batch(part: str, dtype: Any) -> tuple[np.ndarray, ...]:
    """``(x, y, sample_weight)`` with ``part`` in ``dtype`` (``x`` alone for predict)."""
    return tuple(
        a.astype(dtype) if name == part else a for name, a in zip(PARTS, (X, Y, W), strict=True)
    )


@settings(max_examples=40, deadline=None)
@given(case=_cases(PARTS), dtype=narrow_number_dtypes())
def test_float8_and_int4_are_refused_alike_in_every_form(
    case: tuple[str, str, str], dtype: np.dtype
) -> None:
    method, form, part = case
    parts = _batch(part, dtype)[: 1 if method == "predict" else 3]
    expected = message(method, *dtype_refusal(part, dtype))  # the NumPy arrays' words
    with pytest.raises(FitpipeTypeError) as caught:
        _call(_trainer(), method, form, parts)
    assert str(caught.value).startswith(expected + " Received: "), str(caught.value)


@settings(max_examples=40, deadline=None)
@given(case=_cases(("y", "sample_weight")), dtype=st.sampled_from(["complex64", "complex128"]))
def test_complex_targets_and_weights_are_refused_alike_in_every_form(
    case: tuple[str, str, str], dtype: str
) -> None:
    """Keras casts them to the loss's floats: it trains on the real parts without a word."""
    method, form, part = case
    parts = tuple(
        (a + 1j * a).astype(dtype) if name == part else a
        for name, a in zip(PARTS, (X, Y, W), strict=True)
    )
    expected = message(method, *complex_refusal(part, dtype))
    with pytest.raises(FitpipeTypeError) as caught:
        _call(_trainer(), method, form, parts)
    assert str(caught.value).startswith(expected + " Received: "), str(caught.value)


@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch", "predict_on_batch"])
def test_complex_tensor_x_for_a_real_input_is_refused_on_batch(method: str) -> None:
    """As ``fit`` refuses it (Keras' ``*_on_batch`` drops the imaginary parts too)."""
    x = tf.constant((X + 1j * X).astype("complex64"))
    with pytest.raises(FitpipeTypeError, match=r"of dtype complex64: complex values"):
        if method == "predict_on_batch":
            _trainer().predict_on_batch(x)
        else:
            getattr(_trainer(), method)(x, Y)


class ComplexTargets(keras.Model):
    """A custom step that reads complex targets itself: their magnitude."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x: Any) -> Any:
        return self.dense(x)

    def train_step(self, data: Any) -> Any:
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.abs(y) - self(x)))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss}


@pytest.mark.parametrize("form", ["tensor", "tf.data"])
def test_complex_targets_of_a_custom_step_are_its_own(form: str) -> None:
    """A custom ``train_step`` decides what its targets are: Keras hands them over as they are."""
    model = ComplexTargets()
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    y = (Y + 1j * Y).astype("complex64")
    x, y_given = FORMS[form]((X, y))[:2]
    history = trainer.fit(x, y_given, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
