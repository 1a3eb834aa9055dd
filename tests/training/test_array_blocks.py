"""NumPy arrays too large to hold, streamed to the compiled loop in blocks (``numpy_rows``).

Arrays over ``limits.RESIDENT_BYTES_LIMIT`` are never copied whole. Their batches used to
reach the step one ``numpy_function`` at a time through ``tf.data`` (half the speed of rows
held in memory); a trainer now takes the rows of many batches at once (``ArrayBlocks``,
gathered with NumPy on its reading thread) and cuts the batches inside its compiled loop.
It must train exactly what the ``tf.data`` path trains, whatever the rows, batch size,
block size, shuffle, weights, validation split, leaves and steps per call, and what Keras
trains on the same arrays.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
import pytest
from block_paths import (
    FEATURES,
    FIT_ARGUMENTS,
    TWIN_SETTINGS,
    BlockSpy,
    assert_same_results,
    classifier,
    classifier_data,
    fit_kwargs,
    reading_threads,
)
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.errors import DataCheckError, DataCheckWarning, FitpipeValueError
from fitpipe.pipeline import numpy_rows


def _compiled(model: keras.Model, spe: int) -> None:
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
        steps_per_execution=spe,
    )


def _trainer(spe: int, named: bool = False) -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    trainer = fitpipe.Trainer(classifier(named))
    _compiled(trainer.model, spe)
    return trainer


def _run(
    rows: int, batch: int, spe: int, kwargs: dict[str, Any], named: bool = False
) -> tuple[Any, ...]:
    x, y = classifier_data(rows, named)
    trainer = _trainer(spe, named)
    with warnings.catch_warnings(record=True) as caught:  # e.g. an input that ran out
        warnings.simplefilter("always")
        history = trainer.fit(x, y, batch_size=batch, verbose=0, **kwargs)
    evaluated = trainer.evaluate(x, y, batch_size=batch, verbose=0)
    predicted = trainer.predict(x, batch_size=batch, verbose=0)
    said = [str(w.message) for w in caught]
    return history.history, evaluated, predicted, trainer.model.get_weights(), said


def _both_paths(
    monkeypatch: pytest.MonkeyPatch, run: Any, block_bytes: int, trains: bool = True
) -> tuple[Any, Any]:
    """``run()`` streamed in blocks, then through ``tf.data``; each path checked taken.

    ``trains``: ``run`` reaches the first step (the blocks are then read).
    """
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # every array streamed
    monkeypatch.setattr(numpy_rows, "BLOCK_BYTES", block_bytes)
    with BlockSpy() as spy:
        blocked = run()
    assert spy.made >= trains
    monkeypatch.setattr(limits, "STREAM_IN_BLOCKS", False)
    with BlockSpy() as spy:
        plain = run()
    assert spy.made == 0
    return blocked, plain


@TWIN_SETTINGS
@given(
    rows=st.integers(1, 90),
    batch=st.integers(1, 16),
    per_block=st.integers(1, 4),
    spe=st.sampled_from([1, 2, 5]),
    **FIT_ARGUMENTS,
    named=st.booleans(),
    steps=st.sampled_from([None, None, 1, 2, 3]),
)
def test_blocks_train_what_the_tf_data_path_trains(
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    batch: int,
    per_block: int,
    spe: int,
    shuffle: Any,
    weights: str,
    split: float,
    epochs: int,
    named: bool,
    steps: int | None,
) -> None:
    kwargs = fit_kwargs(rows, shuffle, weights, split, epochs)
    split = kwargs["validation_split"]
    if steps is not None and steps * batch <= rows * (1 - split) - batch:  # epochs end mid-pass
        kwargs["steps_per_epoch"] = steps
    row_bytes = 4 * FEATURES + 4 + (4 if weights == "sample" else 0)
    with monkeypatch.context() as patch:
        blocked, plain = _both_paths(
            patch, lambda: _run(rows, batch, spe, kwargs, named), per_block * batch * row_bytes
        )
    assert_same_results(blocked, plain)
    assert blocked[4] == plain[4]  # the same warnings
    assert not reading_threads()


@pytest.mark.parametrize("block_batches", [1, 3, 100])
def test_blocks_train_what_keras_trains(
    monkeypatch: pytest.MonkeyPatch, block_batches: int
) -> None:
    rows, batch = 70, 8
    x, y = classifier_data(rows)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    monkeypatch.setattr(numpy_rows, "BLOCK_BYTES", block_batches * batch * (4 * FEATURES + 4))
    keras.utils.set_random_seed(0)
    oracle = classifier(False)
    _compiled(oracle, 1)
    trainer = _trainer(1)
    trainer.model.set_weights(oracle.get_weights())
    with BlockSpy() as spy:
        got = trainer.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
        evaluated = trainer.evaluate(x, y, batch_size=batch, verbose=0)
    assert spy.made >= 3  # two epochs and evaluate
    want = oracle.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    for key in want.history:
        np.testing.assert_allclose(got.history[key], want.history[key], rtol=1e-5, err_msg=key)
    want_evaluated = oracle.evaluate(x, y, batch_size=batch, verbose=0)
    np.testing.assert_allclose(evaluated, want_evaluated, rtol=1e-5)
    for mine, theirs in zip(trainer.model.get_weights(), oracle.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("check", ["warn", "error"])
def test_a_nan_in_streamed_arrays_is_reported_once_by_the_scan(
    monkeypatch: pytest.MonkeyPatch, check: Any
) -> None:
    # Arrays over the limit are in memory and scanned whole before training, as held rows
    # are: one warning names the row. (Through tf.data, the input of a distributed fit,
    # each batch is also checked as it passes: a second warning names the batch.)
    def run() -> list[str]:
        x, y = classifier_data(40)
        x[21, 1] = np.nan
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _trainer(1).fit(x, y, batch_size=4, shuffle=False, verbose=0, check=check)
            except DataCheckError as err:
                return [str(err)]
        return [str(w.message) for w in caught if issubclass(w.category, DataCheckWarning)]

    blocked, plain = _both_paths(monkeypatch, run, 2 * 4 * (4 * FEATURES + 4), check == "warn")
    assert len(blocked) == 1
    assert "row 21" in blocked[0]  # the pre-flight scan, before training
    assert blocked == plain[:1]


def test_labels_out_of_range_in_streamed_arrays_stop_at_their_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The label rules still run on each block's batches, as on each batch through tf.data.
    def run() -> str:
        x, y = classifier_data(40)
        y[30] = 7  # 3 classes
        with pytest.raises(FitpipeValueError) as caught:
            _trainer(1).fit(x, y, batch_size=4, shuffle=False, verbose=0)
        return str(caught.value)

    blocked, plain = _both_paths(monkeypatch, run, 3 * 4 * (4 * FEATURES + 4))
    assert "the label 7 in batch index 7" in blocked
    assert blocked == plain


def test_only_numpy_numbers_are_streamed_in_blocks() -> None:
    x, y = classifier_data(20)
    assert numpy_rows.ArrayBlocks.takes((x, y))
    assert numpy_rows.ArrayBlocks.takes(({"a": x, "b": x > 0}, y))
    assert not numpy_rows.ArrayBlocks.takes((np.array([["a"]] * 20), y))
    assert not numpy_rows.ArrayBlocks.takes((x, y.astype(object)))


class _Stop(keras.callbacks.Callback):
    """Raises at the ``at``-th train batch of the run (counted over epochs)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt("stop")


@pytest.mark.parametrize("shuffle", [True, "batch"])
def test_a_run_resumed_mid_epoch_reads_the_same_rows_on_both_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, shuffle: Any
) -> None:
    x, y = classifier_data(45)
    runs = iter(range(2))

    def run() -> tuple[Any, ...]:
        backup = str(tmp_path / f"backup{next(runs)}")
        kwargs = {"batch_size": 4, "epochs": 3, "shuffle": shuffle, "verbose": 0}
        trainer = _trainer(1)
        with pytest.raises(KeyboardInterrupt):  # in epoch 2, after a backup at batch 15
            trainer.fit(x, y, callbacks=[_backup(backup), _Stop(at=17)], **kwargs)
        history = trainer.fit(x, y, callbacks=[_backup(backup)], **kwargs)
        return history.history, [], [], trainer.model.get_weights()

    blocked, plain = _both_paths(monkeypatch, run, 3 * 4 * (4 * FEATURES + 4))
    assert len(blocked[0]["loss"]) == 2  # epochs 2 and 3 after the restart
    assert_same_results(blocked, plain)


def _backup(folder: str) -> keras.callbacks.BackupAndRestore:
    return keras.callbacks.BackupAndRestore(folder, save_freq=5)
