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
    BlockSpy,
    assert_same_results,
    classifier,
    classifier_data,
    fit_kwargs,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.columnar.convert import aligned_empty
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


#: Features of the rows whose chunks are checked for shared memory: 64 bytes a row, the
#: alignment TensorFlow's slice of the first axis needs to share its input's memory.
WIDE = 16


def _address(tensor: tf.Tensor) -> int:
    """Where a CPU tensor's memory starts (through DLPack, without a copy)."""

    class Capsule:
        def __init__(self, capsule: Any) -> None:
            self.capsule = capsule

        def __dlpack__(self, **_: Any) -> Any:
            return self.capsule

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    return int(np.from_dlpack(Capsule(tf.experimental.dlpack.to_dlpack(tensor))).ctypes.data)


@st.composite
def _orders(draw: st.DrawFn, rows: int) -> list[int]:
    """Row orders of one chunk: consecutive runs, and orders that are nearly one."""
    kind = draw(st.sampled_from(["run", "shuffled", "ends kept", "gaps", "repeat", "down"]))
    size = draw(st.integers(0 if kind == "run" else 2, 12))
    start = draw(st.integers(0, rows - 2 * size))
    run = list(range(start, start + size))
    if kind == "shuffled":
        return draw(st.permutations(run))
    if kind == "ends kept" and size >= 4:  # first and last in place, the middle mixed
        return [run[0], *draw(st.permutations(run[1:-1])), run[-1]]
    if kind == "gaps":
        return list(range(start, start + 2 * size, 2))
    if kind == "repeat":  # the same first and last row and length, a row twice
        return [run[0], run[0], *run[2:]]
    return run[::-1] if kind == "down" else run


@settings(max_examples=60, deadline=None)
@given(data=st.data(), weighted=st.booleans(), wide=st.booleans())
def test_a_chunk_of_consecutive_rows_is_cut_from_the_held_memory(
    data: st.DataObject, weighted: bool, wide: bool
) -> None:
    """Consecutive rows (an unshuffled pass, a block read in order) are sliced, not gathered.

    Any other order is gathered; either way the chunk is the rows of the order, and its
    batches those rows with class weights applied. Slicing shares the held memory where rows
    are 64-byte aligned (``wide``; rows of 12 bytes are copied by the slice, and only their
    values checked).
    """
    rows, features = 40, WIDE if wide else FEATURES
    x = aligned_empty((rows, features), np.float32)
    x[:] = np.arange(rows * features).reshape(rows, features)
    y = (np.arange(rows) % 3).astype("int32")
    order = data.draw(_orders(rows))
    with tf.device("/CPU:0"):
        leaves = (tf.Variable(x), tf.Variable(y))
    table = tf.constant([0.5, 2.0, 1.5]) if weighted else None
    held = ResidentRows(leaves, (None, None), rows, 1, False, 0, table)
    arguments = (held.loop_arguments(0)[0], tf.constant(order, tf.int32), tf.constant(1, tf.int64))
    chunks = held.chunk_functions()
    assert chunks is not None
    chunk = chunks.gather(arguments, tf.constant(0), tf.constant(len(order)))
    assert len(chunk) == 2  # the held leaves' rows; class weights come with each batch
    np.testing.assert_array_equal(chunk[0].numpy(), x[order])
    np.testing.assert_array_equal(chunk[1].numpy(), y[order])
    for i, row in enumerate(order):  # batches of one row: the gather of that row
        want = held.gather(tf.constant([row], tf.int32))
        got = chunks.pick(chunk, arguments, tf.constant(i))
        assert len(got) == len(want) == (3 if weighted else 2)
        for leaf, expected in zip(got, want, strict=True):
            np.testing.assert_array_equal(leaf.numpy(), expected.numpy())
    in_order = bool(order) and order == list(range(order[0], order[0] + len(order)))
    assert bool(row_chunks.consecutive(tf.constant(order, tf.int32))) == in_order
    if order and wide:
        shared = _address(chunk[0]) == _address(arguments[0][0][0]) + order[0] * WIDE * 4
        assert shared == in_order, order


class _Routes:
    """Records, per chunk a compiled loop takes, whether its rows were consecutive (cut)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[bool] = []
        original = row_chunks.consecutive

        def recorded(rows: tf.Tensor) -> tf.Tensor:
            found = original(rows)
            note = tf.numpy_function(self._note, [found], tf.bool, stateful=True)
            return tf.reshape(note, [])

        monkeypatch.setattr(row_chunks, "consecutive", recorded)

    def _note(self, found: np.ndarray) -> np.ndarray:
        self.seen.append(bool(found))
        return found

    def taken(self) -> set[bool]:
        """The routes taken since the last call: True cut, False gathered."""
        seen, self.seen = set(self.seen), []
        return seen


@pytest.mark.parametrize("over_limit", [False, True])
def test_a_fit_cuts_the_chunks_it_reads_in_order_and_gathers_the_shuffled_ones(
    monkeypatch: pytest.MonkeyPatch, over_limit: bool
) -> None:
    """Rows held: a shuffled epoch is gathered, ``evaluate`` and ``predict`` (in order) cut.

    Arrays over the in-memory limit: their blocks are gathered in the pass's order by
    NumPy, so a shuffled epoch is cut from them too.
    """
    if over_limit:
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    monkeypatch.setattr(row_chunks, "CHUNK_BYTES", 4 * 8 * ROW_BYTES)  # chunks of 4 batches
    routes = _Routes(monkeypatch)
    x, y = classifier_data(96)
    with BlockSpy() as spy:
        trainer = _trainer(5, jit=False)
        trainer.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=True)
        assert routes.taken() == {over_limit}
        trainer.evaluate(x, y, batch_size=8, verbose=0)
        assert routes.taken() == {True}
        trainer.predict(x, batch_size=8, verbose=0)
        assert routes.taken() == {True}
    assert (spy.made > 0) == over_limit


def test_a_generator_s_batches_are_cut_from_its_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = _Routes(monkeypatch)
    x, y = classifier_data(64)

    def batches() -> Any:
        while True:
            for i in range(0, 64, 8):
                yield x[i : i + 8], y[i : i + 8]

    with BlockSpy() as spy:
        _trainer(4, jit=False).fit(batches(), steps_per_epoch=8, epochs=2, verbose=0)
    assert spy.made > 0
    assert routes.taken() == {True}
