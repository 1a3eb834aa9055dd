"""Differential tests: the model's own steps, their traces and the errors raised in them.

Keras is the oracle: errors Keras raises while tracing a step reach the user unchanged,
fitpipe traces a step no more often than Keras (its XLA probe reuses the first trace), and
``train_step``/``test_step``/``predict_step`` overrides are honoured by every method and
every input form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from differential import regression_data

import fitpipe
from fitpipe.testing.keras_diff import assert_structures_close, compile_both, make_twins, run_both

X, Y = regression_data(n=40, d=3)
Y2 = {"output_a": Y, "output_b": Y * 2.0}


def _two_outputs(as_dict: bool) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        inputs = keras.Input((3,))
        a = keras.layers.Dense(1, name="output_a")(inputs)
        b = keras.layers.Dense(1, name="output_b")(inputs)
        return keras.Model(inputs, {"output_a": a, "output_b": b} if as_dict else [a, b])

    return build


# ------------------------------------------------------------------------- errors in the trace

_TRACE_ERRORS = [
    pytest.param(True, {"loss": "mse", "metrics": {"output_c": ["mae"]}}, id="metrics-dict-key"),
    pytest.param(
        True, {"loss": {"output_a": "mse", "output_c": "mse"}}, id="loss-dict-unknown-output"
    ),
    # (a list of losses of another length than the outputs: refused by `compile` itself,
    # tests/training/test_compile_checks.py)
    pytest.param(False, {"loss": "mse", "metrics": [["mae"]] * 3}, id="metrics-list-too-long"),
    pytest.param(False, {"loss": {"nope": "mse"}}, id="loss-dict-for-list-outputs"),
]


@pytest.mark.parametrize("method", ["fit", "test_on_batch"])
@pytest.mark.parametrize(("as_dict", "compile_kwargs"), _TRACE_ERRORS)
def test_errors_raised_while_tracing_reach_the_user_unchanged(
    as_dict: bool, compile_kwargs: dict[str, Any], method: str
) -> None:
    # Before: the XLA probe swallowed the first trace's error and the real trace then failed
    # inside TensorFlow ("replace() should be called on dataclass instances").
    ref, twin = make_twins(_two_outputs(as_dict))
    api = compile_both(ref, twin, {"optimizer": "sgd", "jit_compile": True, **compile_kwargs})
    y = Y2 if as_dict else [Y2["output_a"], Y2["output_b"]]
    kwargs = {"verbose": 0} if method in ("fit", "evaluate") else {}
    with pytest.raises(Exception) as keras_error:
        getattr(ref, method)(X, y, **kwargs)
    with pytest.raises(type(keras_error.value)) as fitpipe_error:
        getattr(api, method)(X, y, **kwargs)
    assert str(fitpipe_error.value) == str(keras_error.value)
    assert "replace()" not in str(fitpipe_error.value)


# ------------------------------------------------------------------------------ trace counts


def _counting(step: Callable[[Any], Any], counts: dict[str, int], mode: str) -> Any:
    def counted(data: Any) -> Any:
        counts[mode] += 1
        return step(data)

    return counted


def _count_step_traces(model: keras.Model) -> dict[str, int]:
    """Wraps the model's steps so that every Python call (a trace, in graph mode) counts."""
    counts = {"train": 0, "test": 0, "predict": 0}
    for mode in counts:
        step = getattr(model, f"{mode}_step")
        setattr(model, f"{mode}_step", _counting(step, counts, mode))
    return counts


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("metrics", [None, ["mae"]])
def test_steps_are_traced_no_more_often_than_by_keras(
    jit_compile: bool, metrics: list[str] | None
) -> None:
    # Keras traces `train_step` twice per fit (the first batch's shape, then the relaxed one);
    # fitpipe traced it three times with XLA (its probe traced on zeros of a fixed shape).
    def build() -> keras.Model:
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])

    ref, twin = make_twins(build)
    counts = {"keras": _count_step_traces(ref), "fitpipe": _count_step_traces(twin)}
    compile_kwargs = {"optimizer": "adam", "loss": "mse", "metrics": metrics}
    api = compile_both(ref, twin, {**compile_kwargs, "jit_compile": jit_compile})
    for model in (ref, api):
        model.fit(X, Y, batch_size=16, epochs=2, validation_data=(X, Y), verbose=0)
        model.evaluate(X, Y, batch_size=16, verbose=0)
        model.predict(X, batch_size=16, verbose=0)
    for mode in ("train", "test", "predict"):
        assert counts["fitpipe"][mode] <= counts["keras"][mode], (mode, counts)
    # Without metrics to build, no variable is made in the trace: one trace serves the run.
    if metrics is None:
        assert counts["fitpipe"]["train"] == 1, counts
    before = dict(counts["fitpipe"])
    api.fit(X[:30], Y[:30], batch_size=8, epochs=1, verbose=0)
    api.evaluate(X, Y, batch_size=7, verbose=0)
    assert counts["fitpipe"] == before  # new batch sizes and data never retrace


