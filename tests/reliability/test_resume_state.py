"""Stopped and started again with ``BackupAndRestore``: the History and weights of one run.

A run is stopped by an exception after the callbacks of a drawn batch (after that batch's
backup, if it makes one, and before fitpipe confirms its position), then started again, with
the same seed, on a new model. Drawn: the batch, ``save_freq`` (``"epoch"`` included), the
input's form (arrays shuffled by ``fit``, a generator, a ``tf.data`` dataset reshuffled each
iteration, Parquet shuffled by ``fit``) and the model (plain; a seeded ``Dropout``; an
unseeded ``GaussianNoise`` and ``Dropout`` under ``keras.utils.set_random_seed``; a seeded
``RandomFlip``), each with a compiled metric and a validation set. The resumed run ends with
the uninterrupted run's weights, and its History (every key) holds the uninterrupted run's
values from the epoch of the last backup on (``History.epoch`` those epochs).

What the backup used to leave out: the random layers' seed-generator state (the resumed run
drew the masks of the run's start again), the metrics' state (a resumed epoch's loss was
averaged over the batches after the restart; an epoch whose last batch was backed up ended
with no logs at all), and the pass a reshuffled ``tf.data`` dataset was reading (the resumed
epoch skipped batches of the first pass's order).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fitpipe

ROWS, FEATURES, BATCH, EPOCHS = 24, 4, 8, 3
STEPS = ROWS // BATCH  # batches per epoch
FORMS = ("arrays", "generator", "tfdata", "parquet")
MODELS = ("plain", "dropout", "unseeded", "flip")
SEED = 7


class Stop(Exception):
    """Stands for the kill."""


class StopAfter(keras.callbacks.Callback):
    """Raises :class:`Stop` after the callbacks of the run's ``at``-th batch (1-based)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if self.seen == self.at:
            raise Stop


def _data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS + 8, FEATURES)).astype("float32")
    y = (x @ np.arange(1, FEATURES + 1, dtype="float32")[:, None]).astype("float32")
    return x[:ROWS], y[:ROWS], x[ROWS:], y[ROWS:]


X, Y, X_VAL, Y_VAL = _data()


@pytest.fixture(scope="module")
def parquet_folder() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as root:
        folder = os.path.join(root, "data")
        os.makedirs(folder)
        table = pa.table({"f": pa.array(list(X), pa.list_(pa.float32(), FEATURES)), "y": Y[:, 0]})
        for part in range(3):  # 3 files of 2 row groups: shuffled by row group and in a buffer
            path = os.path.join(folder, f"part-{part}.parquet")
            pq.write_table(table.slice(part * 8, 8), path, row_group_size=4)
        yield folder


def _inputs(form: str, folder: str) -> dict[str, Any]:
    if form == "arrays":
        return {"x": X, "y": Y, "batch_size": BATCH, "shuffle": True}
    if form == "generator":

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # every epoch's, then ends
            for _ in range(EPOCHS):
                for start in range(0, ROWS, BATCH):
                    yield X[start : start + BATCH], Y[start : start + BATCH]

        return {"x": batches(), "steps_per_epoch": STEPS}
    if form == "tfdata":  # reshuffled each iteration (the default), seeded
        dataset = tf.data.Dataset.from_tensor_slices((X, Y)).shuffle(ROWS, seed=3).batch(BATCH)
        return {"x": dataset}
    schema = fitpipe.Schema(features="f", targets="y")
    return {"x": folder, "schema": schema, "batch_size": BATCH, "shuffle": True}


def _model(kind: str) -> keras.Model:
    layers: list[keras.layers.Layer] = [keras.Input((FEATURES,))]
    if kind == "flip":
        layers += [
            keras.layers.Reshape((2, 2, 1)),
            keras.layers.RandomFlip(seed=2),
            keras.layers.Flatten(),
        ]
    layers.append(keras.layers.Dense(8, activation="relu"))
    if kind == "dropout":
        layers.append(keras.layers.Dropout(0.3, seed=5))
    if kind == "unseeded":  # seeds drawn from Python's generator: set_random_seed fixes them
        layers += [keras.layers.GaussianNoise(0.3), keras.layers.Dropout(0.3)]
    return keras.Sequential([*layers, keras.layers.Dense(1)])


