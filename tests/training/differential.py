"""The differential suite's data, models and callback recorder.

The kit the suite is built on (twins, training both sides, the comparisons) is
:mod:`fitpipe.testing.keras_diff`, fitpipe's public differential-testing module; this module
holds only what is particular to the suite: small deterministic data sets, a small MLP, and a
callback that records every hook call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np


def regression_data(
    n: int = 96, d: int = 4, outputs: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Make a small, deterministic regression problem.

    Args:
        n: Number of rows.
        d: Number of features.
        outputs: Number of target columns.
        seed: NumPy seed.

    Returns:
        ``(x, y)`` float32 arrays of shapes ``(n, d)`` and ``(n, outputs)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    w = rng.normal(size=(d, outputs)).astype("float32")
    y = (x @ w + 0.1 * rng.normal(size=(n, outputs))).astype("float32")
    return x, y


def classification_data(
    n: int = 96, d: int = 6, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Make a small, deterministic classification problem with sparse labels.

    Args:
        n: Number of rows.
        d: Number of features.
        classes: Number of classes (2 gives binary 0/1 labels).
        seed: NumPy seed.

    Returns:
        ``(x, labels)`` with ``x`` float32 ``(n, d)`` and ``labels`` int32 ``(n,)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    w = rng.normal(size=(d, classes)).astype("float32")
    labels = np.argmax(x @ w + 0.5 * rng.normal(size=(n, classes)), axis=1)
    return x, labels.astype("int32")


def dense_model(
    d: int = 4,
    units: int = 1,
    activation: str | None = None,
    hidden: int = 8,
    cls: type[keras.Sequential] = keras.Sequential,
) -> keras.Sequential:
    """Build a small built Sequential MLP.

    Args:
        d: Input feature width.
        units: Output width.
        activation: Output activation.
        hidden: Hidden width (0 for no hidden layer).
        cls: Sequential class to instantiate (``keras.Sequential`` or
            ``fitpipe.Sequential``).

    Returns:
        The built model.
    """
    layers: list[keras.layers.Layer] = [keras.Input((d,))]
    if hidden:
        layers.append(keras.layers.Dense(hidden, activation="tanh"))
    layers.append(keras.layers.Dense(units, activation=activation))
    return cls(layers)


def is_finite_sequence(values: Sequence[float]) -> bool:
    """Tell whether every value in ``values`` is a finite number.

    Args:
        values: Numbers.

    Returns:
        True when all are finite.
    """
    return all(math.isfinite(float(v)) for v in values)


class RecordingCallback(keras.callbacks.Callback):
    """Record every callback hook call as ``(hook, index, sorted log keys)``.

    Attributes:
        events: Recorded calls, in order.
        models_seen: ``id`` of ``self.model`` at each ``on_train_begin``.
    """

    HOOKS: tuple[str, ...] = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_predict_begin",
        "on_predict_end",
        "on_predict_batch_begin",
        "on_predict_batch_end",
    )

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int | None, tuple[str, ...]]] = []
        self.models_seen: list[keras.Model] = []

    def _record(self, hook: str, index: int | None, logs: Mapping[str, Any] | None) -> None:
        self.events.append((hook, index, tuple(sorted(logs or {}))))

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.models_seen.append(self.model)
        self._record("on_train_begin", None, logs)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_train_end", None, logs)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_train_batch_begin", None, logs)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_train_batch_end", None, logs)

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_begin", None, logs)

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_end", None, logs)

    def on_test_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_batch_begin", None, logs)

    def on_test_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_test_batch_end", None, logs)

    def on_predict_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_begin", None, logs)

    def on_predict_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_end", None, logs)

    def on_predict_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_batch_begin", None, logs)

    def on_predict_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._record("on_predict_batch_end", None, logs)

    def counts(self) -> dict[str, int]:
        """Count calls per hook.

        Returns:
            Mapping hook name -> number of calls (hooks never called omitted).
        """
        out: dict[str, int] = {}
        for hook, _, _ in self.events:
            out[hook] = out.get(hook, 0) + 1
        return out


def assert_events_equal(ref: RecordingCallback, got: RecordingCallback) -> None:
    """Assert two recorders saw the same hooks, in order, with the same log keys.

    Args:
        ref: Recorder used with Keras.
        got: Recorder used with fitpipe.
    """
    assert ref.counts() == got.counts(), (
        f"callback hook counts differ:\n  keras:   {ref.counts()}\n  fitpipe: {got.counts()}"
    )
    for i, (r, g) in enumerate(zip(ref.events, got.events, strict=True)):
        assert r == g, f"callback event #{i} differs: keras {r} vs fitpipe {g}"
