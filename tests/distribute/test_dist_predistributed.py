"""Datasets distributed by a strategy before ``fit``: what is taken, what is refused, and how.

Training on them under MirroredStrategy is compared with Keras in test_dist_mirrored.py.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.adapters import replicas_of

X = np.arange(16, dtype="float32").reshape(8, 2)
Y = np.arange(8, dtype="float32")[:, None]
STRATEGY = tf.distribute.OneDeviceStrategy("/cpu:0")


def distributed(*parts: Any) -> Any:
    dataset = tf.data.Dataset.from_tensor_slices(parts)  # tuples: (x,), (x, y)
    return STRATEGY.experimental_distribute_dataset(dataset.batch(4))


def trainer(under_strategy: bool) -> fitpipe.Trainer:
    def build() -> fitpipe.Trainer:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        result = fitpipe.Trainer(model)
        result.compile(optimizer="sgd", loss="mse")
        return result

    if not under_strategy:
        return build()
    with STRATEGY.scope():
        return build()


def test_is_taken_by_its_own_adapter_with_one_replicas_spec() -> None:
    pipeline = fitpipe.adapt(distributed(X, Y))
    assert pipeline.adapter == "distributed"
    assert pipeline.num_batches == 2
    assert pipeline.element_spec[0].shape.as_list() == [None, 2]


def test_trains_under_its_strategy() -> None:
    history = trainer(True).fit(distributed(X, Y), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_a_model_built_under_no_strategy_takes_it_from_one_replica(method: str) -> None:
    # As Keras: the batches of a one-replica strategy are plain tensors (compared with Keras
    # in tests/training/test_keras_parity_suite.py; over two replicas, the error:
    # test_dist_mirrored.py).
    run = getattr(trainer(False), method)
    data = distributed(X) if method == "predict" else distributed(X, Y)
    result = run(data, verbose=0)
    assert result is not None


def test_replicas_of_names_the_strategys_replicas() -> None:
    assert replicas_of(distributed(X, Y)) == 1


def test_arguments_it_cannot_honour_are_refused() -> None:
    with pytest.raises(ValueError, match=r"does not support `class_weight` when `x` is a tf.dis"):
        trainer(True).fit(distributed(X, Y), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"does not support `validation_split`"):
        trainer(True).fit(distributed(X, Y), validation_split=0.5, verbose=0)


def test_elements_that_are_not_tuples_are_refused() -> None:
    with pytest.raises(ValueError, match=r"elements are not tuples of 1 to 3 parts.*lambda x"):
        fitpipe.adapt(STRATEGY.experimental_distribute_dataset(tf.data.Dataset.from_tensors(X)))
