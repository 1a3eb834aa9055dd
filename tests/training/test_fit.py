"""Differential tests: ``fit`` arguments behave as in Keras (or as documented)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from differential import classification_data, dense_model, is_finite_sequence, regression_data

import fitpipe
from fitpipe.errors import FitpipeWarning
from fitpipe.testing.keras_diff import (
    Side,
    assert_close,
    assert_histories_close,
    assert_weights_close,
    compile_both,
    make_twins,
    run_both,
)

X, Y = regression_data(n=96, d=4)
XC, LABELS = classification_data(n=96, d=6, classes=3)
COMPILE = {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}
CLS_COMPILE = {
    "optimizer": "adam",
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
}
CLASS_WEIGHT = {0: 0.5, 1: 2.0, 2: 1.25}


def _reg() -> keras.Model:
    return dense_model(d=4)


def _cls() -> keras.Model:
    return dense_model(d=6, units=3, activation="softmax")


def _batches_forever(
    x: np.ndarray, y: np.ndarray, batch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:
        for i in range(0, len(x), batch):
            yield x[i : i + batch], y[i : i + batch]


class _PyData(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int) -> None:
        super().__init__()
        self.x, self.y, self.batch = x, y, batch

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.x[i * self.batch : (i + 1) * self.batch], self.y[
            i * self.batch : (i + 1) * self.batch
        ]


# ---------------------------------------------------------------- batch size / epochs


@pytest.mark.parametrize("batch_size", [None, 20, 200])
def test_batch_size(batch_size: int | None) -> None:
    # None -> Keras default of 32; 20 leaves a partial last batch of 16.
    res = run_both(
        _reg,
        COMPILE,
        {"x": X, "y": Y, "batch_size": batch_size, "epochs": 2},
        eval_kwargs={"x": X, "y": Y, "batch_size": batch_size},
        predict_x=X,
    )
    expected_steps = math.ceil(96 / (batch_size or 32))
    assert res.twin_history.params["steps"] == expected_steps
    assert int(res.twin.optimizer.iterations) == 2 * expected_steps


def test_initial_epoch() -> None:
    res = run_both(
        _reg, COMPILE, {"x": X, "y": Y, "batch_size": 16, "epochs": 5, "initial_epoch": 2}
    )
    assert res.twin_history.epoch == [2, 3, 4]
    assert len(res.twin_history.history["loss"]) == 3


# ---------------------------------------------------------------- validation


def test_validation_split() -> None:
    res = run_both(
        _reg,
        COMPILE,
        {"x": X, "y": Y, "batch_size": 16, "epochs": 2, "validation_split": 0.25},
    )
    # The last 25% are held out: 72 training rows -> 5 steps of 16.
    assert res.twin_history.params["steps"] == 5
    assert set(res.twin_history.history) == {"loss", "mae", "val_loss", "val_mae"}


def _val_spec(kind: str) -> Any:
    xv, yv = X[:40], Y[:40]
    sw = np.linspace(0.5, 1.5, 40).astype("float32")

    def spec(side: Side) -> dict[str, Any]:
        base: dict[str, Any] = {"x": X, "y": Y, "batch_size": 16, "epochs": 2}
        if kind == "tuple2":
            base["validation_data"] = (xv, yv)
        elif kind == "tuple3":
            base["validation_data"] = (xv, yv, sw)
        elif kind == "dataset":
            base["validation_data"] = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(8)
        elif kind == "generator":
            # A generator cannot restart: Keras replays the batches it peeked, fitpipe goes
            # on (see test_validation_generator_continues). One validation sees the same
            # batches in both.
            base["validation_data"] = _batches_forever(xv, yv, 8)
            base["validation_steps"] = 3
            base["validation_freq"] = 2
        elif kind == "pydataset":
            base["validation_data"] = _PyData(xv, yv, 8)
        elif kind == "validation_steps":
            base["validation_data"] = (xv, yv)
            base["validation_steps"] = 1
        elif kind == "validation_batch_size":
            base["validation_data"] = (xv, yv)
            base["validation_batch_size"] = 7
        return base

    return spec


@pytest.mark.parametrize(
    "kind",
    [
        "tuple2",
        "tuple3",
        "dataset",
        "generator",
        "pydataset",
        "validation_steps",
        "validation_batch_size",
    ],
)
def test_validation_data_forms(kind: str) -> None:
    res = run_both(_reg, COMPILE, _val_spec(kind))
    assert len(res.twin_history.history["val_loss"]) == (1 if kind == "generator" else 2)


def test_validation_generator_continues() -> None:
    # 40 validation rows in batches of 8 (5 batches, cycling); 3 validation steps per epoch:
    # the last epoch validates on batches 3, 4, 0, i.e. rows 24-39 and 0-7.
    xv, yv = X[:40], Y[:40]
    model = _reg()
    trainer = fitpipe.Trainer(model)
    trainer.compile(**COMPILE)
    history = trainer.fit(
        X,
        Y,
        batch_size=16,
        epochs=2,
        verbose=0,
        shuffle=False,
        validation_data=_batches_forever(xv, yv, 8),
        validation_steps=3,
    )
    rows = np.r_[24:40, 0:8]
    expected = trainer.evaluate(xv[rows], yv[rows], batch_size=8, verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(expected["loss"], rel=1e-5)
    first = trainer.evaluate(xv[:24], yv[:24], batch_size=8, verbose=0)
    assert history.history["val_loss"][-1] != pytest.approx(
        first[0] if isinstance(first, list) else first, rel=1e-3
    )


def test_validation_freq_int() -> None:
    res = run_both(
        _reg,
        COMPILE,
        {
            "x": X,
            "y": Y,
            "batch_size": 16,
            "epochs": 4,
            "validation_data": (X[:32], Y[:32]),
            "validation_freq": 2,
        },
    )
    assert len(res.twin_history.history["loss"]) == 4
    assert len(res.twin_history.history["val_loss"]) == 2


def test_validation_freq_list_matches_epoch_by_epoch_keras() -> None:
    """``validation_freq=[1, 3]`` (tf.keras 2 style) validates after epochs 1 and 3."""
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, COMPILE)
    val = (X[:32], Y[:32])
    expected: dict[str, list[float]] = {}
    for epoch in range(3):
        h = ref.fit(
            X,
            Y,
            batch_size=16,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_data=val if epoch + 1 in (1, 3) else None,
            shuffle=False,
            verbose=0,
        )
        for key, values in h.history.items():
            expected.setdefault(key, []).extend(values)
    got = api.fit(
        X,
        Y,
        batch_size=16,
        epochs=3,
        validation_data=val,
        validation_freq=[1, 3],
        shuffle=False,
        verbose=0,
    )
    assert got.epoch == [0, 1, 2]
    assert set(got.history) == set(expected), (
        f"keys: keras {sorted(expected)} vs fitpipe {sorted(got.history)}"
    )
    for key in expected:
        assert_close(expected[key], got.history[key], f"History[{key!r}]")
    assert len(got.history["val_loss"]) == 2
    assert_weights_close(ref, twin)


def test_validation_freq_list_equals_int_equivalent() -> None:
    with_int = run_both(
        _reg,
        COMPILE,
        {"x": X, "y": Y, "epochs": 4, "validation_data": (X[:32], Y[:32]), "validation_freq": 2},
    )
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, COMPILE)
    got = api.fit(
        X,
        Y,
        epochs=4,
        validation_data=(X[:32], Y[:32]),
        validation_freq=[2, 4],
        shuffle=False,
        verbose=0,
    )
    assert_histories_close(with_int.ref_history, got)


# ---------------------------------------------------------------- weights


@pytest.mark.parametrize("label_form", ["sparse-(N,)", "sparse-(N,1)", "one-hot-(N,C)"])
def test_class_weight(label_form: str) -> None:
    if label_form == "sparse-(N,)":
        y, loss = LABELS, "sparse_categorical_crossentropy"
    elif label_form == "sparse-(N,1)":
        y, loss = LABELS.reshape(-1, 1), "sparse_categorical_crossentropy"
    else:
        y, loss = np.eye(3, dtype="float32")[LABELS], "categorical_crossentropy"
    res = run_both(
        _cls,
        {
            "optimizer": "adam",
            "loss": loss,
            "metrics": ["accuracy"],
            "weighted_metrics": ["accuracy"],
        },
        {"x": XC, "y": y, "batch_size": 16, "epochs": 2, "class_weight": CLASS_WEIGHT},
    )
    # Class weights enter the weighted metric but not the plain one.
    history = res.twin_history.history
    assert not np.allclose(history["accuracy"], history["weighted_accuracy"])


def test_sample_weight_1d() -> None:
    sw = np.linspace(0.1, 3.0, len(X)).astype("float32")
    run_both(
        _reg,
        {**COMPILE, "weighted_metrics": ["mae"]},
        {
            "x": X,
            "y": Y,
            "sample_weight": sw,
            "batch_size": 16,
            "epochs": 2,
            "validation_split": 0.25,
        },
        eval_kwargs={"x": X, "y": Y, "sample_weight": sw},
    )


def test_class_weight_times_sample_weight() -> None:
    """fitpipe multiplies ``class_weight`` into ``sample_weight`` (Keras 3 raises)."""
    sw = np.linspace(0.1, 3.0, len(XC)).astype("float32")
    product = sw * np.array([CLASS_WEIGHT[int(c)] for c in LABELS], dtype="float32")
    ref, twin = make_twins(_cls)
    api = compile_both(ref, twin, CLS_COMPILE)
    h_ref = ref.fit(
        XC, LABELS, sample_weight=product, batch_size=16, epochs=2, shuffle=False, verbose=0
    )
    h_got = api.fit(
        XC,
        LABELS,
        sample_weight=sw,
        class_weight=CLASS_WEIGHT,
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    assert_histories_close(h_ref, h_got)
    assert_weights_close(ref, twin)


def test_temporal_sample_weight() -> None:
    steps = 5
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(64, steps, 3)).astype("float32")
    ys = np.cumsum(xs[..., :1], axis=1).astype("float32")
    sw = rng.uniform(0.0, 2.0, size=(64, steps)).astype("float32")

    def build() -> keras.Model:
        inp = keras.Input((steps, 3))
        h = keras.layers.SimpleRNN(4, return_sequences=True)(inp)
        return keras.Model(inp, keras.layers.Dense(1)(h))

    res = run_both(
        build,
        {"optimizer": "adam", "loss": "mse", "weighted_metrics": ["mae"]},
        {"x": xs, "y": ys, "sample_weight": sw, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": xs, "y": ys, "sample_weight": sw},
        predict_x=xs,
    )
    assert res.twin.predict(xs[:2], verbose=0).shape == (2, steps, 1)


# ---------------------------------------------------------------- steps_per_epoch


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs"),
    [(3, 3), (4, 4)],
    ids=["within-data", "past-end-of-data"],
)
def test_steps_per_epoch_on_arrays(steps_per_epoch: int, epochs: int) -> None:
    # 96 rows / batch 10 = 10 batches. Keras keeps one iterator across epochs:
    # (3, 3) sees batches 0-8; (4, 4) runs out in epoch 3 (2 steps only) and
    # restarts the data for epoch 4, so 4 + 4 + 2 + 4 = 14 updates.
    runs_out = steps_per_epoch * epochs > 10
    with pytest.warns(FitpipeWarning, match="ran out of data") if runs_out else nullcontext():
        res = run_both(
            _reg,
            COMPILE,
            {
                "x": X,
                "y": Y,
                "batch_size": 10,
                "epochs": epochs,
                "steps_per_epoch": steps_per_epoch,
            },
        )
    assert res.twin_history.params["steps"] == steps_per_epoch
    expected_updates = {(3, 3): 9, (4, 4): 14}[(steps_per_epoch, epochs)]
    assert int(res.twin.optimizer.iterations) == expected_updates


def test_steps_per_epoch_on_repeated_dataset() -> None:
    res = run_both(
        _reg,
        COMPILE,
        lambda side: {
            "x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(16).repeat(),
            "epochs": 3,
            "steps_per_epoch": 4,
            "validation_data": tf.data.Dataset.from_tensor_slices((X[:32], Y[:32]))
            .batch(16)
            .repeat(),
            "validation_steps": 2,
        },
    )
    assert int(res.twin.optimizer.iterations) == 12


# ---------------------------------------------------------------- shuffle


def test_shuffle_true_trains() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, COMPILE)
    h_ref = ref.fit(X, Y, batch_size=16, epochs=3, shuffle=True, verbose=0, validation_split=0.25)
    h_got = api.fit(X, Y, batch_size=16, epochs=3, shuffle=True, verbose=0, validation_split=0.25)
    assert set(h_got.history) == set(h_ref.history)
    assert h_got.epoch == [0, 1, 2]
    for key, values in h_got.history.items():
        assert len(values) == 3, key
        assert is_finite_sequence(values), (key, values)
    assert h_got.history["loss"][-1] < h_got.history["loss"][0] * 1.5
    assert int(twin.optimizer.iterations) == int(ref.optimizer.iterations) == 15
    assert not all(
        np.allclose(a, b)
        for a, b in zip(twin.get_weights(), make_twins(_reg)[0].get_weights(), strict=True)
    )


def test_fitpipe_fit_returns_history_bound_to_model() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, COMPILE)
    h = api.fit(X, Y, epochs=1, verbose=0)
    h_ref = ref.fit(X, Y, epochs=1, verbose=0)
    assert isinstance(h, keras.callbacks.History)
    assert h.model is twin
    assert h_ref.model is ref
