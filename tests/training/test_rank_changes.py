"""Calls on one model whose batches change rank between them (targets (n, 1), then (n,)).

A notebook user fixes the shape of their labels and calls ``fit`` again on the same model.
Keras (and fitpipe before) retraced the one step for both shapes with ``reduce_retracing``,
which relaxes the target to a shape of unknown rank, and Keras' losses then fail with
"Cannot take the length of shape with unknown rank". Each rank signature now gets a step of
its own; the oracle is Keras with its train, test and predict functions remade between the
calls (``make_*_function(force=True)``), which trains the same weights.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

import fitpipe

ROWS, FEATURES = 48, 3


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, FEATURES)).astype("float32")
    return x, (x @ np.array([[0.5], [-1.0], [2.0]], "float32")).astype("float32")


def _target(y: np.ndarray, rank: int) -> np.ndarray:
    return y if rank == 2 else y[:, 0]


def _call(runner: Any, call: str, x: np.ndarray, y: np.ndarray) -> Any:
    if call == "fit":
        return runner.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    if call == "evaluate":
        return runner.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    return runner.train_on_batch(x[:8], y[:8], return_dict=True)


@pytest.mark.parametrize("ranks", [(2, 1, 2), (1, 2), (1, 2, 1, 2)])
@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
def test_targets_that_change_rank_between_calls_train_as_keras_remade(
    ranks: tuple[int, ...], call: str
) -> None:
    x, y = _data()
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse", metrics=["mae"], jit_compile=False)
    plain = _model()
    for rank in ranks:
        ours = _call(trainer, call, x, _target(y, rank))
        theirs = _call(plain, call, x, _target(y, rank))
        for make in (plain.make_train_function, plain.make_test_function):
            make(force=True)  # Keras' own step, traced again for the next rank
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, err_msg=key)
    for got, want in zip(trainer.model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_rank_seen_before_reuses_its_step() -> None:
    x, y = _data()
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse")
    for rank in (2, 1, 2, 1):
        trainer.fit(x, _target(y, rank), batch_size=8, verbose=0)
    assert sorted(trainer.tuning["xla"]) == ["train", "train ranks=(2, 1)"]
