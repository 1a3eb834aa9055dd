"""Differential tests: ``compile`` arguments behave as in Keras."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
from differential import classification_data, dense_model, regression_data

from fitpipe.testing.keras_diff import run_both

X, Y = regression_data(n=96, d=4)
XC, LABELS = classification_data(n=96, d=6, classes=3)
ONE_HOT = np.eye(3, dtype="float32")[LABELS]
XB, BIN = classification_data(n=96, d=6, classes=2, seed=3)
BIN_Y = BIN.astype("float32").reshape(-1, 1)


def custom_mse(y_true: Any, y_pred: Any) -> Any:
    """Plain-function loss."""
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def _reg() -> keras.Model:
    return dense_model(d=4)


def _fit_reg(**extra: Any) -> dict[str, Any]:
    return {"x": X, "y": Y, "batch_size": 16, "epochs": 2, **extra}


# ---------------------------------------------------------------- optimizer / loss


@pytest.mark.parametrize(
    "optimizer",
    [
        "rmsprop",
        keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    ],
    ids=["rmsprop-name", "SGD-instance"],
)
def test_optimizer_by_name_and_instance(optimizer: Any) -> None:
    res = run_both(
        _reg, {"optimizer": optimizer, "loss": "mse"}, _fit_reg(), eval_kwargs={"x": X, "y": Y}
    )
    assert type(res.twin.optimizer) is type(res.ref.optimizer)


@pytest.mark.parametrize(
    "loss",
    ["huber", custom_mse, keras.losses.Huber(delta=0.5)],
    ids=["name", "callable", "Loss-instance"],
)
def test_loss_forms(loss: Any) -> None:
    run_both(_reg, {"optimizer": "sgd", "loss": loss}, _fit_reg(), eval_kwargs={"x": X, "y": Y})


# ---------------------------------------------------------------- multi-output


def two_output_model() -> keras.Model:
    """Functional model with outputs ``reg`` (1 unit) and ``cls`` (3-way softmax)."""
    inp = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="tanh")(inp)
    reg = keras.layers.Dense(1, name="reg")(h)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    return keras.Model(inp, [reg, cls])


Y_REG = (XC[:, :1] * 2.0).astype("float32")
MULTI_Y = [Y_REG, LABELS]
MULTI_Y_DICT = {"reg": Y_REG, "cls": LABELS}

MULTI_CASES: dict[str, dict[str, Any]] = {
    "loss-list": {"loss": ["mse", "sparse_categorical_crossentropy"]},
    "loss-dict": {"loss": {"reg": "mse", "cls": "sparse_categorical_crossentropy"}},
    "loss-weights-list": {
        "loss": ["mse", "sparse_categorical_crossentropy"],
        "loss_weights": [0.3, 2.0],
    },
    "loss-weights-dict": {
        "loss": {"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        "loss_weights": {"reg": 0.3, "cls": 2.0},
    },
    "metrics-list": {
        "loss": ["mse", "sparse_categorical_crossentropy"],
        "metrics": ["mae", "accuracy"],
    },
    "metrics-dict": {
        "loss": {"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        "metrics": {"reg": ["mae", "mse"], "cls": ["accuracy"]},
    },
    "metrics-nested-list": {
        "loss": ["mse", "sparse_categorical_crossentropy"],
        "metrics": [
            ["mae", keras.metrics.RootMeanSquaredError()],
            ["acc", "sparse_top_k_categorical_accuracy"],
        ],
    },
}


@pytest.mark.parametrize("case", sorted(MULTI_CASES))
def test_multi_output_compile(case: str) -> None:
    kwargs = {"optimizer": "adam", **MULTI_CASES[case]}
    res = run_both(
        two_output_model,
        kwargs,
        {
            "x": XC,
            "y": MULTI_Y,
            "batch_size": 16,
            "epochs": 2,
            "validation_data": (XC[:32], {k: v[:32] for k, v in MULTI_Y_DICT.items()}),
        },
        eval_kwargs={"x": XC, "y": MULTI_Y_DICT},
        predict_x=XC,
    )
    assert res.twin.metrics_names == res.ref.metrics_names


# ---------------------------------------------------------------- accuracy / crossentropy


ACC_CASES: dict[str, tuple[Any, ...]] = {
    # name: (build, loss, x, y)
    "binary": (lambda: dense_model(d=6, activation="sigmoid"), "binary_crossentropy", XB, BIN_Y),
    "categorical": (
        lambda: dense_model(d=6, units=3, activation="softmax"),
        "categorical_crossentropy",
        XC,
        ONE_HOT,
    ),
    "sparse": (
        lambda: dense_model(d=6, units=3, activation="softmax"),
        "sparse_categorical_crossentropy",
        XC,
        LABELS,
    ),
}


@pytest.mark.parametrize(("metric", "loss_name"), [("accuracy", "crossentropy"), ("acc", "ce")])
@pytest.mark.parametrize("target", sorted(ACC_CASES))
def test_accuracy_and_crossentropy_resolution(
    target: str, metric: str, loss_name: str | None
) -> None:
    # "accuracy"/"acc" are metric aliases, "crossentropy"/"ce" loss aliases;
    # Keras resolves both from the target / output shapes.
    build, loss, x, y = ACC_CASES[target]
    res = run_both(
        build,
        {"optimizer": "adam", "loss": loss_name or loss, "metrics": [metric]},
        {"x": x, "y": y, "batch_size": 32, "epochs": 2},
        eval_kwargs={"x": x, "y": y},
    )
    assert metric in res.twin_history.history
    ref_metric = [m for m in res.ref.metrics if m.name != "loss"]
    twin_metric = [m for m in res.twin.metrics if m.name != "loss"]
    assert [type(m).__name__ for m in twin_metric] == [type(m).__name__ for m in ref_metric]


def test_weighted_metrics() -> None:
    sw = np.linspace(0.1, 2.0, len(XC)).astype("float32")
    run_both(
        lambda: dense_model(d=6, units=3, activation="softmax"),
        {
            "optimizer": "adam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "weighted_metrics": ["accuracy", "sparse_categorical_crossentropy"],
        },
        {"x": XC, "y": LABELS, "sample_weight": sw, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": XC, "y": LABELS, "sample_weight": sw},
    )


# ---------------------------------------------------------------- execution modes


def test_run_eagerly() -> None:
    res = run_both(
        _reg,
        {"optimizer": "adam", "loss": "mse", "metrics": ["mae"], "run_eagerly": True},
        _fit_reg(validation_split=0.25),
        eval_kwargs={"x": X, "y": Y},
        predict_x=X,
    )
    assert res.twin.run_eagerly is True


@pytest.mark.parametrize("jit_compile", [True, False, "auto"])
def test_jit_compile(jit_compile: bool | str) -> None:
    run_both(
        _reg,
        {"optimizer": "adam", "loss": "mse", "metrics": ["mae"], "jit_compile": jit_compile},
        _fit_reg(),
        eval_kwargs={"x": X, "y": Y},
        predict_x=X,
    )


@pytest.mark.parametrize("steps_per_execution", [1, 3, 32, "auto"])
def test_steps_per_execution(steps_per_execution: int | str) -> None:
    # 96 rows / batch 10 -> 10 batches, the last one partial; 32 > one epoch.
    res = run_both(
        _reg,
        {
            "optimizer": "adam",
            "loss": "mse",
            "metrics": ["mae"],
            "steps_per_execution": steps_per_execution,
        },
        {"x": X, "y": Y, "batch_size": 10, "epochs": 2, "validation_data": (X[:40], Y[:40])},
        eval_kwargs={"x": X, "y": Y, "batch_size": 7},
        predict_x=X,
    )
    assert int(res.twin.optimizer.iterations) == 20


@pytest.fixture
def mixed_float16() -> Iterator[None]:
    """Switch the global dtype policy to ``mixed_float16`` for one test."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.usefixtures("mixed_float16")
