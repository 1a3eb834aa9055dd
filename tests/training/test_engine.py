"""The compiled engine: traces, steps per execution, and the XLA decision."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.errors import FitpipeWarning
from fitpipe.training import xla_rules
from fitpipe.training.epochs import ExecutionSize

X = np.random.default_rng(0).standard_normal((100, 4)).astype("float32")
Y = X[:, :1] * 2.0


def _model() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])


def _trainer(**compile_kwargs: object) -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse", **compile_kwargs)
    return trainer


def _traces(trainer: fitpipe.Trainer, mode: str) -> int:
    step = trainer._state.functions[mode].one_step
    return int(step.experimental_get_tracing_count())


@pytest.mark.slow
@pytest.mark.parametrize("jit", [True, False])
def test_partial_last_batch_traces_once_and_epochs_never_retrace(jit: bool) -> None:
    # One trace serves every batch (batch dimension unknown); with XLA, the probe that checks
    # the model compiles reuses that trace.
    trainer = _trainer(jit_compile=jit)
    trainer.fit(X, Y, batch_size=32, epochs=3, verbose=0, shuffle=False)  # 3 full + 1 partial
    traces = _traces(trainer, "train")
    assert traces == 1
    trainer.fit(X, Y, batch_size=32, epochs=2, verbose=0, validation_split=0.2)
    trainer.fit(X[:50], Y[:50], batch_size=32, epochs=1, verbose=0)
    assert _traces(trainer, "train") == traces
    trainer.evaluate(X, Y, batch_size=32, verbose=0)
    test_traces = _traces(trainer, "test")
    trainer.evaluate(X, Y, batch_size=7, verbose=0)
    assert _traces(trainer, "test") == test_traces


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("kind", ["arrays", "generator"])
def test_full_batches_trace_the_step_once(jit: bool, kind: str) -> None:
    # Every batch full: the pipeline declares the batch size, the compiled loop's slices do
    # not. The step is traced once for both (it was traced twice on arrays, a second before
    # the first step).
    trainer = _trainer(jit_compile=jit)
    rows = X[:96]
    data: Any = (rows, Y[:96])
    if kind == "generator":
        data = (((rows[i : i + 32], Y[i : i + 32]) for i in range(0, 96, 32)),)
    trainer.fit(*data, batch_size=None if kind == "generator" else 32, epochs=1, verbose=0)
    assert _traces(trainer, "train") == 1
    trainer.predict(rows, batch_size=32, verbose=0)
    assert _traces(trainer, "predict") == 1


@pytest.mark.slow
def test_recompiling_builds_new_step_functions() -> None:
    trainer = _trainer()
    trainer.fit(X, Y, epochs=1, verbose=0)
    first = trainer._state.functions["train"]
    trainer.compile(optimizer="adam", loss="mae")
    trainer.fit(X, Y, epochs=1, verbose=0)
    assert trainer._state.functions["train"] is not first
    assert trainer.model.optimizer.name == "adam"


@pytest.mark.parametrize("spe", [1, 4, "auto"])
def test_steps_per_execution_runs_every_batch_once(spe: int | str) -> None:
    trainer = _trainer(steps_per_execution=spe)
    ends: list[int] = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(batch)
    )
    trainer.fit(X, Y, batch_size=10, epochs=2, verbose=0, callbacks=[callback])
    assert int(trainer.model.optimizer.iterations) == 20
    if spe == 4:
        assert ends == [3, 7, 9] * 2  # every 4 batches; the last call is truncated to the epoch
    if spe == 1:
        assert ends == list(range(10)) * 2


def test_auto_steps_per_execution_grows_until_a_call_reaches_the_target() -> None:
    size = ExecutionSize("auto")
    assert size.size == 1
    sizes = []
    while not size._settled:
        n = size.size
        sizes.append(n)
        size.record(n, 1.0, traced=True)  # a first call that traces: slow, and not timed
        size.record(n, 0.0004 + 0.0002 * n)  # 0.4 ms per call, 0.2 ms per step
        size.record(n, 0.0004 + 0.0002 * n)  # the same again: stable, so it counts
    # 1 step: 0.6 ms, x64 (capped) -> 64: 13.2 ms, x2 -> 128: 26 ms, x2 -> 256: 51.6 ms >= 50
    assert sizes == [1, 64, 128, 256]
    assert size.size == 256
    size.lengthen()  # to calls of about 0.5 s: x8 (0.5 / 0.0516 = 9.7, the nearest power of 2)
    assert size.size == 2048
    size.lengthen()  # once only
    assert size.size == 2048


def test_auto_steps_per_execution_ignores_short_calls_and_caps() -> None:
    size = ExecutionSize("auto")
    size.record(0, 0.0)  # an epoch's tail, shorter than the size: not a measurement
    assert size.size == 1 and not size._settled
    while not size._settled:
        size.record(size.size, 0.0)
        size.record(size.size, 0.0)
    assert size.size == ExecutionSize.MAX


def test_auto_steps_per_execution_does_not_time_calls_that_traced() -> None:
    # The case seen in a benchmark: call 1 traces and compiles (3.5 s), call 2 compiles again
    # (0.35 s); both are over the target, so a tuner timing them settled at 1 step per call
    # for the life of the model. Traced calls are not measurements.
    size = ExecutionSize("auto")
    size.record(1, 3.5, traced=True)
    size.record(1, 0.35, traced=True)
    assert size.size == 1 and not size._settled
    while not size._settled:
        size.record(size.size, 0.0004 + 0.0002 * size.size)
    assert size.size == 256
    assert (size.calls, size.traced_calls) == (10, 2)  # 2 traced, 2 at each of 4 sizes


class SlowToTrace(keras.Sequential):
    """A model whose step takes 0.2 s to trace: Python in `train_step` runs only when traced."""

    def train_step(self, data: object) -> object:
        time.sleep(0.2)
        return super().train_step(data)


def test_auto_steps_per_execution_grows_when_the_first_call_traces_slowly() -> None:
    model = SlowToTrace([keras.Input((4,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=False)
    x = np.tile(X, (20, 1))  # 2000 rows: 2000 batches of 1 per epoch
    trainer.fit(x, np.tile(Y, (20, 1)), batch_size=1, epochs=1, verbose=0)
    fused = trainer._state.fused
    assert fused is not None
    # The trace counter, not the clock, marked the first call (the only one that traced).
    assert fused.traced_calls == 1 and fused.calls > 1
    assert fused.size > 1
    assert trainer._state.functions["train"].traces >= 2  # the step and its loop


def test_step_function_trace_count_keeps_replaced_functions() -> None:
    trainer = _trainer(jit_compile=False)
    trainer.fit(X, Y, batch_size=10, epochs=1, verbose=0)
    function = trainer._state.functions["train"]
    before = function.traces
    assert before >= 2
    function._retire(function.one_step)  # as the XLA fallback does before replacing it
    function.one_step = tf.function(function.step)
    assert function.traces == before  # the new function has not traced yet


def test_fixed_steps_per_execution_is_not_tuned() -> None:
    size = ExecutionSize(8)
    size.record(8, 100.0)
    size.record(8, 0.0001)
    assert size.size == 8


def test_xla_failure_falls_back_to_the_graph_with_a_warning() -> None:
    class NumpyDouble(keras.layers.Layer):
        def compute_output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
            return shape

        def call(self, x: tf.Tensor) -> tf.Tensor:
            y = tf.numpy_function(lambda a: a * 2, [x], tf.float32, stateful=False)
            y.set_shape(x.shape)
            return y

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(NumpyDouble()(inputs)))
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=True)
    with pytest.warns(FitpipeWarning, match="cannot compile the model with XLA"):
        history = trainer.fit(X, Y, batch_size=25, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 8
    assert np.isfinite(history.history["loss"]).all()
    assert trainer._state.functions["train"].jit_compile is False


def test_auto_jit_starts_without_xla(monkeypatch: pytest.MonkeyPatch) -> None:
    # "auto" is decided by measurement once the steps per call settle; until then (here: a
    # fit too short to settle) the step runs the plain graph, whose first step is faster.
    # (Unseeded: a seeded run takes Keras' choice untimed, whatever earlier tests seeded.)
    monkeypatch.setattr(xla_rules, "global_seed", lambda: None)
    trainer = _trainer(jit_compile="auto")
    trainer.fit(X, Y, epochs=1, verbose=0)
    function = trainer._state.functions["train"]
    assert function.jit_compile is False
    assert function.xla_choice is not None and function.xla_choice.decided is None
    assert trainer.tuning["xla"]["train"]["reason"] == "measuring"


def test_fit_before_compile_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="`fit` needs a compiled model"):
        fitpipe.Trainer(_model()).fit(X, Y)


@pytest.mark.slow
def test_default_fuses_steps_only_when_no_callback_listens_per_batch() -> None:
    plain = _trainer()
    plain.fit(X, Y, batch_size=10, epochs=1, verbose=0)
    assert plain._state.fused is not None  # tuned: nobody needs every batch
    epoch_only = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    plain.fit(X, Y, batch_size=10, epochs=1, verbose=0, callbacks=[epoch_only])
    listening = _trainer()
    seen: list[int] = []
    per_batch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    listening.fit(X, Y, batch_size=10, epochs=1, verbose=0, callbacks=[per_batch])
    assert listening._state.fused is None
    assert seen == list(range(10))
    np.testing.assert_allclose(
        plain.predict(X[:3], verbose=0).shape, listening.predict(X[:3], verbose=0).shape
    )


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [0, 37, 149, None])
@pytest.mark.parametrize("hook", ["on_train_batch_end", "on_train_batch_begin"])
def test_auto_steps_per_call_stop_from_a_batch_callback_where_keras_stops(
    stop_at: int | None, hook: str
) -> None:
    # `steps_per_execution="auto"` asked for outright, with a callback reading batches: the
    # callback sees every batch and its stop ends training after that batch, as in Keras at
    # one step a call (Keras has no "auto"). It once tuned up to 1,024 steps a call: a stop
    # at batch 925 ran to batch 999, weights 74 steps on, `on_train_batch_end` seen 8 times.
    x = np.random.default_rng(3).standard_normal((600, 4)).astype("float32")
    y = x[:, :1] * 2.0

    class Stop(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, int]] = []

        def record(self, batch: int, logs: object = None) -> None:
            self.seen.append((self.params.get("steps") or 0, batch))
            if stop_at is not None and len(self.seen) > stop_at:
                self.model.stop_training = True

    setattr(Stop, hook, Stop.record)
    twins, start = [], _model().get_weights()
    for kind in ("keras", "fitpipe"):
        model = _model()
        model.set_weights(start)
        runner = model if kind == "keras" else fitpipe.Trainer(model)
        kwargs = {} if kind == "keras" else {"steps_per_execution": "auto"}
        runner.compile(optimizer="sgd", loss="mse", **kwargs)
        stop = Stop()
        history = runner.fit(
            x, y, batch_size=2, epochs=2, shuffle=False, verbose=0, callbacks=[stop]
        )
        twins.append((model, stop, history))
    (keras_model, keras_stop, keras_history), (model, stop, history) = twins
    assert stop.seen == keras_stop.seen
    assert int(model.optimizer.iterations) == int(keras_model.optimizer.iterations)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], 1e-5)
    for got, want in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_steps_per_execution_never_runs_past_the_epoch_unlike_keras() -> None:
    # A deliberate departure (README, "fitpipe and Keras' own fit"): the documentation says
    # an epoch has `steps_per_epoch` steps; Keras 3.15 runs whole calls of
    # `steps_per_execution` on an endless dataset, 9 steps for an epoch of 7.
    x = np.zeros((70, 4), "float32")
    data = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(10).repeat()
    keras_model = _model()
    keras_model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
    keras_model.fit(data, steps_per_epoch=7, epochs=1, verbose=0, shuffle=False)
    trainer = _trainer(steps_per_execution=3)
    trainer.fit(data, steps_per_epoch=7, epochs=1, verbose=0)
    assert int(trainer.model.optimizer.iterations) == 7
    # Keras' count, for the record: if it ever matches the documentation, drop the README row.
    assert int(keras_model.optimizer.iterations) == 9


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_batch_end_after_a_shorter_last_call_is_its_last_batch_unlike_keras(method: str) -> None:
    # A deliberate departure (README): 8 batches at 3 steps a call end with a call of 2; the
    # callback gets "the index of batch within the current epoch", 7. Keras 3.15 passes the
    # index a whole call would have ended at, 8 (past the epoch's last batch).
    x = np.zeros((32, 4), "float32")
    hook = {"fit": "on_train_batch_end", "evaluate": "on_test_batch_end"}.get(
        method, "on_predict_batch_end"
    )
    seen: dict[str, list[int]] = {"keras": [], "fitpipe": []}
    for kind in seen:
        runner = _model() if kind == "keras" else _trainer(steps_per_execution=3)
        if kind == "keras":
            runner.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
        listen = keras.callbacks.LambdaCallback(
            **{hook: lambda batch, logs, into=seen[kind]: into.append(batch)}
        )
        args = (x,) if method == "predict" else (x, x[:, :1])
        getattr(runner, method)(*args, batch_size=4, verbose=0, callbacks=[listen])
    assert seen["fitpipe"] == [2, 5, 7]
    # Keras' count, for the record: if it ever passes 7, drop the README's sentence.
    assert seen["keras"] == [2, 5, 8]


_FIRST_FITS = """
import sys
import numpy as np, keras, tensorflow as tf, fitpipe
x = np.random.default_rng(0).random((640, 4)).astype("float32"); y = x[:, :1]
i = keras.Input((4,)); trainer = fitpipe.Trainer(keras.Model(i, keras.layers.Dense(1)(i)))
trainer.compile("adam", "mse", metrics=["mae"])
trainer.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_split=0.2)
trainer.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle="batch", class_weight={0: 1.0})
trainer.fit(((x[j:j+32], y[j:j+32]) for j in range(0, 640, 32)), epochs=1, verbose=0)
trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(64), epochs=1, verbose=0)
trainer.predict(x, verbose=0); trainer.evaluate(x, y, verbose=0)
print(sorted(name for name in sys.modules if "autograph_generated" in name))
"""


@pytest.mark.subprocess
def test_first_fits_of_a_process_transpile_nothing_with_autograph() -> None:
    # Autograph turns a function into new Python source the first time a process traces it
    # (about a second before the first step, in all): fitpipe's graph code needs none.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_FITS], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
