"""``assert_matches_keras``: agrees on every input form, and reports differences readably."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.testing import KerasComparison, assert_matches_keras
from fitpipe.testing.fixtures import ArrayPyDataset

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5]], "float32")).astype("float32")
W = RNG.uniform(0.5, 2.0, size=(40,)).astype("float32")


def build() -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])


def build_named() -> keras.Model:
    first = keras.Input((1,), name="first")
    rest = keras.Input((2,), name="rest")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([first, rest]))
    return keras.Model({"first": first, "rest": rest}, out)


def batches(repeat: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    while True:
        for start in range(0, len(X), 10):
            yield X[start : start + 10], Y[start : start + 10], W[start : start + 10]
        if not repeat:
            return


def test_arrays_with_weights_validation_and_metrics() -> None:
    result = assert_matches_keras(
        build,
        X,
        Y,
        compile_kwargs={
            "optimizer": keras.optimizers.Adam(0.01),
            "loss": "mse",
            "metrics": ["mae"],
        },
        sample_weight=W,
        batch_size=8,
        epochs=2,
        validation_split=0.25,
    )
    assert isinstance(result, KerasComparison)
    assert set(result.fitpipe_history.history) == {"loss", "mae", "val_loss", "val_mae"}


def test_dict_input() -> None:
    assert_matches_keras(
        build_named, {"first": X[:, :1], "rest": X[:, 1:]}, Y, batch_size=16, epochs=2
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(10), id="tf.data"),
        pytest.param(lambda: ArrayPyDataset(X, Y, W, 10), id="pydataset"),
    ],
)
def test_batch_inputs(make: Any) -> None:
    assert_matches_keras(build, make(), epochs=2)


def test_generator_factory_gives_each_side_a_fresh_generator() -> None:
    assert_matches_keras(build, lambda: batches(repeat=True), epochs=2, steps_per_epoch=4)


def _perturbing_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    original = fitpipe.Trainer.fit

    def fit(self: fitpipe.Trainer, *args: Any, **kwargs: Any) -> Any:
        history = original(self, *args, **kwargs)
        history.history["loss"][1] += 0.5
        kernel = self.model.layers[0].kernel
        kernel.assign(kernel + 1.0)
        return history

    monkeypatch.setattr(fitpipe.Trainer, "fit", fit)


def test_differences_are_listed_with_key_epoch_and_both_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _perturbing_fit(monkeypatch)
    with pytest.raises(AssertionError) as info:
        assert_matches_keras(build, X, Y, batch_size=8, epochs=2)
    text = str(info.value)
    assert "History['loss'] epoch 1: keras" in text
    assert "vs fitpipe" in text
    assert "History['loss'] epoch 0" not in text  # only what differs is listed
    assert re.search(r"weight '[\w/]+/kernel': 12 of 12 values differ", text)
    assert "evaluate['loss']: keras" in text
    assert "predict:" in text and "values differ; first at index" in text


def test_history_key_and_params_differences_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    original = fitpipe.Trainer.fit

    def fit(self: fitpipe.Trainer, *args: Any, **kwargs: Any) -> Any:
        history = original(self, *args, **kwargs)
        history.history["extra"] = [1.0]
        history.params["steps"] = 99
        return history

    monkeypatch.setattr(fitpipe.Trainer, "fit", fit)
    with pytest.raises(AssertionError) as info:
        assert_matches_keras(build, X, Y, batch_size=8)
    text = str(info.value)
    assert "only in fitpipe ['extra']" in text
    assert "History.params['steps']: keras 5 vs fitpipe 99" in text


def test_build_model_must_make_new_models() -> None:
    model = build()
    with pytest.raises(ValueError, match="new model"):
        assert_matches_keras(lambda: model, X, Y)
