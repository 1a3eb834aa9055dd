"""None targets for the outputs compiled without a loss, against Keras.

Keras trains ``loss=["mse", None]`` on ``y=[ya, None]`` (the second output needs no
target); a None target for an output with a loss fails in its step. fitpipe trains the first
as Keras does and refuses the second before any step, naming the output.
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

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3)).astype("float32")
YA = RNG.normal(size=(40, 1)).astype("float32")
BATCH = 8


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    a = keras.Input((3,))
    return keras.Model(
        a, [keras.layers.Dense(1, name="oa")(a), keras.layers.Dense(2, name="ob")(a)]
    )


def _batches(y: Any) -> Iterator[tuple[np.ndarray, Any]]:
    for i in range(0, len(X), BATCH):
        if isinstance(y, dict):
            part = {k: None if v is None else v[i : i + BATCH] for k, v in y.items()}
            yield X[i : i + BATCH], part
        else:
            yield X[i : i + BATCH], type(y)(YA[i : i + BATCH] if v is not None else None for v in y)


def _data(form: str, y: Any) -> dict[str, Any]:
    if form == "arrays":
        return {"x": X, "y": y, "batch_size": BATCH}
    if form == "generator":
        return {"x": _batches(y)}
    targets = y if isinstance(y, dict) else tuple(y)
    return {"x": tf.data.Dataset.from_tensor_slices((X, targets)).batch(BATCH)}


@pytest.mark.parametrize("form", ["arrays", "generator", "tf.data"])
@pytest.mark.parametrize("kind", [list, tuple, dict])
def test_none_target_of_an_output_without_loss_trains_as_in_keras(form: str, kind: type) -> None:
    compiled: dict[str, Any] = {"optimizer": "sgd", "loss": ["mse", None], "metrics": [["mae"], []]}
    y: Any = kind([YA, None]) if kind is not dict else {"oa": YA, "ob": None}
    if kind is dict:  # named by output: Keras' compiled loss reads `y` by the loss's keys
        compiled.update(loss={"oa": "mse", "ob": None}, metrics={"oa": ["mae"]})
    reference, twin = _model(), _model()
    reference.compile(**compiled)
    trainer = fitpipe.Trainer(twin)
    trainer.compile(**compiled)
    expected = reference.fit(X, y, batch_size=BATCH, shuffle=False, verbose=0)
    got = trainer.fit(**_data(form, y), shuffle=False, verbose=0)
    assert_histories_close(expected, got, check_params=form != "generator")
    assert_weights_close(reference, twin)
    for name in ("train_on_batch", "test_on_batch"):
        assert np.allclose(getattr(reference, name)(X, y), getattr(trainer, name)(X, y), 1e-5)
    keras_eval = reference.evaluate(X, y, verbose=0, return_dict=True)
    assert keras_eval == pytest.approx(trainer.evaluate(X, y, verbose=0, return_dict=True))
    expected_predictions = reference.predict(X, verbose=0)
    np.testing.assert_allclose(expected_predictions[1], trainer.predict(X, verbose=0)[1])


@settings(max_examples=min(6, settings.default.max_examples), deadline=None)
@given(form=st.sampled_from(["arrays", "generator", "tf.data"]))
def test_none_target_of_an_output_with_a_loss_is_refused_clearly(form: str) -> None:
    y = [YA, None]
    reference = _model()
    reference.compile(optimizer="sgd", loss=["mse", "mse"])
    with pytest.raises(ValueError, match="None values not supported"):
        reference.fit(X, y, verbose=0)
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss=["mse", "mse"])
    with pytest.raises(DataMismatchError, match=r"None as the target of output 'ob'.*loss=") as got:
        trainer.fit(**_data(form, y), verbose=0)
    assert "Received: y=" in str(got.value)
