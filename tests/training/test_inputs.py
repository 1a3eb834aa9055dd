"""Differential tests: every supported input form trains like Keras."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from differential import classification_data, dense_model, regression_data

from fitpipe.testing.keras_diff import Side, assert_weights_close, run_both

X, Y = regression_data(n=96, d=4)
COMPILE = {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]}


def _build() -> keras.Model:
    return dense_model(d=4)


def finite_batches(
    x: np.ndarray, y: np.ndarray, batch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x, y)`` batches once, in order."""
    for i in range(0, len(x), batch):
        yield x[i : i + batch], y[i : i + batch]


def infinite_batches(
    x: np.ndarray, y: np.ndarray, batch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x, y)`` batches forever, cycling through the data in order."""
    while True:
        yield from finite_batches(x, y, batch)


class ArrayPyDataset(keras.utils.PyDataset):
    """A ``PyDataset`` over in-memory arrays, deterministic batch order."""

    def __init__(self, x: Any, y: Any, batch_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, idx: int) -> tuple[Any, Any]:
        s = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
        return self.x[s], self.y[s]


def test_numpy_arrays() -> None:
    run_both(
        _build,
        COMPILE,
        {"x": X, "y": Y, "batch_size": 16, "epochs": 3},
        eval_kwargs={"x": X, "y": Y},
        predict_x=X,
    )


def _two_input_functional(named: bool) -> keras.Model:
    a = keras.Input((3,), name="a" if named else None)
    b = keras.Input((2,), name="b" if named else None)
    h = keras.layers.Concatenate()([keras.layers.Dense(4, activation="tanh")(a), b])
    out = keras.layers.Dense(1)(h)
    return keras.Model([a, b] if not named else {"a": a, "b": b}, out)


def test_list_of_arrays_two_inputs() -> None:
    xs = [X[:, :3], X[:, 3:] @ np.ones((1, 2), "float32")]
    run_both(
        lambda: _two_input_functional(named=False),
        COMPILE,
        {"x": xs, "y": Y, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": xs, "y": Y},
        predict_x=xs,
    )


def test_dict_of_arrays_named_inputs() -> None:
    xs = {"a": X[:, :3], "b": np.concatenate([X[:, 3:], -X[:, 3:]], axis=1)}
    run_both(
        lambda: _two_input_functional(named=True),
        COMPILE,
        {"x": xs, "y": Y, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": xs, "y": Y},
        predict_x=xs,
    )


def test_tf_tensors() -> None:
    tx, ty = tf.constant(X), tf.constant(Y)
    run_both(
        _build,
        COMPILE,
        {"x": tx, "y": ty, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": tx, "y": ty},
        predict_x=tx,
    )


def test_pandas_dataframe() -> None:
    df = pd.DataFrame(X, columns=["f0", "f1", "f2", "f3"])
    target = pd.Series(Y[:, 0], name="target")
    run_both(
        _build,
        COMPILE,
        {"x": df, "y": target, "batch_size": 16, "epochs": 2},
        eval_kwargs={"x": df, "y": target},
        predict_x=df,
    )


def test_finite_generator_one_epoch() -> None:
    # On inputs of unknown length Keras 3.15 increments `optimizer.iterations` once more when
    # the last, failing `get_next` runs (the counter has no data dependency), so 6 batches
    # read as 7 iterations although the weights see 6 updates. fitpipe counts 6: weights are
    # compared with Keras, iterations with the number of batches.
    res = run_both(
        _build,
        COMPILE,
        lambda side: {"x": finite_batches(X, Y, 16), "epochs": 1},
        eval_kwargs=lambda side: {"x": finite_batches(X, Y, 32)},
        check_weights=False,
    )
    assert_weights_close(res.ref, res.twin)
    assert res.twin_history.params["steps"] is None  # unknown length, like Keras
    assert int(res.twin.optimizer.iterations) == len(X) // 16
    assert int(res.ref.optimizer.iterations) == len(X) // 16 + 1


def test_infinite_generator_with_steps_per_epoch() -> None:
    res = run_both(
        _build,
        COMPILE,
        lambda side: {"x": infinite_batches(X, Y, 16), "epochs": 3, "steps_per_epoch": 4},
        eval_kwargs=lambda side: {"x": infinite_batches(X, Y, 16), "steps": 3},
    )
    # 4 steps per epoch, consumed continuously: 12 updates in total.
    assert int(res.twin.optimizer.iterations) == 12


def test_batched_tf_data_dataset() -> None:
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(16)
    run_both(
        _build,
        COMPILE,
        {"x": ds, "epochs": 3},
        eval_kwargs={"x": ds},
        predict_x=tf.data.Dataset.from_tensor_slices(X).batch(10),
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_pydataset(workers: int) -> None:
    def fit_kwargs(side: Side) -> dict[str, Any]:
        return {
            "x": ArrayPyDataset(X, Y, batch_size=16, workers=workers, use_multiprocessing=False),
            "epochs": 2,
        }

    run_both(
        _build,
        COMPILE,
        fit_kwargs,
        eval_kwargs=lambda side: {"x": ArrayPyDataset(X, Y, batch_size=20, workers=workers)},
    )


def test_integer_labels_from_pydataset() -> None:
    xc, labels = classification_data(n=80, d=6, classes=3)
    run_both(
        lambda: dense_model(d=6, units=3, activation="softmax"),
        {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        lambda side: {"x": ArrayPyDataset(xc, labels, batch_size=16), "epochs": 2},
        eval_kwargs={"x": xc, "y": labels},
    )


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("form", ["ndarray", "tensor", "generator", "tf.data"])
def test_complex_data_for_a_real_input_is_refused_in_every_form(form: str, dtype: str) -> None:
    """Keras (and fitpipe but for NumPy) trained on the real part, dropping the imaginary."""
    import fitpipe

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(16, 3)) + 1j * rng.normal(size=(16, 3))).astype(dtype)
    y = rng.normal(size=(16, 1)).astype("float32")
    given = {
        "ndarray": lambda: (x, y),
        "tensor": lambda: (tf.constant(x), y),
        "generator": lambda: (((x[s : s + 8], y[s : s + 8]) for s in (0, 8)), None),
        "tf.data": lambda: (tf.data.Dataset.from_tensor_slices((x, y)).batch(8), None),
    }[form]()
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(fitpipe.errors.FitpipeTypeError, match=f"of dtype {dtype}: complex values"):
        trainer.fit(*given, verbose=0)
