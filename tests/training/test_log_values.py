"""Log values a custom step returns that are no float: kept as Keras keeps them.

Keras' ``pythonify_logs`` turns each log value into a Python float where ``float()`` takes
it and keeps it otherwise: a string tensor stays a NumPy bytes array, ``None`` stays None, a
Python int becomes a float, a vector stays an array, a nested dict's entries take its key's
place. ``train_on_batch``, ``test_on_batch``, ``evaluate``, ``fit``'s History and the logs
callbacks see equal Keras' (a custom ``train_step``/``test_step`` returning such values).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe

RNG = np.random.default_rng(0)
X = RNG.normal(size=(10, 4)).astype("float32")
Y = RNG.normal(size=(10, 2)).astype("float32")

#: Log entries beside the loss, by kind (each made inside the step).
KINDS: dict[str, Any] = {
    "string": lambda p: {"phase": tf.constant("warmup")},
    "none": lambda p: {"maybe": None},
    "int": lambda p: {"n": 5},
    "nested": lambda p: {"inner": {"mean": tf.reduce_mean(p), "tag": tf.constant("t")}},
    "vector": lambda p: {"vec": tf.reduce_mean(p, axis=0), "one": tf.reduce_mean(p, 0)[:1]},
    "all": lambda p: {"phase": tf.constant("w"), "maybe": None, "n": 5, "vec": p[0]},
    # sizes the step leaves unknown: the batch's (the last batch is shorter)
    "per_sample": lambda p: {"per_sample": tf.reduce_mean(p, axis=1), "rows": p},
}


class LogKinds(keras.Model):
    """A model whose steps return the loss and the log values of one kind."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.dense = keras.layers.Dense(2)

    def call(self, x: Any) -> Any:
        return self.dense(x)

    def _logs(self, loss: Any, predictions: Any) -> dict[str, Any]:
        return {"loss": loss, **KINDS[self.kind](predictions)}

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            predictions = self(x, training=True)
            loss = tf.reduce_mean(tf.square(predictions - y))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._logs(loss, predictions)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        predictions = self(x, training=False)
        return self._logs(tf.reduce_mean(tf.square(predictions - y)), predictions)


class LogRecorder(keras.callbacks.Callback):
    """Records the logs of every batch and epoch end, as the callbacks get them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, Any]] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen.append(("train_batch", dict(logs or {})))

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen.append(("test_batch", dict(logs or {})))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seen.append(("epoch", dict(logs or {})))

    def on_test_end(self, logs: Any = None) -> None:
        self.seen.append(("test_end", dict(logs or {})))


def _twins(kind: str, **compiled: Any) -> tuple[fitpipe.Trainer, keras.Model]:
    keras.utils.set_random_seed(0)
    twin, model = LogKinds(kind), LogKinds(kind)
    twin(X[:1])
    model(X[:1])
    model.set_weights(twin.get_weights())
    twin.compile(optimizer=keras.optimizers.SGD(0.1), **compiled)
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), **compiled)
    return trainer, twin


def assert_same(got: Any, expected: Any, where: str = "") -> None:
    """Equal structures, types and values (floats within tolerance, arrays' dtypes equal)."""
    assert type(got) is type(expected), f"{where}: {type(got)} vs {type(expected)}"
    if isinstance(expected, Mapping):
        assert list(got) == list(expected), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and got.shape == expected.shape, where
        if expected.dtype == object:
            assert got.tolist() == expected.tolist(), where
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=where)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6), where
    else:
        assert got == expected, where


def _on_batch_calls(runner: Any) -> list[Any]:
    results = []
    for return_dict in (True, False):
        results.append(runner.train_on_batch(X[:6], Y[:6], return_dict=return_dict))
        results.append(runner.test_on_batch(X[:7], Y[:7], return_dict=return_dict))
    return results


@pytest.mark.parametrize("kind", list(KINDS))
def test_on_batch_log_values_are_kept_as_keras_keeps_them(kind: str) -> None:
    trainer, twin = _twins(kind)
    assert_same(_on_batch_calls(trainer), _on_batch_calls(twin), kind)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("batch_size", [3, 10])
def test_evaluate_log_values_are_kept_as_keras_keeps_them(kind: str, batch_size: int) -> None:
    trainer, twin = _twins(kind)
    for return_dict in (True, False):
        got = trainer.evaluate(X, Y, batch_size=batch_size, verbose=0, return_dict=return_dict)
        expected = twin.evaluate(X, Y, batch_size=batch_size, verbose=0, return_dict=return_dict)
        assert_same(got, expected, f"{kind} return_dict={return_dict}")


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    "compiled", [{}, {"steps_per_execution": 2}, {"run_eagerly": True}], ids=str
)
def test_fit_history_and_callback_logs_are_kept_as_keras_keeps_them(
    kind: str, compiled: dict[str, Any]
) -> None:
    trainer, twin = _twins(kind, **compiled)
    runs = []
    for runner in (trainer, twin):
        recorder = LogRecorder()
        history = runner.fit(
            X,
            Y,
            batch_size=4,
            epochs=2,
            shuffle=False,
            verbose=0,
            validation_data=(X[:5], Y[:5]),
            callbacks=[recorder],
        )
        runs.append((history.history, recorder.seen))
    (history, seen), (keras_history, keras_seen) = runs
    assert_same(history, keras_history, f"{kind} History")
    assert [hook for hook, _ in seen] == [hook for hook, _ in keras_seen]
    for (hook, logs), (_, keras_logs) in zip(seen, keras_seen, strict=True):
        assert_same(logs, keras_logs, f"{kind} {hook}")


@pytest.mark.parametrize(
    "compiled",
    [
        {"jit_compile": True},
        {"jit_compile": True, "steps_per_execution": 3},
        {"jit_compile": False},
    ],
    ids=str,
)
def test_per_sample_logs_of_unknown_size_are_kept_under_xla_and_fused_steps(
    compiled: dict[str, Any],
) -> None:
    # the loop of several steps carried the step's logs from zeros of their static shape,
    # which a size of None has not: `fit` and `evaluate` raised (blaming the data)
    trainer, twin = _twins("per_sample", **compiled)
    runs = [
        (
            runner.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0).history,
            runner.evaluate(X, Y, batch_size=3, verbose=0, return_dict=True),
        )
        for runner in (trainer, twin)
    ]
    assert_same(runs[0], runs[1], str(compiled))
