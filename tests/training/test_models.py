"""Differential tests: model kinds, fitpipe's own model classes, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from differential import dense_model, regression_data

import fitpipe
from fitpipe.testing.keras_diff import assert_weights_close, make_twins, run_both

X, Y = regression_data(n=80, d=4)
COMPILE = {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}
FIT = {"x": X, "y": Y, "batch_size": 16, "epochs": 2}
EVAL = {"x": X, "y": Y}


def _functional(cls: type[keras.Model] = keras.Model) -> keras.Model:
    inp = keras.Input((4,))
    h = keras.layers.Dense(8, activation="relu")(inp)
    return cls(inp, keras.layers.Dense(1)(h))


class SubclassedMLP(keras.Model):
    """A plain subclassed model."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(1)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.out(self.hidden(inputs))


class HalfStepModel(SubclassedMLP):
    """Subclassed model with a custom ``train_step``.

    The step halves the gradients and reports its own ``custom_loss`` and a
    ``grad_norm`` entry, so a trainer that ignores it is detected.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.custom_loss = keras.metrics.Mean(name="custom_loss")

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = keras.ops.mean(keras.ops.square(y_pred - y))
        grads = tape.gradient(loss, self.trainable_variables)
        grads = [0.5 * g for g in grads]
        self.optimizer.apply(grads, self.trainable_variables)
        self.custom_loss.update_state(loss)
        return {"custom_loss": self.custom_loss.result(), "grad_norm": tf.linalg.global_norm(grads)}


def _built(model: keras.Model) -> keras.Model:
    model(np.zeros((1, 4), "float32"))
    return model


def test_sequential() -> None:
    run_both(lambda: dense_model(d=4), COMPILE, FIT, eval_kwargs=EVAL, predict_x=X)


def test_functional() -> None:
    run_both(_functional, COMPILE, FIT, eval_kwargs=EVAL, predict_x=X)


def test_subclassed() -> None:
    run_both(lambda: _built(SubclassedMLP()), COMPILE, FIT, eval_kwargs=EVAL, predict_x=X)


def test_custom_train_step_is_honoured() -> None:
    res = run_both(lambda: _built(HalfStepModel()), {"optimizer": "sgd", "loss": "mse"}, FIT)
    assert set(res.twin_history.history) == {"custom_loss", "grad_norm"}

    # Halving the gradients matters: plain SGD on the same data ends elsewhere.
    plain, _ = make_twins(lambda: _built(SubclassedMLP()))
    plain.set_weights(make_twins(lambda: _built(HalfStepModel()))[0].get_weights())
    plain.compile(optimizer="sgd", loss="mse")
    plain.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    diffs = [
        np.abs(a - b).max()
        for a, b in zip(plain.get_weights(), res.twin.get_weights(), strict=True)
    ]
    assert max(diffs) > 1e-4


def test_fitpipe_sequential_used_directly() -> None:
    res = run_both(
        lambda: dense_model(d=4),
        COMPILE,
        FIT,
        eval_kwargs=EVAL,
        predict_x=X,
        via="model",
        twin_build_fn=lambda: dense_model(d=4, cls=fitpipe.Sequential),
    )
    assert isinstance(res.twin, fitpipe.Sequential)
    assert isinstance(res.twin, keras.Sequential)


def test_fitpipe_model_functional_used_directly() -> None:
    res = run_both(
        _functional,
        COMPILE,
        FIT,
        eval_kwargs=EVAL,
        predict_x=X,
        via="model",
        twin_build_fn=lambda: _functional(cls=fitpipe.Model),
    )
    assert isinstance(res.twin, fitpipe.Model)


class KerasDense(keras.Model):
    """Subclassed Keras model with one Dense layer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, inputs: Any) -> Any:
        return self.dense(inputs)


class FitpipeDense(fitpipe.Model):
    """The same model subclassing ``fitpipe.Model``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, inputs: Any) -> Any:
        return self.dense(inputs)


def test_fitpipe_model_subclass_used_directly() -> None:
    # Runs after fitpipe.Model was used functionally above: subclassing must
    # still give a plain subclassed model (Keras mutates the bases of a Model
    # subclass used with functional arguments; fitpipe.Model must not break).
    res = run_both(
        lambda: _built(KerasDense()),
        COMPILE,
        FIT,
        eval_kwargs=EVAL,
        predict_x=X,
        via="model",
        twin_build_fn=lambda: _built(FitpipeDense()),
    )
    assert isinstance(res.twin, fitpipe.Model)


def test_save_load_round_trip_of_fitpipe_sequential(tmp_path: Path) -> None:
    ref = dense_model(d=4)
    twin = dense_model(d=4, cls=fitpipe.Sequential)
    twin.set_weights(ref.get_weights())
    ref.compile(**COMPILE)
    twin.compile(**COMPILE)
    ref.fit(verbose=0, shuffle=False, **FIT)
    twin.fit(verbose=0, shuffle=False, **FIT)
    assert_weights_close(ref, twin)

    path = tmp_path / "model.keras"
    twin.save(path)
    assert path.is_file()
    loaded = keras.models.load_model(path)
    assert_weights_close(twin, loaded, rtol=0.0, atol=0.0)
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), ref.predict(X, verbose=0), rtol=1e-3, atol=1e-5
    )
    assert int(loaded.optimizer.iterations) == int(ref.optimizer.iterations)
    # The restored optimizer state continues training exactly like Keras.
    ref.fit(verbose=0, shuffle=False, **FIT)
    h = fitpipe.Trainer(loaded).fit(verbose=0, shuffle=False, **FIT)
    assert len(h.history["loss"]) == 2
    assert_weights_close(ref, loaded)