# --------------------------------------------------------------------------- custom steps


class CustomSteps(keras.Model):
    """A subclassed model whose three steps all differ from Keras' defaults."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.tracker = keras.metrics.Mean(name="custom_loss")

    def call(self, x: Any) -> Any:
        return self.dense(x)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.tracker]

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(self(x, training=True) - y))  # MAE, not compile's MSE
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.tracker.update_state(loss)
        return {"custom_loss": self.tracker.result()}

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        self.tracker.update_state(tf.reduce_max(tf.abs(self(x) - y)))
        return {"custom_loss": self.tracker.result()}

    def predict_step(self, data: Any) -> dict[str, Any]:
        y = self(data[0] if isinstance(data, tuple) else data)
        return {"double": 2.0 * y, "raw": y}


def _custom_model() -> keras.Model:
    model = CustomSteps()
    model(X[:1])
    return model


def _batches(n: int = 8) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(X), n):
        yield X[start : start + n], Y[start : start + n]


def _input_form(form: str, side: str) -> dict[str, Any]:
    # Keras 3.15 runs one step more than a generator yields (6 optimizer steps for these 5
    # batches, with its own steps too), so its side of the generator case reads the same
    # batches from arrays.
    if form == "arrays" or (form == "generator" and side == "keras"):
        return {"x": X, "y": Y, "batch_size": 8}  # rows held in memory: sliced in the loop
    if form == "generator":
        return {"x": _batches()}
    return {"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(8)}


@pytest.mark.parametrize("form", ["arrays", "generator", "tf.data"])
def test_step_overrides_are_honoured_by_every_method(form: str) -> None:
    def fit_kwargs(side: str) -> dict[str, Any]:
        epochs = 1 if form == "generator" else 2  # a generator is read once
        validation = {"validation_data": (X, Y), "validation_batch_size": 8}
        return {**_input_form(form, side), "epochs": epochs, **validation}

    res = run_both(
        _custom_model,
        {"optimizer": "sgd", "loss": "mse"},
        fit_kwargs,
        eval_kwargs=lambda side: {"x": X, "y": Y, "batch_size": 8},
        predict_x=X,
        check_params=form != "generator",  # a generator's length is unknown
    )
    assert set(res.twin_history.history) == {"custom_loss", "val_custom_loss"}
    ref, api = res.ref, res.api
    assert_structures_close(
        ref.predict(_input_form(form, "keras")["x"], verbose=0),
        api.predict(_input_form(form, "fitpipe")["x"], verbose=0),
        "predict",
    )
    for method, args in (
        ("train_on_batch", (X[:8], Y[:8])),
        ("test_on_batch", (X[:8], Y[:8])),
        ("predict_on_batch", (X[:8],)),
    ):
        assert_structures_close(getattr(ref, method)(*args), getattr(api, method)(*args), method)


def test_step_overrides_are_honoured_by_fitpipe_models() -> None:
    class FitpipeCustomSteps(fitpipe.Model, CustomSteps):
        pass

    def build_twin() -> keras.Model:
        model = FitpipeCustomSteps()
        model(X[:1])
        return model

    res = run_both(
        _custom_model,
        {"optimizer": "sgd", "loss": "mse", "steps_per_execution": 3},
        {"x": X, "y": Y, "batch_size": 8, "epochs": 2},
        predict_x=X,
        via="model",
        twin_build_fn=build_twin,
    )
    assert set(res.twin_history.history) == {"custom_loss"}


class NestingRecorder(keras.Model):
    """Records the nesting of the batches its steps are given (at trace time)."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen: list[str] = []

    def call(self, x: Any) -> Any:
        if isinstance(x, (dict, list, tuple)):
            x = tf.concat(tf.nest.flatten(x), axis=-1)
        return self.dense(x)

    def _record(self, data: Any) -> None:
        self.seen.append(str(tf.nest.map_structure(lambda t: "*", data)))

    def predict_step(self, data: Any) -> Any:
        self._record(data)
        return super().predict_step(data)

    def test_step(self, data: Any) -> Any:
        self._record(data)
        return super().test_step(data)


