"""Copying and pickling a ``Trainer``: a trainer of a copied model, with the same settings."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
from differential import dense_model, regression_data

import fitpipe
from fitpipe.testing.keras_diff import assert_weights_close
from fitpipe.training.state import state_of

X, Y = regression_data(n=64, d=4)
FIT: dict[str, Any] = {
    "x": X,
    "y": Y,
    "batch_size": 16,
    "epochs": 2,
    "shuffle": False,
    "verbose": 0,
}

COPIES: dict[str, Callable[[Any], Any]] = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda trainer: pickle.loads(pickle.dumps(trainer)),
}


def _functional(cls: type[keras.Model]) -> keras.Model:
    inp = keras.Input((4,))
    return cls(inp, keras.layers.Dense(1)(keras.layers.Dense(8, activation="tanh")(inp)))


MODELS: dict[str, Callable[[], keras.Model]] = {
    "keras functional": lambda: _functional(keras.Model),
    "keras sequential": dense_model,
    "fitpipe functional": lambda: _functional(fitpipe.Model),
    "fitpipe sequential": lambda: dense_model(cls=fitpipe.Sequential),
}


def _trained(build: str, spe: Any, jit: Any) -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(MODELS[build]())
    trainer.compile("adam", "mse", metrics=["mae"], steps_per_execution=spe, jit_compile=jit)
    trainer.fit(**{**FIT, "epochs": 1})  # the optimizer's moments are part of what is copied
    return trainer


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize(
    ("build", "spe", "jit"),
    [
        ("keras functional", "auto", False),
        ("keras sequential", 3, "auto"),
        ("fitpipe functional", 1, False),
        ("fitpipe sequential", "auto", "auto"),
    ],
)
def test_a_copied_trainer_trains_its_own_model_as_the_original(
    how: str, build: str, spe: Any, jit: Any
) -> None:
    trainer = _trained(build, spe, jit)
    weights = trainer.model.get_weights()
    twin = COPIES[how](trainer)
    assert twin.model is not trainer.model
    assert twin._state is state_of(twin.model)
    assert (twin.steps_per_execution, twin.tuning["jit_compile"]) == (spe, jit)
    assert twin.evaluate(X, Y, verbose=0) == pytest.approx(trainer.evaluate(X, Y, verbose=0))
    got = twin.fit(**FIT).history
    original = trainer.model.get_weights()  # not trained by the copy's fit
    for ours, theirs in zip(original, weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    want = trainer.fit(**FIT).history
    assert got == pytest.approx(want, rel=1e-6)
    assert_weights_close(trainer.model, twin.model, atol=1e-6)
    assert (trainer.steps_per_execution, trainer.tuning["jit_compile"]) == (spe, jit)


@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_keeps_a_later_keras_compile(how: str) -> None:
    trainer = _trained("keras functional", "auto", False)
    trainer.model.compile("sgd", "mse", steps_per_execution=2)  # Keras' own: it takes over
    twin = COPIES[how](trainer)
    assert twin.steps_per_execution is None
    assert twin.model.steps_per_execution == 2
    twin.fit(**FIT)


@pytest.mark.parametrize("how", sorted(COPIES))
def test_an_uncompiled_trainer_copies(how: str) -> None:
    trainer = fitpipe.Trainer(_functional(keras.Model))
    twin = COPIES[how](trainer)
    assert twin.steps_per_execution is None
    np.testing.assert_allclose(twin.predict(X, verbose=0), trainer.predict(X, verbose=0))


def test_a_shallow_copy_trains_the_same_model() -> None:
    trainer = _trained("keras functional", "auto", False)
    twin = copy.copy(trainer)
    assert twin.model is trainer.model
    assert twin._state is trainer._state


def test_copies_share_what_was_shared() -> None:
    trainer = _trained("fitpipe functional", "auto", False)
    twin, model = copy.deepcopy([trainer, trainer.model])
    assert twin.model is model is not trainer.model