def test_mixed_float16_with_auto_scale_loss() -> None:
    def build() -> keras.Model:
        inp = keras.Input((6,))
        h = keras.layers.Dense(8, activation="tanh")(inp)
        out = keras.layers.Dense(3, activation="softmax", dtype="float32")(h)
        return keras.Model(inp, out)

    res = run_both(
        build,
        {
            "optimizer": "adam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "auto_scale_loss": True,
        },
        {"x": XC, "y": LABELS, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": XC, "y": LABELS},
        predict_x=XC,
        rtol=1e-2,
        atol=1e-3,
    )
    assert isinstance(res.twin.optimizer, keras.optimizers.LossScaleOptimizer)
    assert res.twin.layers[1].compute_dtype == "float16"
    assert keras.mixed_precision.global_policy().name == "mixed_float16"


@pytest.mark.parametrize("first", [{"steps_per_execution": "auto", "jit_compile": True}, {}])
def test_a_keras_compile_after_fitpipes_takes_over_as_in_keras(first: dict[str, Any]) -> None:
    # The last compile wins in Keras: fitpipe kept running its own "auto" steps and XLA
    # after the model's own `compile(steps_per_execution=4, jit_compile=False)` (a batch
    # callback saw batches [0, 1, 2, 15], not [3, 7, 11, 15]).
    import fitpipe

    seen: list[int] = []
    model = _reg()
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", **first)
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4, jit_compile=False)
    batches = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    trainer.fit(X[:64], Y[:64], batch_size=4, epochs=1, verbose=0, callbacks=[batches])
    assert seen == [3, 7, 11, 15]
    assert trainer.tuning["xla"]["train"]["xla"] is False
    trainer.compile(optimizer="sgd", loss="mse", **first)  # and fitpipe's own, once again
    assert trainer.steps_per_execution == first.get("steps_per_execution", 1)


def test_fitpipes_settings_stay_when_a_built_model_adds_its_outputs_loss_trackers() -> None:
    # A model of two outputs adds a loss tracker per output to `model.metrics` at its first
    # step: no compile happened, and fitpipe's `steps_per_execution` stays.
    import fitpipe

    inputs = keras.Input((4,))
    outputs = {"a": keras.layers.Dense(1)(inputs), "b": keras.layers.Dense(1)(inputs)}
    trainer = fitpipe.Trainer(keras.Model(inputs, outputs))
    trainer.compile(optimizer="sgd", loss={"a": "mse", "b": "mse"}, steps_per_execution=3)
    before = len(trainer.model.metrics)
    seen: list[int] = []
    batches = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    for _ in range(2):
        seen.clear()
        trainer.fit(
            X[:48], {"a": Y[:48], "b": Y[:48]}, batch_size=4, verbose=0, callbacks=[batches]
        )
        assert seen == [2, 5, 8, 11] and trainer.steps_per_execution == 3
    assert len(trainer.model.metrics) > before
