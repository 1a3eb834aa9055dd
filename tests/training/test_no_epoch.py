"""``fit`` whose start epoch is ``epochs`` (a resumed run already complete), as Keras 3.

Keras builds its input (a generator's first batches are peeked) and calls ``on_train_begin``
and ``on_train_end``, and nothing else: History stays empty with the usual ``params``, the
data is never checked against the model and ``validation_data`` is never read. fitpipe did
its pre-flight checks first, so data that did not fit the model raised, a validation
generator lost its first batches, and ``check="full"`` read streamed Parquet in full.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from fitpipe import Schema, Trainer, limits
from fitpipe.errors import FitpipeError, FitpipeValueError

D = 4
X = np.ones((10, D), "float32")
Y = np.ones((10, 1), "float32")
WIDE = np.ones((10, 7), "float32")  # the model takes 4 features
HOOKS = ("on_train_begin", "on_train_end")


class Hooks(keras.callbacks.Callback):
    """Records every hook called, with its arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        for name in dir(keras.callbacks.Callback):
            if name.startswith("on_"):
                setattr(self, name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, (*args, *kwargs.values())))

        return record


class Counted:
    """A generator of batches, counting the batches taken from it (``self.batches``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batches: int = 5) -> None:
        self.taken = 0
        self.batches = self._batches(x, y, batches)

    def _batches(self, x: np.ndarray, y: np.ndarray, batches: int) -> Iterator[Any]:
        for _ in range(batches):
            self.taken += 1
            yield x[:2], y[:2]


def _model() -> keras.Model:
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)])


def _keras() -> keras.Model:
    model = _model()
    model.compile("sgd", "mse")
    return model


def _trainer() -> Trainer:
    trainer = Trainer(_model())
    trainer.compile("sgd", "mse")
    return trainer


def _both(**kwargs: Any) -> tuple[Any, Any, Hooks, Hooks]:
    """``fit(**kwargs)`` of Keras and of fitpipe, each with its own :class:`Hooks`.

    Callable values are called once per side (a generator for each).
    """
    results = []
    for fit in (_keras().fit, _trainer().fit):
        hooks = Hooks()
        args = {k: v() if callable(v) else v for k, v in kwargs.items()}
        history = fit(callbacks=[hooks], verbose=0, shuffle=False, **args)
        results.append((history, hooks))
    (k_history, k_hooks), (f_history, f_hooks) = results
    return k_history, f_history, k_hooks, f_hooks


def _assert_empty_like_keras(k_history: Any, f_history: Any, k_hooks: Any, f_hooks: Any) -> None:
    assert k_history.history == {} and f_history.history == {}
    assert k_history.epoch == [] and f_history.epoch == []
    assert f_history.params == k_history.params
    assert [name for name, _ in k_hooks.calls] == list(HOOKS)
    assert f_hooks.calls == k_hooks.calls


@pytest.mark.parametrize("epochs", [0, 1, 3])
def test_arrays_that_do_not_fit_the_model_run_no_epoch_as_keras(epochs: int) -> None:
    """Keras never checks data no step takes: fitpipe raised a DataMismatchError."""
    _assert_empty_like_keras(*_both(x=WIDE, y=Y, epochs=epochs, initial_epoch=epochs))


def test_params_and_hooks_as_keras_with_steps_per_epoch() -> None:
    _assert_empty_like_keras(*_both(x=X, y=Y, epochs=2, initial_epoch=2, steps_per_epoch=3))


def test_tf_data_that_does_not_fit_the_model_runs_no_epoch() -> None:
    def dataset() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((np.ones((10, 9), "float32"), Y)).batch(2)

    _assert_empty_like_keras(*_both(x=dataset, epochs=1, initial_epoch=1))


def test_a_generator_is_read_no_further_than_keras_reads_it() -> None:
    """Keras peeks at a generator's first batches to learn its spec; fitpipe reads no more."""
    sources = [Counted(np.ones((10, 9), "float32"), Y), Counted(np.ones((10, 9), "float32"), Y)]
    feed = iter(sources)
    _assert_empty_like_keras(*_both(x=lambda: next(feed).batches, epochs=1, initial_epoch=1))
    keras_source, fitpipe_source = sources
    assert fitpipe_source.taken <= keras_source.taken


def test_validation_data_is_not_read() -> None:
    """A validation generator keeps all its batches; data that does not fit is not checked."""
    sources = [Counted(X, Y), Counted(X, Y)]
    feed = iter(sources)
    _assert_empty_like_keras(
        *_both(x=X, y=Y, epochs=1, initial_epoch=1, validation_data=lambda: next(feed).batches)
    )
    assert [source.taken for source in sources] == [0, 0]
    bad = (np.ones((3, 9), "float32"), np.ones((5, 1), "float32"))
    _assert_empty_like_keras(*_both(x=X, y=Y, epochs=1, initial_epoch=1, validation_data=bad))


def test_the_data_check_is_not_run() -> None:
    nan = np.full((10, D), np.nan, "float32")
    history = _trainer().fit(nan, Y, epochs=1, initial_epoch=1, check="error", verbose=0)
    assert history.history == {} and history.epoch == []


