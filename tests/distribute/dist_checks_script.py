"""Run by test_dist_checks.py in a subprocess: value checks and custom steps under a strategy.

Two logical CPU devices (configured before TensorFlow initializes them). For each input form
that is checked batch by batch (``tf.data``, a generator, a ``PyDataset``), training and
validation data with a NaN feature in their second batch, or a label outside the model's
classes, are fitted under ``check="error"`` and ``check="warn"``; what happened (the error's
type, the warnings, whether the weights stayed finite) is printed as one JSON line, with the
history of a custom ``train_step`` model compiled without a loss and that of its Keras twin.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import fitpipe  # noqa: E402
from fitpipe.errors import DataCheckWarning  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3)).astype("float32")
Y = RNG.integers(0, 3, 12)


def _bad(problem: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = X.copy(), Y.copy()
    if problem == "nan":
        x[6, 1] = np.nan  # the second batch of 4
    else:
        y[6] = 7
    return x, y


def _form(name: str, x: np.ndarray, y: np.ndarray) -> Any:
    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(x), 4):
            yield x[start : start + 4], y[start : start + 4]

    class Batches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: int) -> Any:
            return x[index * 4 : (index + 1) * 4], y[index * 4 : (index + 1) * 4]

    makers: dict[str, Callable[[], Any]] = {
        "tf.data": lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
        "generator": batches,
        "PyDataset": Batches,
    }
    return makers[name]()


def _trainer() -> fitpipe.Trainer:
    with STRATEGY.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
        trainer = fitpipe.Trainer(model)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        trainer.compile(optimizer="sgd", loss=loss)
    return trainer


def _case(form: str, problem: str, check: str, where: str) -> dict[str, Any]:
    trainer = _trainer()
    bad = _form(form, *_bad(problem))
    good = _form(form, X, Y) if form != "generator" else _form("tf.data", X, Y)
    data, validation = (bad, None) if where == "training" else (good, bad)
    out: dict[str, Any] = {"raised": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer.fit(data, validation_data=validation, epochs=1, check=check, verbose=0)
        except Exception as error:  # reported, judged by the test
            out["raised"] = type(error).__name__
            out["message"] = str(error)[:300]
    out["warnings"] = sum(issubclass(w.category, DataCheckWarning) for w in caught)
    weights = trainer.model.get_weights()
    out["finite"] = all(bool(np.isfinite(w).all()) for w in weights)
    return out


class OwnStep(keras.Model):
    """A custom ``train_step`` computing its own loss: compiled with an optimizer only."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x: Any) -> Any:
        return self.dense(x)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(x, training=True) - y))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return {"my_loss": loss}


def _own_step() -> dict[str, Any]:
    y = X[:, :1] * 2.0
    histories = {}
    for who in ("keras", "fitpipe"):
        keras.utils.set_random_seed(0)
        with STRATEGY.scope():
            model = OwnStep()
            model(X[:1])
            runner: Any = model if who == "keras" else fitpipe.Trainer(model)
            runner.compile(optimizer=keras.optimizers.SGD(0.1))
        history = runner.fit(X, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        histories[who] = history.history["my_loss"]
    return histories


def _compiled_outside_the_scope() -> str:
    with STRATEGY.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="adam", loss="mse")  # outside the scope
    try:
        trainer.fit(X, X, batch_size=4, verbose=0)
    except Exception as error:  # judged by the test
        return f"{type(error).__name__}: {error}"
    return "trained"


def main() -> None:
    results: dict[str, Any] = {"replicas": STRATEGY.num_replicas_in_sync}
    for form in ("tf.data", "generator", "PyDataset"):
        for problem, check in (("nan", "error"), ("nan", "warn"), ("label", False)):
            for where in ("training", "validation"):
                key = f"{form} {problem} check={check} {where}"
                results[key] = _case(form, problem, check, where)  # type: ignore[arg-type]
    results["own step"] = _own_step()
    results["outside the scope"] = _compiled_outside_the_scope()
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
