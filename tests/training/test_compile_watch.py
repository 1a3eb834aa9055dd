"""A ``compile`` from a callback during ``fit``: refused before any further step, as Keras.

Keras' train function is gone after a ``compile`` and its next step fails; fitpipe ran on
with its old step (a whole epoch, the weights moving) and failed later on the new metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import RecompiledError

X = np.random.default_rng(0).random((96, 4)).astype("float32")
Y = X.sum(axis=1, keepdims=True)


def _model() -> keras.Model:
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])


class Recompile(keras.callbacks.Callback):
    """Compiles the model again in ``hook`` (once), then counts the steps that follow."""

    def __init__(self, hook: str, same_optimizer: bool) -> None:
        super().__init__()
        self.hook, self.same, self.done, self.steps_after = hook, same_optimizer, False, 0
        self.weights: list[np.ndarray] = []

    def _compile(self) -> None:
        if self.done:
            return
        self.done = True
        self.weights = [w.copy() for w in self.model.get_weights()]
        optimizer = self.model.optimizer if self.same else keras.optimizers.Adam(0.01)
        self.model.compile(optimizer=optimizer, loss="mae", metrics=["mse"])

    def _at(self, hook: str, epoch_or_batch: int) -> None:
        if hook == self.hook and (hook == "on_train_begin" or epoch_or_batch >= 1):
            self._compile()

    def on_train_begin(self, logs: Any = None) -> None:
        self._at("on_train_begin", 0)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._at("on_epoch_begin", epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.done:
            self.steps_after += 1
        self._at("on_train_batch_end", batch)

    def on_test_end(self, logs: Any = None) -> None:
        self._at("on_test_end", 1)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._at("on_epoch_end", epoch + 1)


def _batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:
        for start in range(0, len(X), 16):
            yield X[start : start + 16], Y[start : start + 16]


def _inputs(kind: str) -> dict[str, Any]:
    if kind == "generator":
        return {"x": _batches(), "steps_per_epoch": 6}
    return {"x": X, "y": Y, "batch_size": 16}


HOOKS = ["on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end", "on_test_end"]


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("same_optimizer", [False, True])
@pytest.mark.parametrize("kind", ["numpy", "generator"])
@pytest.mark.parametrize("flavour", ["trainer", "fitpipe.Sequential"])
def test_a_compile_in_a_callback_stops_fit_before_any_further_step(
    hook: str, same_optimizer: bool, kind: str, flavour: str
) -> None:
    """No step after the compile (the weights as the hook left them), and a clear error.

    Keras' own ``fit`` stops there too (after the same hooks); a compile given the very
    optimizer it had is found at the epoch's end, where Keras stops at its next step.
    """
    callback = Recompile(hook, same_optimizer)
    model = _model()
    runner: Any = (
        fitpipe.Trainer(model) if flavour == "trainer" else fitpipe.Sequential(model.layers)
    )
    target = runner.model if flavour == "trainer" else runner
    runner.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    validation = {"validation_data": (X[:32], Y[:32])} if hook == "on_test_end" else {}
    with pytest.raises(RecompiledError, match=r"`fit` cannot go on: the model was compiled again"):
        runner.fit(
            **_inputs(kind), epochs=3, shuffle=False, callbacks=[callback], verbose=0, **validation
        )
    assert callback.done
    late = same_optimizer and hook == "on_train_batch_end"  # found at the epoch's end
    if not late:
        assert callback.steps_after == 0
        for before, after in zip(callback.weights, target.get_weights(), strict=True):
            np.testing.assert_array_equal(before, after)


def test_keras_stops_there_too() -> None:
    """The oracle: Keras' ``fit`` runs no step after a callback's compile."""
    callback = Recompile("on_epoch_end", same_optimizer=False)
    model = _model()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    with pytest.raises(Exception):  # noqa: B017 - Keras' own: 'NoneType' object is not callable
        model.fit(X, Y, batch_size=16, epochs=3, shuffle=False, callbacks=[callback], verbose=0)
    assert callback.steps_after == 0


def _two_outputs() -> keras.Model:
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4,))
    return keras.Model(inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(2)(inputs)])


@pytest.mark.parametrize(
    "callback",
    [
        lambda: keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: None),
        lambda: keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
        lambda: keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0),
    ],
)
def test_no_compile_no_refusal_even_as_metrics_are_built(callback: Callable[[], Any]) -> None:
    """A model of two outputs adds its loss trackers at its first step: not a compile."""
    trainer = fitpipe.Trainer(_two_outputs())
    trainer.compile(optimizer="adam", loss=["mse", "mse"], metrics=[["mae"], ["mae"]])
    history = trainer.fit(
        X, [Y, np.hstack([Y, Y])], batch_size=16, epochs=3, callbacks=[callback()], verbose=0
    )
    assert len(history.history["loss"]) == 3
    history = trainer.fit(X, [Y, np.hstack([Y, Y])], batch_size=16, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_fit_after_the_refusal_trains_with_the_new_compile() -> None:
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(RecompiledError):
        trainer.fit(X, Y, epochs=2, callbacks=[Recompile("on_epoch_end", False)], verbose=0)
    history = trainer.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "mse"}
    assert isinstance(trainer.model.optimizer, keras.optimizers.Adam)


class RecompileInTest(keras.callbacks.Callback):
    """Compiles the model again at its ``at``-th test batch."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == self.at:
            self.model.compile(optimizer="adam", loss="mae", metrics=["mse"])


@pytest.mark.parametrize("at", [0, 2, 5])
@pytest.mark.parametrize("kind", ["numpy", "generator"])
def test_a_compile_during_evaluate_is_named(at: int, kind: str) -> None:
    """It failed reading the new metrics, with Keras' raw "has not yet been built"."""
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    inputs = _inputs(kind)
    if kind == "generator":
        inputs["steps"] = inputs.pop("steps_per_epoch")
    with pytest.raises(RecompiledError, match=r"`evaluate` cannot go on: the model was compiled"):
        trainer.evaluate(**inputs, callbacks=[RecompileInTest(at)], verbose=0)
    logs = trainer.evaluate(X, Y, batch_size=16, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mse"}  # the new compile's, once the call is over


def test_a_compile_during_fit_validation_is_named_for_fit() -> None:
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    with pytest.raises(RecompiledError, match=r"`fit` cannot go on: .* `on_test_batch_end`"):
        trainer.fit(
            X,
            Y,
            batch_size=16,
            epochs=2,
            validation_data=(X[:48], Y[:48]),
            callbacks=[RecompileInTest(1)],
            verbose=0,
        )
