"""Training scripts written the way users write them: fitpipe against Keras at its defaults.

The grid times ``fit`` with ``verbose=0`` and no callback. Users' scripts print a progress
bar, save checkpoints, stop early, log to TensorBoard, hook a callback on batches, classify
with sparse labels, override ``train_step``, call ``train_on_batch`` and ``predict`` in
loops of their own, train other models (an LSTM, batch normalization and dropout, named
inputs with two outputs, a Conv2D) from other inputs (a pandas ``DataFrame``), or
cross-validate. Each case here is such a script on 64,000 rows (``--rows``; 32 float32
features, or sequences, images and tokens) and Keras' default batch of 32: a fresh model
per side, the CPU seconds of the process for the whole call, sides in turns for
``--repeats`` rounds, medians; printed output goes to a buffer (its writing is timed).

    python benchmarks/user_scripts.py --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas
import tensorflow as tf

import fitpipe

FEATURES = 32


class Data:
    """The rows every case reads."""

    def __init__(self, rows: int) -> None:
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(rows, FEATURES)).astype("float32")
        self.y = (self.x[:, :1] * 2 + rng.normal(size=(rows, 1))).astype("float32")
        self.labels = (np.abs(self.x[:, :3]).sum(1) * 3).astype("int64") % 10
        self.binary = (self.x[:, 0] > 0).astype("float32")
        self.weights = rng.random(rows).astype("float32")
        self.tokens = rng.integers(0, 5000, size=(rows, 40)).astype("int32")
        self.validation = (self.x[:8000], self.y[:8000])
        self.sequences = rng.normal(size=(rows, 20, 8)).astype("float32")
        self.images = rng.normal(size=(rows, 16, 16, 1)).astype("float32")
        self.named = {"features": self.x, "tokens": self.tokens}
        self.two_targets = {"value": self.y, "label": self.labels}
        self.frame = pandas.DataFrame(self.x, columns=[f"f{i}" for i in range(FEATURES)])
        self.series = pandas.Series(self.y[:, 0], name="target")


def mlp(outputs: int = 1, activation: str | None = None) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(hidden))


def text() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((40,), dtype="int32")
    hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(5000, 32)(inputs))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))


def lstm() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((20, 8))
    return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(32)(inputs)))


def normalized() -> keras.Model:
    """The MLP with batch normalization and dropout: layers that train differently."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.BatchNormalization()(keras.layers.Dense(64, "relu")(inputs))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(64, "relu")(hidden))
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def two_heads() -> keras.Model:
    """Two named inputs (features, tokens) and two named outputs (a value, a class)."""
    keras.utils.set_random_seed(0)
    features = keras.Input((FEATURES,), name="features")
    tokens = keras.Input((40,), dtype="int32", name="tokens")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(5000, 16)(tokens))
    hidden = keras.layers.Dense(64, "relu")(keras.layers.Concatenate()([features, pooled]))
    value = keras.layers.Dense(1, name="value")(hidden)
    label = keras.layers.Dense(10, activation="softmax", name="label")(hidden)
    return keras.Model({"features": features, "tokens": tokens}, {"value": value, "label": label})


def conv2d() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    hidden = keras.layers.MaxPooling2D()(keras.layers.Conv2D(16, 3, activation="relu")(inputs))
    hidden = keras.layers.Flatten()(hidden)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))


class OwnStep(keras.Model):
    """A model with its own ``train_step``, as Keras' guide to customizing ``fit`` writes it."""

    def train_step(self, data: Any) -> Any:
        x, y = data
        with tf.GradientTape() as tape:
            predicted = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=predicted)
        weights = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, weights), weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, predicted)
        return {metric.name: metric.result() for metric in self.metrics}


def own_step() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    return OwnStep(inputs, keras.layers.Dense(1)(keras.layers.Dense(64, "relu")(inputs)))


