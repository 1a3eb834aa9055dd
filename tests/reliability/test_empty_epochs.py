"""An epoch, a validation or an evaluation that ran no step reports no metric.

A metric of an epoch that ran no step would be made up (the freshly reset metrics: 0.0), and
callbacks such as ``EarlyStopping`` and ``ModelCheckpoint`` act on it. ``fit`` warns as Keras
does ("Your input ran out of data; interrupting training") and stops after the last epoch that
ran; a validation that ran no step adds no ``val_`` metric (with a warning); ``evaluate`` with
no step is an error. Inputs: generators, ``tf.data`` (known and unknown cardinality),
``PyDataset`` and arrays (the last two are refused up front when empty).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeError, FitpipeWarning

RAN_OUT = r"ran out of data; interrupting training\. Epoch {} ran no step"


def batches(count: int, rows: int = 4) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    x = np.linspace(0.0, 1.0, rows * 4, dtype="float32").reshape(rows, 4)
    for _ in range(count):
        yield x, x[:, :1] * 2.0


def empty_dataset(known: bool) -> tf.data.Dataset:
    x = np.ones((0, 4), "float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1]))
    if not known:  # the cardinality is unknown until the data is read
        dataset = tf.data.Dataset.from_tensor_slices((np.ones((3, 4), "float32"),) * 2)
        dataset = dataset.map(lambda a, b: (a, b[:1])).filter(lambda a, b: False)
    return dataset.batch(2)


class Recorder(keras.callbacks.Callback):
    """Records the logs every ``on_epoch_end`` gets (what EarlyStopping would read)."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.logs.append(dict(logs or {}))


def weights(trainer: Any) -> list[np.ndarray]:
    return [np.array(w) for w in trainer.model.get_weights()]


@pytest.mark.parametrize(("count", "epochs"), [(1, 2), (3, 3), (2, 5)])
def test_a_finite_generator_stops_training_when_it_runs_out(
    count: int, epochs: int, rel: Any
) -> None:
    trainer, recorder = rel.dense_trainer(), Recorder()
    with pytest.warns(FitpipeWarning, match=RAN_OUT.format(2)):
        history = trainer.fit(batches(count), epochs=epochs, callbacks=[recorder], verbose=0)
    assert history.epoch == [0]
    assert len(history.history["loss"]) == 1 and history.history["loss"][0] > 0
    assert len(recorder.logs) == 1 and recorder.logs[0]["loss"] > 0


def test_steps_per_epoch_past_the_end_stops_at_the_first_empty_epoch(rel: Any) -> None:
    trainer = rel.dense_trainer()
    with pytest.warns(FitpipeWarning, match="ran out of data") as caught:
        history = trainer.fit(batches(3), steps_per_epoch=2, epochs=4, verbose=0)
    # Epoch 1: 2 steps; epoch 2: 1 step, then the input ends; epoch 3 runs no step: stop.
    assert history.epoch == [0, 1]
    assert all(loss > 0 for loss in history.history["loss"])
    assert any("Epoch 3 ran no step" in str(w.message) for w in caught)
    assert int(trainer.model.optimizer.iterations) == 3


class Hooks(keras.callbacks.Callback):
    """Records the epochs begun and ended, and the batches trained."""

    def __init__(self) -> None:
        super().__init__()
        self.begun: list[int] = []
        self.ended: list[int] = []
        self.batches = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.begun.append(epoch)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.ended.append(epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches += 1


def _reader(count: int) -> pa.RecordBatchReader:
    table = pa.table({"a": np.arange(4 * count, dtype="float32"), "t": np.ones(4 * count)})
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4))


@settings(max_examples=12, deadline=None)
@given(
    count=st.integers(1, 6),
    steps=st.none() | st.integers(1, 4),
    epochs=st.integers(1, 4),
    reader=st.booleans(),
)
def test_every_epoch_begun_is_ended_when_a_one_shot_input_runs_out(
    count: int, steps: int | None, epochs: int, reader: bool
) -> None:
    """An input used up exactly at an epoch's end begins no epoch it cannot run.

    fitpipe called ``on_epoch_begin`` for that epoch and, finding no batch, stopped with no
    ``on_epoch_end``: a callback's per-epoch set-up was left open (and the progress bar
    printed an "Epoch 3/3" header over nothing).
    """
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    hooks = Hooks()
    x = _reader(count) if reader else batches(count, rows=4)
    given_ = {"schema": fitpipe.Schema(["a"], "t"), "batch_size": 4} if reader else {}
    if not reader:
        x = ((b[0][:, :1], b[1]) for b in x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitpipeWarning)
        history = trainer.fit(
            x, epochs=epochs, steps_per_epoch=steps, callbacks=[hooks], verbose=0, **given_
        )
    ran = min(epochs, 1 if steps is None else -(-count // steps))
    assert hooks.begun == hooks.ended == history.epoch == list(range(ran))
    assert hooks.batches == min(count, count * epochs if steps is None else steps * epochs)


FIT_INPUTS: dict[str, Callable[[], Any]] = {
    "dataset-cardinality-0": lambda: empty_dataset(True),
    "dataset-cardinality-unknown": lambda: empty_dataset(False),
    "generator-consumed": lambda: _consumed(batches(2)),
    "generator-empty": lambda: batches(0),
}


@pytest.mark.parametrize("form", sorted(FIT_INPUTS))
@pytest.mark.parametrize("steps_per_epoch", [None, 2])
def test_fit_of_an_input_with_no_batch_is_an_error(
    form: str, steps_per_epoch: int | None, rel: Any
) -> None:
    """As for arrays of no rows (the README: "`fit` ... of no rows raise a `ValueError`")."""
    trainer, recorder = rel.dense_trainer(), Recorder()
    before = weights(trainer)
    with pytest.raises(FitpipeError) as caught:
        trainer.fit(
            FIT_INPUTS[form](),
            epochs=3,
            steps_per_epoch=steps_per_epoch,
            callbacks=[recorder],
            verbose=0,
        )
    rel.check_clear_error(
        caught.value,
        "fit",
        ("batch",),
        r"(ran no step: the input gave no batch|yields nothing).*at least one batch",
        ".",
    )
    assert recorder.logs == []
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(trainer), strict=True))


