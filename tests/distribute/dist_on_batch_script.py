"""Run by test_dist_on_batch.py in a subprocess: ``*_on_batch`` under a MirroredStrategy.

Two logical CPU devices (configured before TensorFlow initializes them). For every batch size
1..5 (splitting evenly over the two replicas or not), with and without sample weights, a fresh
model and its Keras twin (same weights, same compile, both built under the strategy) take the
same calls: ``train_on_batch`` twice and ``test_on_batch`` twice, a train step first for even
batch sizes (its metrics and optimizer unbuilt), a test step first for odd ones. Each call's
results and the weights after are printed as one JSON line.
"""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import fitpipe  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 4)).astype("float32")
Y = RNG.integers(0, 3, 5)
SW = RNG.random(5).astype("float32")


def _pair() -> tuple[Any, keras.Model]:
    """A Trainer and its Keras twin, built and compiled under the strategy."""

    def compiled() -> dict[str, Any]:
        return {
            "optimizer": keras.optimizers.SGD(0.5),
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="w_acc")],
        }

    keras.utils.set_random_seed(0)
    with STRATEGY.scope():
        twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        twin.compile(**compiled())
        model = keras.models.clone_model(twin)
        model.set_weights(twin.get_weights())
        trainer = fitpipe.Trainer(model)
        trainer.compile(**compiled())
    return trainer, twin


def _calls(runner: Any, rows: int, weighted: bool) -> dict[str, Any]:
    """The calls every runner takes; an error is kept as its type and first line."""
    sw = SW[:rows] if weighted else None
    x, y = X[:rows], Y[:rows]
    calls = {
        "test": lambda: runner.test_on_batch(x, y, sample_weight=sw, return_dict=True),
        "train": lambda: runner.train_on_batch(x, y, sample_weight=sw, return_dict=True),
        "train_list": lambda: runner.train_on_batch(x, y, sample_weight=sw),
        "test_list": lambda: runner.test_on_batch(x, y, sample_weight=sw),
    }
    order = ["train", "test", "train_list", "test_list"]
    if rows % 2:
        order = ["test", "train", "test_list", "train_list"]
    out: dict[str, Any] = {}
    try:
        for name in order:
            out[name] = calls[name]()
    except Exception as error:  # reported, compared by the test
        out["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
    return out


def main() -> None:
    """Every batch size with and without weights, fitpipe's and Keras' calls."""
    runs: dict[str, Any] = {"replicas": STRATEGY.num_replicas_in_sync}
    for rows in range(1, 6):
        for weighted in (False, True):
            trainer, twin = _pair()
            runs[f"{rows} weighted={weighted}"] = {
                "fitpipe": _calls(trainer, rows, weighted),
                "keras": _calls(twin, rows, weighted),
                "weights": [
                    np.abs(a - b).max().item()
                    for a, b in zip(trainer.model.get_weights(), twin.get_weights(), strict=True)
                ],
            }
    print("RESULT " + json.dumps(runs))


if __name__ == "__main__":
    main()
