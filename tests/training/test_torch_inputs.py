"""Differential tests: ``torch.utils.data.DataLoader`` inputs and torch tensors, Keras vs fitpipe.

Each case trains a Keras model and a fitpipe twin from the same initial weights on the same
batches and compares histories, ``evaluate``, ``predict`` and the final weights. torch is a
test extra: the module is skipped where it is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest

from fitpipe.testing.keras_diff import Side, assert_weights_close, run_both

torch = pytest.importorskip("torch")
data = torch.utils.data

RNG = np.random.default_rng(9)
X = RNG.normal(size=(40, 3)).astype("float32")
Y = (X @ np.ones((3, 1), "float32")).astype("float32")
SGD = {"optimizer": "sgd", "loss": "mse"}


def _linear_model() -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])


def _two_inputs() -> keras.Model:
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    merged = keras.layers.Concatenate()([keras.layers.Dense(4)(a), b])
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(merged))


def _rows() -> Any:
    return data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))


class _Stream(data.IterableDataset):
    """The rows one by one, without a length."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for i in range(len(X)):
            yield torch.from_numpy(X[i]), torch.from_numpy(Y[i])


class _Batches(data.IterableDataset):
    """Batches of the given sizes, yielded as they are (read with ``batch_size=None``)."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.sizes = sizes

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        start = 0
        for size in self.sizes:
            rows = slice(start, start + size)
            yield torch.from_numpy(X[rows]), torch.from_numpy(Y[rows])
            start += size


def test_map_style_loader_trains_like_keras() -> None:
    loader = data.DataLoader(_rows(), batch_size=8)
    result = run_both(
        _linear_model, SGD, {"x": loader, "epochs": 2}, eval_kwargs={"x": loader}, predict_x=loader
    )
    assert result.twin_history is not None and result.twin_history.params["steps"] == 5


def test_a_partial_last_batch_and_sample_weights_train_like_keras() -> None:
    weights = np.linspace(0.5, 2.0, len(X)).astype("float32")
    rows = data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(weights))
    loader = data.DataLoader(rows, batch_size=16)  # 16, 16, 8
    run_both(
        _linear_model,
        {**SGD, "weighted_metrics": ["mae"]},
        {"x": loader, "epochs": 2},
        eval_kwargs={"x": loader},
    )


@pytest.mark.parametrize("sizes", [None, (3, 0, 8, 0, 5)], ids=["unsized-loader", "zero-rows"])
def test_loaders_without_a_length_train_like_keras(sizes: tuple[int, ...] | None) -> None:
    if sizes is None:
        loader = data.DataLoader(_Stream(), batch_size=8)
    else:  # batches of 0 rows, mid-epoch and last: a step each, as in Keras
        loader = data.DataLoader(_Batches(sizes), batch_size=None)
    result = run_both(
        _linear_model,
        SGD,
        {"x": loader, "epochs": 2},
        eval_kwargs={"x": loader},
        predict_x=loader,
        # Keras 3.15 counts one optimizer iteration too many per epoch of an input of
        # unknown length (see the README); plain SGD ends at the same weights.
        check_weights=False,
    )
    assert_weights_close(result.ref, result.twin)
    assert int(result.twin.optimizer.iterations) == 2 * (5 if sizes is None else len(sizes))


def test_dict_inputs_train_like_keras() -> None:
    class Named(data.Dataset):
        def __len__(self) -> int:
            return len(X)

        def __getitem__(self, i: int) -> Any:
            x = {"a": torch.from_numpy(X[i]), "b": torch.from_numpy(X[i, :2])}
            return x, torch.from_numpy(Y[i])

    loader = data.DataLoader(Named(), batch_size=8)
    run_both(_two_inputs, SGD, {"x": loader, "epochs": 2}, eval_kwargs={"x": loader})


def test_steps_per_epoch_trains_like_keras() -> None:
    # 5 batches, 2 per epoch: as in Keras, the second epoch goes on with batches 2 and 3
    # of the same pass (a pass that runs out ends training, with a warning).
    loader = data.DataLoader(_rows(), batch_size=8)
    run_both(
        _linear_model,
        SGD,
        {"x": loader, "epochs": 2, "steps_per_epoch": 2},
        eval_kwargs={"x": loader, "steps": 3},
        predict_x=loader,
    )


def test_the_loaders_own_shuffling_trains_like_keras() -> None:
    # A fresh loader per side, seeded alike: both read the same orders only if fitpipe
    # iterates the loader as often as Keras (its peek included).
    def fit_kwargs(side: Side) -> dict[str, Any]:
        seeded = torch.Generator().manual_seed(3)
        loader = data.DataLoader(_rows(), batch_size=8, shuffle=True, generator=seeded)
        return {"x": loader, "epochs": 3}

    run_both(_linear_model, SGD, fit_kwargs)


def test_class_weight_weighs_rows_like_keras_sample_weights() -> None:
    # Keras refuses `class_weight` for a DataLoader; fitpipe weighs each row by its class,
    # which trains as Keras does on the same rows with those weights as sample weights.
    labels = (X[:, 0] > 0).astype("int64")
    class_weight = {0: 0.5, 1: 2.0}
    weights = np.where(labels == 1, 2.0, 0.5).astype("float32")

    def fit_kwargs(side: Side) -> dict[str, Any]:
        parts = [torch.from_numpy(X), torch.from_numpy(labels)]
        if side == "keras":
            parts.append(torch.from_numpy(weights))
            return {"x": data.DataLoader(data.TensorDataset(*parts), batch_size=8)}
        loader = data.DataLoader(data.TensorDataset(*parts), batch_size=8)
        return {"x": loader, "class_weight": class_weight}

    def build() -> keras.Model:
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])

    run_both(build, {"optimizer": "sgd", "loss": "sparse_categorical_crossentropy"}, fit_kwargs)


# ------------------------------------------------------------------ torch tensors as arrays


def test_torch_tensors_train_like_keras() -> None:
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    run_both(
        _linear_model,
        SGD,
        {"x": x, "y": y, "batch_size": 8, "epochs": 2, "validation_split": 0.25},
        eval_kwargs={"x": x, "y": y, "batch_size": 8},
        predict_x=x,
    )


def test_torch_tensors_in_a_dict_train_like_keras() -> None:
    x = {"a": torch.from_numpy(X), "b": torch.from_numpy(X[:, :2])}
    run_both(
        _two_inputs,
        SGD,
        {"x": x, "y": torch.from_numpy(Y), "batch_size": 8, "epochs": 2},
        eval_kwargs={"x": x, "y": torch.from_numpy(Y), "batch_size": 8},
    )


def test_bfloat16_and_grad_tracking_tensors_train_like_keras() -> None:
    # Keras casts bfloat16 to floatx; it fails on a tensor that requires grad (its TensorFlow
    # path calls `numpy()` without `detach()`), so its side gets the detached values.
    halves = torch.from_numpy(X).to(torch.bfloat16)

    def fit_kwargs(side: Side) -> dict[str, Any]:
        y = torch.from_numpy(Y)
        return {"x": halves, "y": y if side == "keras" else y.requires_grad_(), "epochs": 2}

    run_both(_linear_model, SGD, fit_kwargs)
