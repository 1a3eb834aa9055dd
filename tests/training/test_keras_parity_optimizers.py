"""Differential tests: the state an optimizer and a model carry from step to step.

Keras is the oracle. Moving averages of the weights (``use_ema``), accumulated gradients,
learning rates that follow a schedule of the step count or that callbacks set between epochs,
clipping, weight decay, regularization losses and layers frozen between two ``fit`` calls
train as in Keras' ``fit``: in the plain graph, under XLA, in calls of many steps, and across
``"auto"``'s switch from the plain graph to XLA in the middle of a ``fit``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from fake_clock import FakeClock
from hypothesis import given, settings

import fitpipe
from fitpipe.testing.keras_diff import run_both
from fitpipe.testing.strategies import OptimizerSetting, optimizer_settings
from fitpipe.training import xla_rules
from fitpipe.training.tuning import ExecutionSize, XlaChoice

X = np.random.default_rng(3).standard_normal((96, 4)).astype("float32")
Y = X[:, :1] * 2.0 - X[:, 1:2] + 0.5


def _model() -> keras.Model:
    """Two dense layers, the first with a kernel regularizer (a loss of its own)."""
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(
        8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01), name="base"
    )(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))


@pytest.mark.parametrize("jit_compile", [False, True])
@given(setting=optimizer_settings())
@settings(max_examples=8)
def test_an_optimizers_state_trains_as_keras(setting: OptimizerSetting, jit_compile: bool) -> None:
    # Three epochs of 6 steps, in calls of up to an epoch (fitpipe's tuned steps per call)
    # against Keras' one step a call: History, weights, iterations, evaluate and predict.
    run_both(
        _model,
        lambda side: {"optimizer": setting.build(), "loss": "mse", "jit_compile": jit_compile},
        {"x": X, "y": Y, "batch_size": 16, "epochs": 3},
        eval_kwargs={"x": X, "y": Y},
        predict_x=X,
    )


@given(setting=optimizer_settings())
@settings(max_examples=4)
def test_a_switch_to_xla_in_the_middle_of_a_fit_carries_the_optimizers_state(
    setting: OptimizerSetting,
) -> None:
    # Under "auto" the step starts as the plain graph and, once its timing is stable, a
    # trial compiles XLA's variant, which then runs the next calls (the fake clock makes
    # XLA twice as fast, so it stays). Whatever the optimizer holds carries across the
    # switch. The oracle is Keras run the same way: its plain graph for the steps fitpipe
    # ran plain, then, compiled again with the same optimizer, XLA for the rest (XLA's
    # rounding differs from the plain graph's, which Adam amplifies past any fixed
    # tolerance against a plain run: 1.4e-4 in a weight after 288 steps at a rate of 0.05).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)
        patch.setattr(ExecutionSize, "CALL_SECONDS", ExecutionSize.TARGET_SECONDS)
        patch.setattr(xla_rules, "global_seed", lambda: None)  # timed, as unseeded
        keras.utils.set_random_seed(0)
        oracle = _model()
        keras.utils.set_random_seed(0)
        trainer = fitpipe.Trainer(_model())
        optimizer = setting.build()
        oracle.compile(optimizer=optimizer, loss="mse", jit_compile=False)
        trainer.compile(optimizer=setting.build(), loss="mse", jit_compile="auto")
        clock = FakeClock(trainer, plain=1e-3, xla=0.5e-3)
        trainer._state.fused = ExecutionSize("auto", clock=clock)
        x, y = np.tile(X, (6, 1)), np.tile(Y, (6, 1))
        history = trainer.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ran = {xla for xla, _ in clock.sizes}
    assert ran == {False, True}, clock.calls  # both variants ran calls of steps
    losses = _replay(oracle, optimizer, x, y, clock.calls, batch_size=4)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-4, atol=1e-6)
    for ours, theirs in zip(trainer.model.get_weights(), oracle.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert int(trainer.model.optimizer.iterations) == int(oracle.optimizer.iterations)


def _replay(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    calls: list[tuple[bool, bool, int, bool]],
    batch_size: int,
) -> list[float]:
    """Keras trained on the rows of fitpipe's calls, each with its variant; epochs' losses.

    A call runs the steps it asked for, up to its epoch's end. The model is compiled again
    (the same optimizer, its state kept) where the variant changes; the optimizer's moving
    averages are written to the weights at the end, as ``fit`` ends.
    """
    per_epoch = len(x) // batch_size
    step, variant, losses, epoch_losses = 0, None, [], []
    for xla, _, asked, _ in calls:
        run = min(asked, per_epoch - step % per_epoch)
        if xla != variant:
            model.compile(optimizer=optimizer, loss="mse", jit_compile=xla)
            variant = xla
        for index in range(step, step + run):
            rows = slice((index % per_epoch) * batch_size, (index % per_epoch + 1) * batch_size)
            epoch_losses.append(model.train_on_batch(x[rows], y[rows]))
            if (index + 1) % per_epoch == 0:
                losses.append(float(np.mean(epoch_losses)))
                epoch_losses = []
        step += run
    optimizer.finalize_variable_values(model.trainable_weights)  # as `fit` ends (EMA)
    return losses


def _halve(epoch: int, rate: float) -> float:
    return rate * 0.5


_RATE_CALLBACKS = {
    "ReduceLROnPlateau": lambda: keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=10.0, min_lr=1e-4
    ),
    "LearningRateScheduler": lambda: keras.callbacks.LearningRateScheduler(_halve),
}


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("callback", sorted(_RATE_CALLBACKS))
def test_callbacks_that_set_the_learning_rate_train_as_keras(
    callback: str, jit_compile: bool
) -> None:
    # The rate is a variable the compiled step reads at each step, not a constant of its
    # trace: halved every epoch here, the steps after it move the weights half as far, and
    # History records the rate (`learning_rate`) as Keras' does.
    result = run_both(
        _model,
        {"optimizer": keras.optimizers.Adam(0.05), "loss": "mse", "jit_compile": jit_compile},
        lambda side: {
            "x": X,
            "y": Y,
            "batch_size": 16,
            "epochs": 4,
            "callbacks": [_RATE_CALLBACKS[callback]()],
        },
    )
    rates = result.twin_history.history["learning_rate"]
    assert rates[-1] < rates[0], rates  # the callback did lower it


def _fit_twice(api: Any, model: keras.Model, jit_compile: bool, recompile: bool) -> list[Any]:
    """Fits, freezes the first layer (recompiling or not), fits again: losses and weights."""
    api.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", jit_compile=jit_compile)
    first = api.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    model.get_layer("base").trainable = False
    if recompile:
        api.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", jit_compile=jit_compile)
    second = api.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return [first.history["loss"], second.history["loss"], *model.get_weights()]


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("recompile", [True, False])
def test_a_layer_frozen_between_two_fits_trains_as_keras(
    jit_compile: bool, recompile: bool
) -> None:
    # Keras documents that a change of `trainable` takes effect at the next `compile`:
    # recompiled, the frozen layer keeps its weights in the second `fit`; not recompiled,
    # Keras' compiled step still trains it, and so does fitpipe's (the step is the same).
    keras.utils.set_random_seed(0)
    oracle = _model()
    keras.utils.set_random_seed(0)
    twin = _model()
    expected = _fit_twice(oracle, oracle, jit_compile, recompile)
    before = twin.get_layer("base").get_weights()
    got = _fit_twice(fitpipe.Trainer(twin), twin, jit_compile, recompile)
    for ours, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    moved = not np.allclose(before[0], twin.get_layer("base").get_weights()[0])
    assert moved  # it trained in the first fit at least


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_an_optimizer_set_between_two_fits_is_the_one_stepped(steps_per_execution: int) -> None:
    """A documented departure: ``model.optimizer = ...`` between fits, without ``compile``.

    fitpipe's next ``fit`` steps the new optimizer (it builds a step for it); Keras 3.15 keeps
    its compiled step, which still steps the old one (the new one's ``iterations`` stay 0).
    Both sides are pinned: if Keras starts stepping the new optimizer, the README's line goes.
    """
    results = {}
    for runner in ("keras", "fitpipe"):
        keras.utils.set_random_seed(0)
        model = _model()
        api: Any = model if runner == "keras" else fitpipe.Trainer(model)
        api.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss="mse",
            jit_compile=False,
            steps_per_execution=steps_per_execution,
        )
        api.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        old, new = model.optimizer, keras.optimizers.SGD(0.1)
        model.optimizer = new
        api.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        results[runner] = (int(old.iterations.numpy()), int(new.iterations.numpy()))
    assert results["fitpipe"] == (6, 6)  # 96 rows, batches of 16: 6 steps a fit
    assert results["keras"] == (12, 0)
