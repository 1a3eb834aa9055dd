"""``sample_weight`` for a model of several outputs, in every layout, against Keras.

Keras takes one weight array per target array, nested as ``y`` is, or one array of a weight
per sample (replicated to every output); it refuses other layouts with a ``ValueError``.
fitpipe must agree on which layouts train (and train them as Keras does), and refuse the
others with its own error before any step, whatever the input form: arrays, a generator,
``tf.data``, and ``validation_data``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_histories_close, assert_weights_close

ROWS = 24
RNG = np.random.default_rng(0)
X = RNG.normal(size=(ROWS, 3)).astype("float32")
TARGETS = {"a": RNG.integers(0, 2, ROWS), "reg": RNG.normal(size=(ROWS, 1)).astype("float32")}
ONE = RNG.uniform(0.5, 2.0, ROWS).astype("float32")
WIDE = RNG.uniform(0.5, 2.0, (ROWS, 4)).astype("float32")


def _model(nested: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    a = keras.layers.Dense(2, activation="softmax", name="a")(inputs)
    reg = keras.layers.Dense(1, name="reg")(inputs)
    return keras.Model(inputs, {"a": a, "reg": reg} if nested == "dict" else [a, reg])


def _compiled(model: keras.Model, nested: str, trainer: bool) -> Any:
    loss: Any = {"a": "sparse_categorical_crossentropy", "reg": "mse"}
    metrics: Any = {"a": ["sparse_categorical_accuracy"], "reg": ["mae"]}
    if nested == "list":
        loss, metrics = list(loss.values()), list(metrics.values())
    target = fitpipe.Trainer(model) if trainer else model
    target.compile(optimizer="sgd", loss=loss, weighted_metrics=metrics)
    return target


def _y(nested: str) -> Any:
    return dict(TARGETS) if nested == "dict" else list(TARGETS.values())


# A layout: ("one" | "wide" | keys of a dict | a list's length).
layouts = st.one_of(
    st.sampled_from(["one", "one-column", "wide"]),
    st.lists(st.sampled_from(["a", "reg", "rge"]), min_size=1, max_size=3, unique=True).map(tuple),
    st.integers(1, 3),
)


def _weights(layout: Any) -> Any:
    if layout == "one":
        return ONE
    if layout == "one-column":
        return ONE[:, None]
    if layout == "wide":
        return WIDE
    if isinstance(layout, tuple):
        return {key: ONE * (i + 1) for i, key in enumerate(layout)}
    return [ONE * (i + 1) for i in range(layout)]


def _batches(y: Any, weights: Any) -> Iterator[tuple[Any, Any, Any]]:
    for start in range(0, ROWS, 8):
        rows = slice(start, start + 8)
        yield X[rows], _rows(y, rows), _rows(weights, rows)


def _rows(value: Any, rows: slice) -> Any:
    return tf.nest.map_structure(lambda v: v[rows], value)


def _tuples(value: Any) -> Any:
    """Lists as tuples: ``tf.data`` reads a list as one tensor to stack."""
    return tuple(value) if isinstance(value, list) else value


def _fit(trainer: fitpipe.Trainer, form: str, y: Any, weights: Any) -> Any:
    kwargs: dict[str, Any] = {"epochs": 2, "verbose": 0, "shuffle": False}
    if form == "arrays":
        return trainer.fit(X, y, sample_weight=weights, batch_size=8, **kwargs)
    if form == "generator":
        return trainer.fit(_batches(y, weights), **{**kwargs, "epochs": 1})
    if form == "tf.data":
        data = tf.data.Dataset.from_tensor_slices((X, _tuples(y), _tuples(weights))).batch(8)
        return trainer.fit(data, **kwargs)
    return trainer.fit(X, y, batch_size=8, validation_data=(X, y, weights), **kwargs)


@settings(max_examples=min(30, settings.default.max_examples), deadline=None)
@given(
    nested=st.sampled_from(["dict", "list"]),
    layout=layouts,
    form=st.sampled_from(["arrays", "generator", "tf.data", "validation"]),
)
def test_weight_layouts_train_or_are_refused_as_in_keras(
    nested: str, layout: Any, form: str
) -> None:
    y, weights = _y(nested), _weights(layout)
    keras_model = _compiled(_model(nested), nested, trainer=False)
    try:  # Keras checks arrays' layouts: the oracle for every form
        expected = keras_model.fit(
            X, y, sample_weight=weights, batch_size=8, epochs=2, verbose=0, shuffle=False
        )
    except ValueError as err:
        assert "sample_weight" in str(err), err  # Keras refused the layout, not the test
        expected = None
    trainer = _compiled(_model(nested), nested, trainer=True)
    if expected is None:
        with pytest.raises(DataMismatchError, match="`sample_weight`"):
            _fit(trainer, form, y, weights)
        return
    got = _fit(trainer, form, y, weights)
    if form == "arrays":
        assert_histories_close(expected, got)
        assert_weights_close(keras_model, trainer.model)