def test_early_stopping_and_checkpoints_never_see_a_made_up_loss(tmp_path: Any, rel: Any) -> None:
    trainer = rel.dense_trainer()
    path = str(tmp_path / "m-{epoch}-{loss:.4f}.keras")
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="loss", patience=0),
        keras.callbacks.ModelCheckpoint(path, monitor="loss"),
    ]
    with pytest.warns(FitpipeWarning, match=RAN_OUT.format(2)):
        history = trainer.fit(batches(2), epochs=4, callbacks=callbacks, verbose=0)
    assert history.epoch == [0]
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert len(saved) == 1 and saved[0].startswith("m-1-") and "0.0000" not in saved[0], saved


EVALUATE_INPUTS: dict[str, Callable[[], Any]] = {
    "dataset-cardinality-0": lambda: empty_dataset(True),
    "dataset-cardinality-unknown": lambda: empty_dataset(False),
    "generator-consumed": lambda: _consumed(batches(2)),
}


def _consumed(generator: Iterator[Any]) -> Iterator[Any]:
    for _ in generator:
        pass
    return generator


@pytest.mark.parametrize("form", sorted(EVALUATE_INPUTS))
@pytest.mark.parametrize("return_dict", [False, True])
def test_evaluate_with_no_step_is_an_error(form: str, return_dict: bool, rel: Any) -> None:
    trainer = rel.dense_trainer()
    with pytest.raises(FitpipeError) as caught:
        trainer.evaluate(EVALUATE_INPUTS[form](), verbose=0, return_dict=return_dict)
    rel.check_clear_error(
        caught.value,
        "evaluate",
        ("batch",),
        r"(ran no step|yields nothing).*at least one batch",
        ".",
    )


@pytest.mark.parametrize("form", ["dataset-cardinality-0", "dataset-cardinality-unknown"])
def test_empty_validation_data_adds_no_val_metric_and_training_goes_on(form: str, rel: Any) -> None:
    trainer, recorder = rel.dense_trainer(), Recorder()
    with pytest.warns(FitpipeWarning, match="validation after epoch [12] ran no step") as caught:
        history = trainer.fit(
            rel.x_data(),
            rel.y_data(),
            validation_data=EVALUATE_INPUTS[form](),
            epochs=2,
            callbacks=[recorder],
            verbose=0,
        )
    assert len(caught) == 2
    assert history.epoch == [0, 1] and set(history.history) == {"loss"}
    assert all(set(logs) == {"loss"} for logs in recorder.logs)


def test_a_validation_generator_consumed_after_the_first_epoch(rel: Any) -> None:
    trainer = rel.dense_trainer()
    with pytest.warns(FitpipeWarning, match="validation after epoch [23] ran no step"):
        history = trainer.fit(
            rel.x_data(), rel.y_data(), validation_data=batches(2), epochs=3, verbose=0
        )
    assert history.epoch == [0, 1, 2]
    assert len(history.history["val_loss"]) == 1  # only epoch 1 was validated on data
    assert history.history["val_loss"][0] > 0


class EmptyPyDataset(keras.utils.PyDataset):
    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: int) -> Any:
        raise IndexError(index)


EMPTY_UP_FRONT: dict[str, Callable[[], dict[str, Any]]] = {
    "arrays": lambda: {"x": np.ones((0, 4), "float32"), "y": np.ones((0, 1), "float32")},
    "pydataset": lambda: {"x": EmptyPyDataset()},
}


@pytest.mark.parametrize("form", sorted(EMPTY_UP_FRONT))
@pytest.mark.parametrize("where", ["fit", "evaluate", "validation_data"])
def test_empty_arrays_and_pydatasets_are_refused_up_front(form: str, where: str, rel: Any) -> None:
    trainer = rel.dense_trainer()
    data = EMPTY_UP_FRONT[form]()
    before = weights(trainer)
    with pytest.raises(FitpipeError, match=r"empty|length 0"):
        if where == "fit":
            trainer.fit(**data, epochs=2, verbose=0)
        elif where == "evaluate":
            trainer.evaluate(**data, verbose=0)
        else:
            validation = data["x"] if form == "pydataset" else (data["x"], data["y"])
            trainer.fit(rel.x_data(), rel.y_data(), validation_data=validation, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(trainer), strict=True))
