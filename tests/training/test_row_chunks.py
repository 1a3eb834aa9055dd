"""Rows held in memory gathered a chunk of batches at a time (``row_chunks.CHUNK_BYTES``).

The compiled loop over rows in memory gathers the rows of several batches at once and slices
each batch from them (:func:`fitpipe.training.step_loops.chunked_loop`); it must train
exactly what a gather per batch trains: the same batches in the same order, whatever the
number of rows, the batch size, the chunk size (several batches, a partial last chunk, a
call ending inside a chunk), the shuffle, the class and sample weights, the validation
split and inputs of several leaves.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from block_paths import (
    FEATURES,
    TWIN_SETTINGS,
    assert_same_results,
    classifier,
    classifier_data,
    fit_kwargs,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.pipeline import ResidentRows, row_chunks
from fitpipe.training import steps

#: Bytes of one row as held: 3 float32 features and an int32 label.
ROW_BYTES = 4 * FEATURES + 4


def _trainer(steps_per_execution: int, named: bool = False, jit: Any = "auto") -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    model = classifier(named)
    trainer = fitpipe.Trainer(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer.compile(
        optimizer="sgd",
        loss=loss,
        metrics=["sparse_categorical_accuracy"],
        steps_per_execution=steps_per_execution,
        jit_compile=jit,
    )
    return trainer


class _LoopSpy:
    """Counts the chunked loops built (the chunked path taken)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built = 0
        original = steps.chunked_loop

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.built += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(steps, "chunked_loop", counting)


def _run(
    rows: int, batch: int, spe: int, kwargs: dict[str, Any], named: bool = False, jit: Any = "auto"
) -> tuple[Any, ...]:
    x, y = classifier_data(rows, named)  # named: two leaves, the chunk's row is both
    trainer = _trainer(spe, named, jit)
    history = trainer.fit(x, y, batch_size=batch, verbose=0, **kwargs)
    evaluated = trainer.evaluate(x, y, batch_size=batch, verbose=0)
    predicted = trainer.predict(x, batch_size=batch, verbose=0)
    return history.history, evaluated, predicted, trainer.model.get_weights()


@TWIN_SETTINGS
@given(
    rows=st.integers(1, 90),
    batch=st.integers(1, 16),
    per_chunk=st.integers(1, 4),
    partial=st.booleans(),
    spe=st.sampled_from([1, 2, 5]),
    shuffle=st.sampled_from([True, False, "batch"]),
    weights=st.sampled_from(["none", "class", "sample"]),
    split=st.sampled_from([0.0, 0.25]),
    epochs=st.integers(1, 2),
    named=st.booleans(),
)
def test_chunks_train_what_a_gather_per_batch_trains(
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    batch: int,
    per_chunk: int,
    partial: bool,
    spe: int,
    shuffle: Any,
    weights: str,
    split: float,
    epochs: int,
    named: bool,
) -> None:
    kwargs = fit_kwargs(rows, shuffle, weights, split, epochs)
    # ``per_chunk`` batches a chunk (a sample weight adds 4 bytes a row: fewer, never more)
    chunk_bytes = per_chunk * batch * ROW_BYTES + (batch * ROW_BYTES // 2 if partial else 0)
    with monkeypatch.context() as patch:
        patch.setattr(row_chunks, "CHUNK_BYTES", chunk_bytes)
        spy = _LoopSpy(patch)
        chunked = _run(rows, batch, spe, kwargs, named)
        assert spy.built >= 1  # the train loop, and evaluate's
    with monkeypatch.context() as patch:
        patch.setattr(ResidentRows, "chunk_functions", lambda self: None)
        spy = _LoopSpy(patch)
        plain = _run(rows, batch, spe, kwargs, named)
        assert spy.built == 0
    assert_same_results(chunked, plain)


def test_chunks_of_an_xla_step_with_a_shorter_last_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"epochs": 2, "shuffle": True, "class_weight": {0: 0.5, 1: 2.0, 2: 1.5}}
    with monkeypatch.context() as patch:  # chunks of 2 batches; 50 rows: a last batch of 2
        patch.setattr(row_chunks, "CHUNK_BYTES", 2 * 8 * ROW_BYTES)
        spy = _LoopSpy(patch)
        chunked = _run(50, 8, 3, kwargs, jit=True)
        assert spy.built >= 1
    with monkeypatch.context() as patch:
        patch.setattr(ResidentRows, "chunk_functions", lambda self: None)
        plain = _run(50, 8, 3, kwargs, jit=True)
    assert_same_results(chunked, plain)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 50),
    batch=st.integers(1, 12),
    chunk_bytes=st.integers(1, 600),
    shuffle=st.sampled_from([True, False, "batch"]),
    epoch=st.integers(0, 3),
)
def test_a_chunk_sliced_is_each_of_its_batches(
    rows: int, batch: int, chunk_bytes: int, shuffle: Any, epoch: int
) -> None:
    x, y = classifier_data(rows)
    with tf.device("/CPU:0"):
        leaves = (tf.Variable(x), tf.Variable(y))
    held = ResidentRows(leaves, (None, None), rows, batch, shuffle, 7)
    arguments = held.loop_arguments(epoch)
    chunks = held.chunk_functions()
    assert chunks is not None
    per_chunk = max(chunk_bytes // (batch * ROW_BYTES), 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(row_chunks, "CHUNK_BYTES", chunk_bytes)
        assert int(chunks.batches(arguments)) == per_chunk
    seen = []
    for first in range(0, held.num_batches, per_chunk):
        count = min(per_chunk, held.num_batches - first)
        chunk = chunks.gather(arguments, tf.constant(first), tf.constant(count))
        for i in range(count):
            got = chunks.pick(chunk, arguments, tf.constant(i))
            want = held.batch(arguments, first + i)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g.numpy(), w.numpy())
            seen.append(got[1].numpy())
    labels = np.concatenate(seen) if seen else np.zeros([0], "int32")
    assert sorted(labels.tolist()) == sorted(y.tolist())  # every row once


def test_sparse_or_ragged_rows_are_sliced_a_batch_at_a_time() -> None:
    ragged = tf.ragged.constant([[1.0], [2.0, 3.0]])
    held = ResidentRows((ragged,), None, 2, 1, False, 0)
    assert held.chunk_functions() is None


def test_rows_of_strings_are_chunked_as_64_bytes_an_element() -> None:
    words = np.array([f"w{i}" for i in range(10)])
    with tf.device("/CPU:0"):
        held = ResidentRows((tf.Variable(words),), (None,), 10, 2, True, 3)
    arguments = held.loop_arguments(0)
    chunks = held.chunk_functions()
    assert chunks is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(row_chunks, "CHUNK_BYTES", 4 * row_chunks.UNSIZED_BYTES)
        assert int(chunks.batches(arguments)) == 2
    chunk = chunks.gather(arguments, tf.constant(2), tf.constant(2))
    for i in range(2):
        got = chunks.pick(chunk, arguments, tf.constant(i))[0].numpy()
        np.testing.assert_array_equal(got, held.batch(arguments, 2 + i)[0].numpy())
