"""Optional inputs given as None in a model's list or nested inputs, as Keras feeds them.

``keras.Model({"g": [a, b], "c": c}, ...)`` with ``b = keras.Input(..., optional=True)``
takes ``x={"g": [a_rows, None], "c": c_rows}`` in every method, and ``keras.Model([a, b],
...)`` takes ``x=[a_rows, None]``. Before, fitpipe found no adapter for such an ``x`` (only
a flat dict's None entries were left out), and even the full nested ``x`` failed: the step
put the optional input back, as None, at the top of the dict ("The input 'c' is not
optional, but None was passed").
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from test_nested_inputs import NESTINGS

import fitpipe
from fitpipe.testing.keras_diff import assert_structures_close, compile_both, make_twins
from fitpipe.training.absent_inputs import optional_inputs, restore_absent, strip_absent

ROWS = 8
RNG = np.random.default_rng(0)
METHODS = ("train_on_batch", "test_on_batch", "predict_on_batch", "fit", "evaluate", "predict")


class AddIfGiven(keras.layers.Layer):
    """Adds the optional input's row sums where it is given (Keras hands None where not)."""

    def call(self, main: Any, extra: Any = None) -> Any:
        if extra is None:
            return main
        return main + tf.reduce_sum(extra, axis=-1, keepdims=True)


def _model(widths: Any, optional_leaf: int) -> keras.Model:
    counter = iter(range(100))

    def make(width: int) -> Any:
        index = next(counter)
        return keras.Input((width,), name=f"in{index}", optional=index == optional_leaf)

    inputs = tf.nest.map_structure(make, widths)
    flat = tf.nest.flatten(inputs)
    required = [t for i, t in enumerate(flat) if i != optional_leaf]
    joined = keras.layers.Concatenate()(required) if len(required) > 1 else required[0]
    return keras.Model(inputs, AddIfGiven()(keras.layers.Dense(1)(joined), flat[optional_leaf]))


def _data(widths: Any, absent_leaf: int | None) -> Any:
    counter = iter(range(100))

    def make(width: int) -> Any:
        index = next(counter)
        return None if index == absent_leaf else RNG.normal(size=(ROWS, width)).astype("float32")

    return tf.nest.map_structure(make, widths)


def _call(model: Any, method: str, x: Any, y: np.ndarray) -> Any:
    if method == "predict_on_batch":
        return model.predict_on_batch(x)
    if method == "predict":
        return model.predict(x, batch_size=4, verbose=0)
    if method == "fit":
        return model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    if method == "evaluate":
        return model.evaluate(x, y, batch_size=4, verbose=0)
    return getattr(model, method)(x, y)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Any, int, bool, str]:
    """Nested input widths, which input is optional, whether it is absent, and a method."""
    flat_lists = st.lists(st.integers(1, 3), min_size=2, max_size=3)
    widths = draw(flat_lists | NESTINGS.filter(lambda w: len(tf.nest.flatten(w)) > 1))
    optional_leaf = draw(st.integers(0, len(tf.nest.flatten(widths)) - 1))
    return widths, optional_leaf, draw(st.booleans()), draw(st.sampled_from(METHODS))


@settings(max_examples=min(16, settings.default.max_examples), deadline=None)
@given(case=_cases())
def test_optional_nested_inputs_given_or_none_run_as_in_keras(
    case: tuple[Any, int, bool, str],
) -> None:
    widths, optional_leaf, absent, method = case
    x = _data(widths, optional_leaf if absent else None)
    y = RNG.normal(size=(ROWS, 1)).astype("float32")
    ref, twin = make_twins(lambda: _model(widths, optional_leaf))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    expected, got = _call(ref, method, x, y), _call(api, method, x, y)
    assert_structures_close(expected, got, method)
    assert_structures_close(ref.get_weights(), twin.get_weights(), "weights")


def test_none_for_a_nested_input_that_is_not_optional_is_refused_in_words() -> None:
    trainer = fitpipe.Trainer(_model({"g": [2, 1], "c": 1}, optional_leaf=2))
    trainer.compile(optimizer="sgd", loss="mse")
    x = _data({"g": [2, 1], "c": 1}, absent_leaf=1)  # 'in1', which is required
    y = RNG.normal(size=(ROWS, 1)).astype("float32")
    with pytest.raises(ValueError, match=r"got None for the model input 'in1', which is not opt"):
        trainer.train_on_batch(x, y)


def _flat_model(form: str) -> keras.Model:
    a, b = keras.Input((2,), name="in_a"), keras.Input((1,), name="in_b", optional=True)
    inputs = {"list": [a, b], "tuple": (a, b), "dict": {"ka": a, "kb": b}}[form]
    return keras.Model(inputs, AddIfGiven()(keras.layers.Dense(1)(a), b))


@pytest.mark.parametrize("form", ["list", "tuple", "dict"])
def test_a_flat_dict_by_input_names_is_stripped_and_restored_by_the_one_mechanism(
    form: str,
) -> None:
    """A dict ``x`` by the keys that name the inputs (the dict's own keys, else the inputs'
    names) is one more structure of the model's inputs: its None entries for optional inputs
    are left out before adaptation and come back as None in the step, whatever ``model.input``
    is; None for a required input is refused, named by that key."""
    model = _flat_model(form)
    required, optional = ("ka", "kb") if form == "dict" else ("in_a", "in_b")
    rows = np.ones((ROWS, 2), "float32")
    stripped = strip_absent(model, {required: rows, optional: None}, "fit")
    assert list(stripped) == [required]
    restored = restore_absent(optional_inputs(model), stripped)
    assert set(restored) == {required, optional} and restored[optional] is None
    with pytest.raises(ValueError, match=rf"got None for the model input '{required}', which"):
        strip_absent(model, {required: None, optional: rows[:, :1]}, "fit")
    trainer = fitpipe.Trainer(_flat_model(form))
    trainer.compile(optimizer="sgd", loss="mse")
    y = RNG.normal(size=(ROWS, 1)).astype("float32")
    assert np.isfinite(trainer.train_on_batch({required: rows, optional: None}, y))
