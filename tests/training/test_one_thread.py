"""One thread at a time trains or evaluates a model; the same thread may call again inside.

Two threads' ``evaluate`` on one model reported each other's numbers (the model's one set
of metrics), silently, as Keras' own calls do: the second thread's call is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import ConcurrentUseError, RecompiledError

X = np.random.default_rng(0).random((64, 4)).astype("float32")
Y = X.sum(axis=1, keepdims=True)


def _trainer() -> fitpipe.Trainer:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return trainer


class Hold(keras.callbacks.Callback):
    """Holds the call it is given to at its first batch until told to go on."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.go = threading.Event(), threading.Event()

    def _hold(self) -> None:
        if not self.inside.is_set():
            self.inside.set()
            assert self.go.wait(60)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._hold()

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        self._hold()


RUNNING: dict[str, Callable[[fitpipe.Trainer, Hold], Any]] = {
    "fit": lambda t, hold: t.fit(X, Y, batch_size=16, epochs=2, callbacks=[hold], verbose=0),
    "evaluate": lambda t, hold: t.evaluate(X, Y, batch_size=16, callbacks=[hold], verbose=0),
}
SECOND: dict[str, Callable[[fitpipe.Trainer], Any]] = {
    "fit": lambda t: t.fit(X, Y, epochs=1, verbose=0),
    "evaluate": lambda t: t.evaluate(X, Y, verbose=0),
    "train_on_batch": lambda t: t.train_on_batch(X[:8], Y[:8]),
    "test_on_batch": lambda t: t.test_on_batch(X[:8], Y[:8]),
    "compile": lambda t: t.compile(optimizer="sgd", loss="mse", metrics=["mae"]),
}


def _while_running(running: str, trainer: fitpipe.Trainer, second: Callable[[], Any]) -> Any:
    """Runs ``second`` in this thread while another thread is inside ``running``."""
    hold = Hold()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(RUNNING[running], trainer, hold)
        assert hold.inside.wait(60)
        try:
            return second()
        finally:
            hold.go.set()
            first.result(timeout=120)


@pytest.mark.parametrize("running", list(RUNNING))
@pytest.mark.parametrize("second", list(SECOND))
def test_a_second_thread_is_refused_while_one_trains_or_evaluates(
    running: str, second: str
) -> None:
    trainer = _trainer()
    other = fitpipe.Trainer(trainer.model)  # a trainer of the same model: refused too
    pattern = rf"`{second}` cannot run on this model while another thread runs `{running}`"
    with pytest.raises(ConcurrentUseError, match=pattern):
        _while_running(running, trainer, lambda: SECOND[second](other))
    SECOND[second](trainer)  # the first call over, any thread may call again


@pytest.mark.parametrize("running", list(RUNNING))
def test_predictions_and_other_models_run_beside_it(running: str) -> None:
    trainer, other = _trainer(), _trainer()
    expected = trainer.predict(X, verbose=0)
    before = trainer.model.get_weights() if running == "evaluate" else None

    def beside() -> tuple[Any, ...]:
        return (
            trainer.predict_on_batch(X),
            other.evaluate(X, Y, verbose=0, return_dict=True),
            other.train_on_batch(X[:8], Y[:8]),
        )

    on_batch, _, _ = _while_running(running, trainer, beside)
    if before is not None:  # nothing trained: the predictions are the model's before
        np.testing.assert_allclose(on_batch, expected, rtol=1e-6)


def test_the_same_thread_may_call_again_inside_a_call() -> None:
    """A callback's ``evaluate`` and ``train_on_batch`` during ``fit`` (as in Keras)."""
    trainer, seen = _trainer(), []

    class Nested(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seen.append(trainer.evaluate(X, Y, verbose=0))
            seen.append(trainer.test_on_batch(X[:8], Y[:8]))

    trainer.fit(X, Y, batch_size=16, epochs=2, callbacks=[Nested()], verbose=0)
    assert len(seen) == 4


def test_a_failed_call_frees_the_model_for_other_threads() -> None:
    trainer = _trainer()
    with pytest.raises(ValueError, match="different numbers of samples"):
        trainer.fit(X, Y[:10], verbose=0)
    with ThreadPoolExecutor(1) as pool:
        logs = pool.submit(trainer.evaluate, X, Y, verbose=0, return_dict=True).result(60)
    assert set(logs) == {"loss", "mae"}


@pytest.mark.parametrize("running", list(RUNNING))
def test_keras_own_compile_from_another_thread_is_found(running: str) -> None:
    """Keras' ``model.compile`` cannot be refused: the run stops with an error that says so.

    ``evaluate`` failed reading the new, unbuilt metrics (Keras' "has not yet been built");
    ``fit``'s error said a callback had compiled.
    """
    trainer = _trainer()
    compile_ = lambda: trainer.model.compile(optimizer="adam", loss="mae")  # noqa: E731
    pattern = rf"`{running}` cannot go on: the model was compiled again .* or another thread's"
    with pytest.raises(RecompiledError, match=pattern):
        _while_running(running, trainer, compile_)