@pytest.mark.parametrize(
    "x",
    [
        pytest.param(X, id="array"),
        pytest.param({"a": X[:, :1], "b": X[:, 1:]}, id="dict"),
        pytest.param([X[:, :1], X[:, 1:]], id="list"),
    ],
)
def test_custom_steps_get_batches_nested_as_in_keras(x: Any) -> None:
    # A batch without targets is `x` itself, unless `x` is a list or tuple
    # (`keras.utils.pack_x_y_sample_weight`): a custom `predict_step` may call `self(data)`.
    # Before, fitpipe always handed `(x,)`.
    def build() -> keras.Model:
        model = NestingRecorder()
        model(x)
        return model

    ref, twin = make_twins(build)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    seen: dict[str, list[set[str]]] = {"keras": [], "fitpipe": []}
    for side, model, recorder in (("keras", ref, ref), ("fitpipe", api, twin)):
        for method, args in (("predict_on_batch", (x,)), ("predict", (x,)), ("evaluate", (x, Y))):
            recorder.seen.clear()
            kwargs = {} if method == "predict_on_batch" else {"batch_size": 16, "verbose": 0}
            getattr(model, method)(*args, **kwargs)
            seen[side].append(set(recorder.seen))
    assert seen["fitpipe"][1:] == seen["keras"][1:]
    # Keras 3.15 hands `predict_on_batch`'s step `(x,)`, unlike `predict`'s; fitpipe hands
    # both the same batch, so one `predict_step` serves both.
    assert seen["fitpipe"][0] == seen["keras"][1]


class NestedLogs(keras.Model):
    """Returns its logs with a nested dict (whose key sorts after ``loss``)."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x: Any) -> Any:
        return self.dense(x)

    def train_step(self, data: Any) -> Any:
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss, "nested": {"a_inner": loss + 1.0}}

    def test_step(self, data: Any) -> Any:
        x, y = data[0], data[1]
        loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=False))
        return {"loss": loss, "nested": {"a_inner": loss + 1.0}}


def test_history_keeps_the_keys_of_nested_logs_where_keras_does() -> None:
    # Before: ['a_inner', 'loss', ...] (the nested entries flattened, then sorted again).
    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        model = NestedLogs()
        model(X[:1])
        return model

    reference, twin = build(), build()
    twin.set_weights(reference.get_weights())
    options = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    for model in (reference, twin):
        model.compile(optimizer="sgd", loss="mse")
    expected = reference.fit(X, Y, validation_data=(X, Y), **options).history
    got = fitpipe.Trainer(twin).fit(X, Y, validation_data=(X, Y), **options).history
    assert list(got) == list(expected) == ["loss", "a_inner", "val_a_inner", "val_loss"]
    assert got == pytest.approx(expected, rel=1e-5)
