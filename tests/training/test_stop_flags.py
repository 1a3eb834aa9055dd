"""``stop_training``, ``stop_evaluating`` and ``stop_predicting`` set by any hook: as in Keras.

Keras (one step a call) looks at the flag after each batch, so a flag set before a batch
(``on_train_begin``, ``on_epoch_begin``, ``on_test_begin``, ``on_predict_begin``) stops
after one more step. fitpipe's tuned calls of many steps looked at it only after a call: a
flag set at an epoch's begin ran the whole epoch (its calls are asked before each call now).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.testing.keras_diff import assert_histories_close, assert_weights_close
from fitpipe.testing.twins import compile_both, make_twins

RNG = np.random.default_rng(0)
X = RNG.normal(size=(100, 4)).astype("float32")
Y = X.sum(1, keepdims=True)
VAL = (X[:40], Y[:40])
HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_train_batch_end")


class StopAt(keras.callbacks.Callback):
    """Sets ``flag`` on the model in ``hook`` (at epoch or batch ``at`` where it has one)."""

    def __init__(self, hook: str, flag: str, at: int = 0) -> None:
        super().__init__()
        self.flag, self.at = flag, at
        setattr(self, hook, self._stop)

    def _stop(self, *args: Any, logs: Any = None) -> None:
        index = args[0] if args and isinstance(args[0], int) else self.at
        if index == self.at:
            setattr(self.model, self.flag, True)


def _model() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def _data(form: str) -> dict[str, Any]:
    if form == "arrays":
        return {"x": X, "y": Y, "batch_size": 10}
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(10)
    return {"x": dataset}


@settings(max_examples=12, deadline=None)
@given(
    hook=st.sampled_from(HOOKS),
    flag=st.sampled_from(["stop_training", "stop_evaluating"]),
    at=st.integers(0, 2),
    form=st.sampled_from(["arrays", "tf.data"]),
)
def test_a_flag_set_in_any_hook_of_fit_stops_where_keras_stops(
    hook: str, flag: str, at: int, form: str
) -> None:
    ref, twin = make_twins(_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    histories = []
    for side in (ref, api):
        kwargs = {"epochs": 3, "shuffle": False, "verbose": 0, "validation_data": VAL}
        kwargs["validation_batch_size"] = 10
        callbacks = [StopAt(hook, flag, at)]
        histories.append(side.fit(**_data(form), callbacks=callbacks, **kwargs))
    assert int(twin.optimizer.iterations) == int(ref.optimizer.iterations)
    assert histories[1].epoch == histories[0].epoch
    assert_histories_close(histories[0], histories[1])
    assert_weights_close(ref, twin)


@pytest.mark.parametrize("form", ["arrays", "tf.data"])
def test_evaluate_and_predict_stopped_at_their_begin_run_one_batch(form: str) -> None:
    ref, twin = make_twins(_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    for side in (ref, api):  # tuned calls of many steps on the fitpipe side
        side.fit(X, Y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    data = _data(form)
    features = {k: v for k, v in data.items() if k != "y"}
    if form == "tf.data":
        features["x"] = data["x"].map(lambda x, y: x)
    results = []
    for side in (ref, api):
        stop_eval, stop_predict = (
            StopAt("on_test_begin", "stop_evaluating"),
            StopAt("on_predict_begin", "stop_predicting"),
        )
        loss = side.evaluate(**data, verbose=0, callbacks=[stop_eval])
        predictions = side.predict(**features, verbose=0, callbacks=[stop_predict])
        results.append((loss, predictions))
    (ref_loss, ref_rows), (loss, rows) = results
    assert len(rows) == len(ref_rows) == 10
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(rows, ref_rows, rtol=1e-5, atol=1e-6)