def test_argument_errors_are_still_raised() -> None:
    """The documented argument checks come first, whether or not an epoch runs."""
    trainer = _trainer()
    with pytest.raises(FitpipeValueError, match="unknown `check`"):
        trainer.fit(X, Y, epochs=1, initial_epoch=1, check="sometimes", verbose=0)
    with pytest.raises(FitpipeValueError, match="cannot unpack `validation_data`"):
        trainer.fit(X, Y, epochs=1, initial_epoch=1, validation_data=(X, Y, Y, Y), verbose=0)
    with pytest.raises(FitpipeValueError, match="smaller than `initial_epoch`"):
        trainer.fit(X, Y, epochs=1, initial_epoch=2, verbose=0)
    with pytest.raises(FitpipeValueError, match="different numbers of samples"):
        trainer.fit(X, Y[:3], epochs=1, initial_epoch=1, verbose=0)  # Keras' raises too


def _parquet(folder: Path, labels: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    columns = {"a": rng.normal(size=len(labels)), "b": np.full(len(labels), np.nan)}
    path = str(folder / "d.parquet")
    pq.write_table(pa.table({**columns, "y": labels}), path, row_group_size=100)
    return path


@pytest.mark.parametrize("streamed", [False, True])
def test_parquet_is_not_checked_against_the_model(tmp_path: Path, streamed: bool) -> None:
    """Two columns for a model of four inputs, NaN, labels outside the classes: no error."""
    path = _parquet(tmp_path, np.array([0, 1, 2, 9] * 100))
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(3, activation="softmax")])
    trainer = Trainer(model)
    trainer.compile("sgd", "sparse_categorical_crossentropy")
    old = limits.RESIDENT_BYTES_LIMIT
    limits.RESIDENT_BYTES_LIMIT = 0 if streamed else old
    try:
        history = trainer.fit(
            path,
            schema=Schema(["a", "b"], "y"),
            batch_size=16,
            epochs=2,
            initial_epoch=2,
            check="full",
            validation_data=path,
            verbose=0,
        )
    finally:
        limits.RESIDENT_BYTES_LIMIT = old
    assert history.history == {} and history.params["steps"] == 25
    assert int(model.optimizer.iterations.numpy()) == 0


def _backup(folder: str, epoch: int, weights: list[np.ndarray] | None = None) -> None:
    """A ``BackupAndRestore`` backup in ``folder`` made at the end of epoch ``epoch - 1``."""
    model = _keras()
    if weights is not None:
        model.set_weights(weights)
    os.makedirs(folder, exist_ok=True)  # the callback removes it at the end of a run
    model.save_weights(os.path.join(folder, "latest.weights.h5"))
    with open(os.path.join(folder, "training_metadata.json"), "w") as file:
        json.dump({"epoch": epoch, "batch": -1}, file)


def test_a_backup_of_the_last_epoch_runs_no_epoch_as_keras() -> None:
    """A run killed after its last backup: the restarted ``fit`` restores it and stops."""
    weights = [np.full(w.shape, 0.5, "float32") for w in _model().get_weights()]
    results = []
    for make in (_keras, _trainer):
        folder = tempfile.mkdtemp()
        _backup(folder, 2, weights)
        owner = make()
        hooks = Hooks()
        backup = keras.callbacks.BackupAndRestore(folder)
        history = owner.fit(WIDE, Y, epochs=2, callbacks=[backup, hooks], verbose=0)
        model = owner if isinstance(owner, keras.Model) else owner.model
        results.append((history, hooks, model.get_weights()))
        assert not os.path.exists(os.path.join(folder, "training_metadata.json"))
    (k_history, k_hooks, k_weights), (f_history, f_hooks, f_weights) = results
    _assert_empty_like_keras(k_history, f_history, k_hooks, f_hooks)
    for got, want in zip(f_weights, k_weights, strict=True):
        np.testing.assert_array_equal(got, want)  # both restored the backup's weights
        np.testing.assert_array_equal(got, 0.5)


def test_a_backup_of_an_earlier_epoch_still_runs_it() -> None:
    """``initial_epoch=epochs`` with a backup of epoch 1: Keras resumes there, so does fitpipe."""
    folder = tempfile.mkdtemp()
    _backup(folder, 1)
    trainer = _trainer()
    backup = keras.callbacks.BackupAndRestore(folder)
    history = trainer.fit(X, Y, epochs=2, initial_epoch=2, callbacks=[backup], verbose=0)
    assert history.epoch == [1]
    _backup(folder, 1)
    with pytest.raises(FitpipeValueError, match="does not fit the model"):
        trainer.fit(WIDE, Y, epochs=2, initial_epoch=2, callbacks=[backup], verbose=0)


def test_a_start_moved_by_on_train_begin_is_an_error() -> None:
    """No epoch was foreseen (the data unchecked, unread): moved before ``epochs``, it stops."""

    class Moves(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.model._initial_epoch = 1

    with pytest.raises(FitpipeError, match="start epoch"):
        _trainer().fit(X, Y, epochs=2, initial_epoch=2, callbacks=[Moves()], verbose=0)
