"""The metric strings ``"crossentropy"`` and ``"ce"`` are converted as Keras documents.

Keras' own ``compile`` refuses them as metrics; fitpipe's chooses the crossentropy by the
shapes, so each test compares with a Keras twin compiled with the explicit metric object.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import pytest
from differential import classification_data, dense_model

import fitpipe
from fitpipe.training.metric_strings import Crossentropy

X, LABELS = classification_data(n=80, d=6, classes=3)
ONE_HOT = np.eye(3, dtype="float32")[LABELS]
BIN = (LABELS > 0).astype("float32").reshape(-1, 1)
WEIGHTS = np.linspace(0.2, 2.0, 80).astype("float32")

#: (output units, activation, loss, targets, the Keras metric the strings stand for)
KINDS = {
    "binary": (1, "sigmoid", "binary_crossentropy", BIN, keras.metrics.BinaryCrossentropy),
    "categorical": (
        3,
        "softmax",
        "categorical_crossentropy",
        ONE_HOT,
        keras.metrics.CategoricalCrossentropy,
    ),
    "sparse": (
        3,
        "softmax",
        "sparse_categorical_crossentropy",
        LABELS,
        keras.metrics.SparseCategoricalCrossentropy,
    ),
    "sparse-column": (
        3,
        "softmax",
        "sparse_categorical_crossentropy",
        LABELS.reshape(-1, 1),
        keras.metrics.SparseCategoricalCrossentropy,
    ),
}


def _twins(units: int, activation: str) -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(1)
    ref = dense_model(d=6, units=units, activation=activation)
    twin = dense_model(d=6, units=units, activation=activation)
    twin.set_weights(ref.get_weights())
    return ref, twin


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", ["crossentropy", "ce", "CE"])
@pytest.mark.parametrize("weighted", [False, True], ids=["metrics", "weighted_metrics"])
def test_strings_equal_the_metric_the_shapes_call_for(kind: str, name: str, weighted: bool) -> None:
    units, activation, loss, y, metric = KINDS[kind]
    ref, twin = _twins(units, activation)
    arg = "weighted_metrics" if weighted else "metrics"
    ref.compile("sgd", loss, **{arg: [metric(name=name)]})  # type: ignore[operator]
    fitpipe.Trainer(twin).compile("sgd", loss, **{arg: [name]})
    kwargs: dict[str, Any] = {"batch_size": 16, "epochs": 2, "shuffle": False, "verbose": 0}
    kwargs["sample_weight"] = WEIGHTS
    want = ref.fit(X, y, **kwargs).history
    got = fitpipe.Trainer(twin).fit(X, y, **kwargs).history
    assert sorted(got) == sorted(want) == sorted(["loss", name])
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5)
    want_eval = ref.evaluate(X, y, sample_weight=WEIGHTS, return_dict=True, verbose=0)
    got_eval = fitpipe.Trainer(twin).evaluate(
        X, y, sample_weight=WEIGHTS, return_dict=True, verbose=0
    )
    np.testing.assert_allclose(got_eval[name], want_eval[name], rtol=1e-5)


def test_strings_per_output_in_nested_structures() -> None:
    inputs = keras.Input((6,))
    outputs = {
        "kind": keras.layers.Dense(3, activation="softmax", name="kind")(inputs),
        "flag": keras.layers.Dense(1, activation="sigmoid", name="flag")(inputs),
    }
    ref = keras.Model(inputs, outputs)
    twin = keras.Model.from_config(ref.get_config())
    twin.set_weights(ref.get_weights())
    loss = {"kind": "sparse_categorical_crossentropy", "flag": "binary_crossentropy"}
    ref.compile(
        "sgd",
        loss,
        metrics={
            "kind": [keras.metrics.SparseCategoricalCrossentropy(name="ce"), "accuracy"],
            "flag": (keras.metrics.BinaryCrossentropy(name="crossentropy"),),
        },
    )
    fitpipe.Trainer(twin).compile(
        "sgd", loss, metrics={"kind": ["ce", "accuracy"], "flag": ("crossentropy",)}
    )
    y = {"kind": LABELS, "flag": BIN}
    kwargs: dict[str, Any] = {"batch_size": 16, "epochs": 2, "shuffle": False, "verbose": 0}
    want = ref.fit(X, y, **kwargs).history
    got = fitpipe.Trainer(twin).fit(X, y, **kwargs).history
    assert sorted(got) == sorted(want)
    assert {"kind_ce", "flag_crossentropy"} <= set(got)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5)


def test_a_saved_model_keeps_the_converted_metric(tmp_path: Any) -> None:
    model = dense_model(d=6, units=3, activation="softmax", cls=fitpipe.Sequential)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["ce"])
    model.fit(X, LABELS, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.evaluate(X, LABELS, return_dict=True, verbose=0)["ce"] == pytest.approx(
        model.evaluate(X, LABELS, return_dict=True, verbose=0)["ce"], rel=1e-5
    )
    assert isinstance(Crossentropy.from_config(Crossentropy(name="ce").get_config()), Crossentropy)


def test_keras_compile_keeps_keras_own_refusal() -> None:
    model = dense_model(d=6, units=3, activation="softmax")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["ce"])
    with pytest.raises(ValueError, match="Could not interpret metric identifier: ce"):
        fitpipe.Trainer(model).fit(X, LABELS, epochs=1, verbose=0)
