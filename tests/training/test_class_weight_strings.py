"""``class_weight`` with string targets: one clear error, up front, on every path.

Keras refuses string labels with ``class_weight`` too (it reads them with ``int()``); fitpipe
refuses them with its own ``FitpipeTypeError`` before any batch is read, whatever the form of
``class_weight`` (a map, ``"balanced"``), of the labels, and of the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeTypeError

X = np.random.default_rng(0).normal(size=(12, 2)).astype("float32")
NAMES = np.array(["cat", "dog", "emu"])[np.arange(12) % 3]


def _labels(kind: str) -> Any:
    if kind == "str":
        return NAMES
    if kind == "bytes":
        return NAMES.astype("S")
    if kind == "tensor":
        return tf.constant(NAMES)
    return pd.Series(NAMES)  # object dtype


def _model(trainer: bool) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    target = fitpipe.Trainer(model) if trainer else model
    target.compile("sgd", "sparse_categorical_crossentropy")
    return target


def _batches(y: Any) -> Iterator[tuple[Any, Any]]:
    for start in range(0, 12, 4):
        yield X[start : start + 4], np.asarray(y)[start : start + 4]


def _call(path: str, y: Any, class_weight: Any) -> Any:
    if path == "fit":
        return _model(True).fit(X, y, class_weight=class_weight, batch_size=4, verbose=0)
    if path == "fit-generator":
        return _model(True).fit(_batches(y), class_weight=class_weight, verbose=0)
    if path == "adapt":
        return fitpipe.adapt(X, y, class_weight=class_weight, batch_size=4)
    if path == "adapt-tf.data":
        data = tf.data.Dataset.from_tensor_slices((X, np.asarray(y))).batch(4)
        return fitpipe.adapt(data, class_weight=class_weight)
    return _model(True).train_on_batch(X, y, class_weight=class_weight)


@settings(max_examples=min(20, settings.default.max_examples), deadline=None)
@given(
    kind=st.sampled_from(["str", "bytes", "tensor", "pandas"]),
    class_weight=st.sampled_from([{0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0}, "balanced"]),
    path=st.sampled_from(["fit", "fit-generator", "adapt", "adapt-tf.data", "train_on_batch"]),
)
def test_string_targets_with_class_weight_are_refused_up_front(
    kind: str, class_weight: Any, path: str
) -> None:
    y = _labels(kind)
    with pytest.raises(FitpipeTypeError, match=r"^`\w+` got string targets `y`"):
        _call(path, y, class_weight)


def test_keras_refuses_them_too() -> None:
    """The oracle: Keras fails on string labels with a map (``"balanced"`` is fitpipe's)."""
    with pytest.raises((ValueError, TypeError)):
        _model(False).fit(X, NAMES, class_weight={0: 1.0, 1: 2.0, 2: 3.0}, verbose=0)
