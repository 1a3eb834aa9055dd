"""Batches from Python (generators, ``RecordBatchReader``) taken in blocks, as Parquet is.

A source read once (:func:`fitpipe.adapters.generators.one_pass_source`) hands the trainer
its batches joined, a group of equal batches at a time (``RowBlocks.batched``); the trainer
slices them again inside its compiled loop. That path must train exactly what the
``tf.data`` path it replaces trains: the same batches (short ones and empty ones included),
the same History, weights, evaluation, predictions and warnings, and it must take from the
generator no batch that no step trains on (a later ``fit`` goes on from there).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pytest
from block_paths import LEAF_FORMS, BlockSpy, as_leaf_form, assert_same_results, reading_threads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits

FEATURES = 3


def _trainer() -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3)])
    trainer = fitpipe.Trainer(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer.compile(optimizer="sgd", loss=loss, metrics=["sparse_categorical_accuracy"])
    return trainer


class _Batches:
    """Yields batches of the given sizes (forever when ``repeat``), numbering their rows.

    ``taken`` counts the batches the trainer's reading took from it.
    """

    def __init__(self, sizes: list[int], weights: bool, repeat: bool, form: str = "numpy") -> None:
        self.sizes, self.weights, self.repeat, self.form = sizes, weights, repeat, form
        self.taken = 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        start = 0
        while True:
            for size in self.sizes:
                ids = np.arange(start, start + size)
                start += size
                x = np.stack([np.sin(ids), np.cos(ids), ids % 7 / 7.0], 1).astype("float32")
                y = (ids % 3).astype("int32")
                batch = (x, y, (0.5 + ids % 2).astype("float32")) if self.weights else (x, y)
                self.taken += 1
                yield as_leaf_form(batch, self.form, self.taken)
            if not self.repeat:
                return


def _run(
    blocks: bool, sizes: list[int], weights: bool, fit: dict[str, Any], form: str = "numpy"
) -> tuple[Any, ...]:
    repeat = fit["steps_per_epoch"] is not None
    with (
        pytest.MonkeyPatch.context() as patch,
        warnings.catch_warnings(record=True) as seen,
        BlockSpy() as spy,
    ):
        warnings.simplefilter("always")
        patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        trainer, source = _trainer(), _Batches(sizes, weights, repeat, form)
        fit = dict(fit)
        steps = fit.pop("validation_steps")
        checks = _Batches(sizes, weights, steps is not None, form)  # a validation generator
        history = trainer.fit(
            iter(source), verbose=0, validation_data=iter(checks), validation_steps=steps, **fit
        )
        taken = source.taken
        scores = trainer.evaluate(iter(_Batches(sizes, weights, False, form)), verbose=0)
        predicted = trainer.predict(iter(_Batches(sizes, False, False, form)), verbose=0)
    weights_after = [w.numpy() for w in trainer.model.weights]
    said = [str(w.message) for w in seen]
    return history.history, scores, predicted, weights_after, taken, said, spy.made


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 2, 5, 8, 8, 8, 8]), min_size=2, max_size=30),
    weights=st.booleans(),
    steps_per_epoch=st.sampled_from([None, 1, 4, 11]),
    epochs=st.integers(1, 3),
    class_weight=st.sampled_from([None, {0: 1.0, 1: 2.5, 2: 0.5}]),
    validation_steps=st.sampled_from([None, 2]),
    form=st.sampled_from(LEAF_FORMS),
)
def test_a_generator_in_blocks_trains_what_the_tf_data_path_trains(
    sizes: list[int],
    weights: bool,
    steps_per_epoch: int | None,
    epochs: int,
    class_weight: dict[int, float] | None,
    validation_steps: int | None,
    form: str,
) -> None:
    # Whatever the batches' leaves are: NumPy arrays, tensors (Keras' own generator tests
    # yield them; joining them into blocks raised at the first block) or some of each.
    if not any(sizes[:2]):
        sizes = [3, *sizes]  # the first batches give the signature: one holds rows
    fit = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "class_weight": class_weight}
    fit["validation_steps"] = validation_steps  # each validation restarts its reading
    plain = _run(False, sizes, weights, fit, form)
    blocked = _run(True, sizes, weights, fit, form)
    assert plain[6] == 0 and blocked[6] >= 4, "the block path was not (or always) taken"
    assert blocked[5] == plain[5]  # the same warnings (an input that ran out, ...)
    if steps_per_epoch is not None:
        assert blocked[4] == steps_per_epoch * epochs  # none read for a step not run
    assert blocked[4] == plain[4]  # class weights too: tf.data runs no weighting ahead
    assert_same_results(blocked, plain)


def test_fit_twice_on_one_generator_goes_on_where_the_first_stopped() -> None:
    source = _Batches([4], weights=False, repeat=True)
    stream, trainer = iter(source), _trainer()
    with BlockSpy() as spy:
        trainer.fit(stream, steps_per_epoch=3, epochs=2, verbose=0)
        assert source.taken == 6
        trainer.fit(stream, steps_per_epoch=5, epochs=1, verbose=0)
    assert source.taken == 11 and spy.made == 2
    assert int(next(stream)[1][0]) == 11 * 4 % 3  # the next batch is batch 11 (rows 44-47)


@pytest.mark.parametrize("blocks", [True, False])
@pytest.mark.parametrize("class_weight", [None, {0: 1.0, 1: 3.0}])
def test_fit_takes_no_batch_it_does_not_train_on_either_path(
    blocks: bool, class_weight: dict[int, float] | None
) -> None:
    """Nor do class weights: on the tf.data path, tf.data once ran their ``map`` ahead."""
    source = _Batches([4, 2], weights=False, repeat=True)
    stream, trainer = iter(source), _trainer()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        for steps, epochs, total in [(1, 1, 1), (3, 2, 7), (2, 3, 13)]:
            trainer.fit(
                stream, steps_per_epoch=steps, epochs=epochs, class_weight=class_weight, verbose=0
            )
            assert source.taken == total
    assert len(next(stream)[0]) == 2  # the next batch is batch 13 (sizes 4, 2, 4, ...)


@pytest.mark.parametrize("error", [ValueError("bad batch 5"), KeyboardInterrupt()])
def test_an_error_in_the_generator_reaches_fit_as_raised_and_no_thread_is_left(
    error: BaseException,
) -> None:
    def failing() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(50):
            if i == 5:
                raise error
            yield np.full((4, FEATURES), i, "float32"), np.zeros(4, "int32")

    names = ("fitpipe-blocks", "fitpipe-generator")
    before = set(reading_threads(*names))  # other tests' pipelines may still hold theirs
    with pytest.raises(type(error), match=str(error) or None):
        _trainer().fit(failing(), epochs=1, verbose=0)
    deadline = time.monotonic() + 5
    while set(reading_threads(*names)) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(reading_threads(*names)) - before


def test_a_record_batch_reader_in_blocks_trains_what_the_tf_data_path_trains() -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"a": rng.random(203), "b": rng.random(203), "y": rng.integers(0, 3, 203)})
    schema = fitpipe.Schema(features=["a", "b"], targets="y")
    results = []
    for blocks in (False, True):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        trainer = fitpipe.Trainer(model)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        trainer.compile(optimizer="sgd", loss=loss)
        with pytest.MonkeyPatch.context() as patch, BlockSpy() as spy:
            patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
            reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(37))
            history = trainer.fit(reader, schema=schema, batch_size=16, verbose=0)
        assert spy.made == (1 if blocks else 0)
        results.append((history.history["loss"], [w.numpy() for w in model.weights]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    for got, want in zip(results[1][1], results[0][1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