class BatchCounter(keras.callbacks.Callback):
    """A user's callback hooked on every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches += 1


def callbacks(kind: str) -> list[keras.callbacks.Callback]:
    folder = tempfile.mkdtemp(prefix="fitpipe-user-scripts-")
    made: dict[str, Callable[[], list[Any]]] = {
        "early stopping": lambda: [
            keras.callbacks.EarlyStopping("val_loss", patience=2, restore_best_weights=True)
        ],
        "checkpoint": lambda: [
            keras.callbacks.ModelCheckpoint(os.path.join(folder, "m.keras"), save_best_only=True)
        ],
        "tensorboard": lambda: [keras.callbacks.TensorBoard(log_dir=folder)],
        "csv": lambda: [keras.callbacks.CSVLogger(os.path.join(folder, "log.csv"))],
        "batch hook": lambda: [BatchCounter()],
    }
    return made[kind]() if kind else []


def fit_case(build: Callable[[], keras.Model], compiled: dict[str, Any], **fit: Any) -> Any:
    """A case: ``fit(**fit)`` of a fresh model compiled with ``compiled`` (data by name)."""

    kind = fit.pop("cb", "")

    def run(runner: Any, data: Data) -> None:
        given = {k: getattr(data, v) if isinstance(v, str) else v for k, v in fit.items()}
        runner.fit(callbacks=callbacks(kind), **given)

    return build, compiled, run


def loop_case(run: Callable[[Any, Data], None]) -> Any:
    """A case: ``run(runner, data)``, a loop of calls on the MLP compiled for MSE."""
    return mlp, {"optimizer": "adam", "loss": "mse"}, run


def _on_batches(method: str, with_y: bool) -> Callable[[Any, Data], None]:
    def run(runner: Any, data: Data) -> None:
        call = getattr(runner, method)
        for start in range(0, 16000, 32):
            rows = slice(start, start + 32)
            call(data.x[rows], data.y[rows]) if with_y else call(data.x[rows])

    return run


def _folds(count: int) -> Callable[[Any, Data], None]:
    """K-fold validation: a fresh model a fold, trained on the other folds and evaluated."""

    def run(runner: Any, data: Data) -> None:
        size = len(data.x) // count
        for fold in range(count):
            if fold:  # the first fold's model is the case's own
                runner = fitpipe.Trainer(mlp()) if isinstance(runner, fitpipe.Trainer) else mlp()
                runner.compile(**MSE)
            held = np.arange(fold * size, (fold + 1) * size)
            kept = np.setdiff1d(np.arange(len(data.x)), held)
            runner.fit(data.x[kept], data.y[kept], epochs=1, verbose=0)
            runner.evaluate(data.x[held], data.y[held], verbose=0)

    return run


MSE = {"optimizer": "adam", "loss": "mse"}
HEADS = {
    "optimizer": "adam",
    "loss": {"value": "mse", "label": "sparse_categorical_crossentropy"},
    "loss_weights": {"value": 1.0, "label": 0.5},
    "metrics": {"label": ["accuracy"]},
}
SPARSE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
XY = {"x": "x", "y": "y", "epochs": 3}
CASES = {
    "progress bar": fit_case(mlp, MSE, **XY),
    "progress bar, validation_split": fit_case(mlp, MSE, **XY, validation_split=0.2),
    "verbose=2": fit_case(mlp, MSE, **XY, verbose=2),
    "EarlyStopping, validation_data": fit_case(
        mlp, MSE, **XY, verbose=0, validation_data="validation", cb="early stopping"
    ),
    "ModelCheckpoint(save_best_only)": fit_case(
        mlp, MSE, **XY, verbose=0, validation_split=0.2, cb="checkpoint"
    ),
    "TensorBoard": fit_case(mlp, MSE, **XY, verbose=0, cb="tensorboard"),
    "CSVLogger": fit_case(mlp, MSE, **XY, verbose=0, cb="csv"),
    "a callback on every batch": fit_case(mlp, MSE, **XY, verbose=0, cb="batch hook"),
    "sparse labels, accuracy": fit_case(
        lambda: mlp(10, "softmax"), SPARSE, x="x", y="labels", epochs=2, verbose=0
    ),
    "binary, class_weight, AUC": fit_case(
        lambda: mlp(1, "sigmoid"),
        {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy", "auc"]},
        x="x",
        y="binary",
        epochs=2,
        verbose=0,
        class_weight={0: 1.0, 1: 3.0},
    ),
    "sample_weight, validation_split": fit_case(
        mlp, MSE, x="x", y="y", sample_weight="weights", epochs=2, verbose=0, validation_split=0.1
    ),
    "text, sparse labels": fit_case(text, SPARSE, x="tokens", y="labels", epochs=2, verbose=0),
    "LSTM": fit_case(lstm, MSE, x="sequences", y="y", verbose=0),
    "batch norm, dropout": fit_case(normalized, MSE, **XY, verbose=0),
    "dict inputs, two outputs": fit_case(
        two_heads, HEADS, x="named", y="two_targets", epochs=2, verbose=0
    ),
    "Conv2D images": fit_case(conv2d, SPARSE, x="images", y="labels", epochs=2, verbose=0),
    "pandas DataFrame": fit_case(mlp, MSE, x="frame", y="series", epochs=3, verbose=0),
    "k-fold x4": loop_case(_folds(4)),
    "own train_step": fit_case(
        own_step, {**MSE, "metrics": ["mae"]}, x="x", y="y", epochs=2, verbose=0
    ),
    "evaluate, progress bar": loop_case(lambda r, d: r.evaluate(d.x, d.y)),
    "predict, progress bar": loop_case(lambda r, d: r.predict(d.x)),
    "train_on_batch x500": loop_case(_on_batches("train_on_batch", True)),
    "test_on_batch x500": loop_case(_on_batches("test_on_batch", True)),
    "predict_on_batch x500": loop_case(_on_batches("predict_on_batch", False)),
    "predict one row x200": loop_case(
        lambda r, d: [r.predict(d.x[i : i + 1], verbose=0) for i in range(200)]
    ),
    "evaluate 256 rows x50": loop_case(
        lambda r, d: [r.evaluate(d.x[:256], d.y[:256], verbose=0) for _ in range(50)]
    ),
}


def one_side(side: str, case: Any, data: Data) -> float:
    """CPU seconds of ``case`` on a fresh model, run by Keras or by fitpipe."""
    build, compiled, run = case
    model = build()
    runner: Any = fitpipe.Trainer(model) if side == "fitpipe" else model
    runner.compile(**compiled)
    begin = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        run(runner, data)
    return time.process_time() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--rows", type=int, default=64000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = Data(args.rows)
    warm = CASES["evaluate 256 rows x50"]
    one_side("fitpipe", warm, data)  # the process's one-time costs, on both sides
    one_side("keras", warm, data)
    print("| case | Keras (defaults), CPU s | fitpipe, CPU s | ratio |")
    print("|---|---|---|---|")
    for name in args.cases:
        times: dict[str, list[float]] = {"keras": [], "fitpipe": []}
        for _ in range(args.repeats):
            for side, seconds in times.items():
                seconds.append(one_side(side, CASES[name], data))
        keras_s, ours = (statistics.median(times[s]) for s in ("keras", "fitpipe"))
        spread = f"{min(times['fitpipe']):.2f}-{max(times['fitpipe']):.2f}"
        print(f"| {name} | {keras_s:.2f} | {ours:.2f} ({spread}) | {keras_s / ours:.2f}x |")


if __name__ == "__main__":
    main()