def _fit(
    form: str, kind: str, folder: str, callbacks: list[keras.callbacks.Callback]
) -> tuple[keras.Model, keras.callbacks.History | None]:
    keras.utils.set_random_seed(SEED)
    model = _model(kind)
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", metrics=["mae"])
    try:
        history = trainer.fit(
            epochs=EPOCHS,
            validation_data=(X_VAL, Y_VAL),
            callbacks=callbacks,
            verbose=0,
            **_inputs(form, folder),
        )
    except Stop:
        return model, None
    return model, history


_UNINTERRUPTED: dict[tuple[str, str], tuple[list[np.ndarray], dict[str, list[float]]]] = {}


def _uninterrupted(form: str, kind: str, folder: str) -> tuple[list[np.ndarray], Any]:
    key = (form, kind)
    if key not in _UNINTERRUPTED:
        model, history = _fit(form, kind, folder, [])
        assert history is not None and history.epoch == list(range(EPOCHS))
        _UNINTERRUPTED[key] = (model.get_weights(), history.history)
    return _UNINTERRUPTED[key]


def _first_epoch(save_freq: int | str, stopped_after: int) -> int:
    """The epoch the restarted run starts at: the one of the last backup before the stop."""
    if save_freq == "epoch":  # the stop comes before the end of an epoch at its last batch
        return (stopped_after - 1) // STEPS
    last_backup = stopped_after // int(save_freq) * int(save_freq)  # 1-based; 0: none
    return 0 if last_backup == 0 else (last_backup - 1) // STEPS


def _check_resumed(form: str, kind: str, save_freq: int | str, at: int, folder: str) -> None:
    weights, full = _uninterrupted(form, kind, folder)
    backup = tempfile.mkdtemp(dir=os.path.dirname(folder))
    _fit(form, kind, folder, [keras.callbacks.BackupAndRestore(backup, save_freq), StopAfter(at)])
    model, history = _fit(form, kind, folder, [keras.callbacks.BackupAndRestore(backup, save_freq)])
    assert history is not None
    first = _first_epoch(save_freq, at)
    assert history.epoch == list(range(first, EPOCHS))
    assert sorted(history.history) == sorted(full)
    for name, values in history.history.items():
        np.testing.assert_allclose(values, full[name][first:], rtol=1e-5, err_msg=name)
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    form=st.sampled_from(FORMS),
    kind=st.sampled_from(MODELS),
    save_freq=st.one_of(st.integers(1, STEPS + 1), st.just("epoch")),
    at=st.integers(1, EPOCHS * STEPS - 1),
)
@example(form="arrays", kind="dropout", save_freq=2, at=7)  # the seeded Dropout's masks
@example(form="tfdata", kind="plain", save_freq=2, at=7)  # the pass reshuffled
@example(form="arrays", kind="plain", save_freq=STEPS, at=STEPS)  # the epoch's last batch
@example(form="generator", kind="unseeded", save_freq=2, at=5)  # a partial epoch's logs
@example(form="parquet", kind="flip", save_freq="epoch", at=STEPS + 2)
def test_a_resumed_run_ends_as_an_uninterrupted_one(
    form: str, kind: str, save_freq: int | str, at: int, parquet_folder: str
) -> None:
    _check_resumed(form, kind, save_freq, at, parquet_folder)


def test_an_epoch_whose_last_batch_was_backed_up_ends_with_its_logs(
    parquet_folder: str,
) -> None:
    """Keras' callbacks see the epoch's end once, with its whole logs (History aligned)."""
    seen: list[tuple[int, list[str]]] = []

    class Ends(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seen.append((epoch, sorted(logs or {})))

    backup = tempfile.mkdtemp(dir=os.path.dirname(parquet_folder))
    stop = [keras.callbacks.BackupAndRestore(backup, save_freq=STEPS), StopAfter(STEPS)]
    _fit("arrays", "plain", parquet_folder, stop)
    seen.clear()
    resumed = [keras.callbacks.BackupAndRestore(backup, save_freq=STEPS), Ends()]
    _, history = _fit("arrays", "plain", parquet_folder, resumed)
    assert history is not None and history.epoch == [0, 1, 2]
    keys = ["loss", "mae", "val_loss", "val_mae"]
    assert seen == [(0, keys), (1, keys), (2, keys)]
    assert all(len(values) == EPOCHS for values in history.history.values())
