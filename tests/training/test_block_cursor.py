"""Streamed Parquet taken a block at a time: batches cut in the compiled loop, blocks read ahead.

The block path (``limits.STREAM_IN_BLOCKS``) must give exactly the batches of the ``tf.data``
path it replaces: the same rows in the same batches, every epoch, through ``fit`` (with
validation, shuffling, ``steps_per_epoch`` carrying the input over epochs), ``evaluate`` and
``predict``. The cutting of blocks into batches (:func:`segments`) and the tensors made of
the blocks (:func:`as_tensor`) are checked on their own over random shapes.
"""

from __future__ import annotations

import gc
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from block_paths import BlockSpy, assert_same_results, reading_threads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters import Reordered, RowBlocks
from fitpipe.adapters import parquet as parquet_module
from fitpipe.columnar import ALIGNMENT, aligned_empty, as_tensor
from fitpipe.training.block_cursor import BlockCursor, segments

DTYPES = ["float32", "float64", "int64", "int32", "uint8", "bool", "float16"]


@st.composite
def blocks_and_batch(draw: st.DrawFn) -> tuple[list[Any], np.ndarray, int]:
    """Blocks ``({"a": rows x 2, "b": rows}, rows)`` numbering their rows, and a batch size.

    Some blocks are :class:`Reordered` (a shuffle buffer's mix, not gathered): their rows
    come in a random order. Also returns the row numbers in the order the batches must hold
    them.
    """
    made, expected, start = [], [], 0
    for rows in draw(st.lists(st.integers(0, 25), min_size=0, max_size=6)):
        ids = np.arange(start, start + rows)
        block = ({"a": np.stack([ids, -ids], 1), "b": ids * 2.0}, ids.astype("int32"))
        if draw(st.booleans()):
            order = np.asarray(draw(st.permutations(range(rows))), dtype=np.int64)
            made.append(Reordered(block, order))
            expected.append(ids[order])
        else:
            made.append(block)
            expected.append(ids)
        start += rows
    return made, np.concatenate(expected) if expected else np.zeros(0), draw(st.integers(1, 30))


@settings(max_examples=300, deadline=None)
@given(case=blocks_and_batch())
def test_segments_cut_the_blocks_rows_into_full_batches_in_order(
    case: tuple[list[Any], np.ndarray, int],
) -> None:
    blocks, expected, size = case
    batches = []
    for block, order, first, count, rows_per_batch in segments(iter(blocks), size):
        rows = len(block[1]) if order is None else len(order)
        assert rows_per_batch == size
        assert 0 <= first and count >= 1 and first + (count - 1) * size < rows
        if order is not None:  # a mix handed on as it is: the block's own rows, not a copy
            assert any(isinstance(b, Reordered) and b.block is block for b in blocks)
            np.testing.assert_array_equal(np.sort(order), np.arange(len(block[1])))
        for i in range(count):
            lo = first + i * size
            at = np.arange(lo, min(lo + size, rows)) if order is None else order[lo : lo + size]
            batches.append(tf.nest.map_structure(lambda leaf, at=at: leaf[at], block))
    sizes = [len(b[1]) for b in batches]
    assert all(s == size for s in sizes[:-1]) and (not sizes or 1 <= sizes[-1] <= size)
    assert sum(sizes) == len(expected)
    joined = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0)
    np.testing.assert_array_equal(joined, expected)
    for batch in batches:  # every leaf of a batch holds the same rows
        np.testing.assert_array_equal(batch[0]["a"][:, 0], batch[1])
        np.testing.assert_array_equal(batch[0]["b"], batch[1] * 2.0)


@settings(max_examples=150, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=3),
    offset=st.integers(0, 3),
    aligned=st.booleans(),
)
def test_as_tensor_gives_the_arrays_values_shared_only_when_aligned(
    dtype: str, shape: list[int], offset: int, aligned: bool
) -> None:
    count = int(np.prod(shape))
    if aligned:
        array = aligned_empty(tuple(shape), np.dtype(dtype))
        array[...] = (np.arange(count) % 7).reshape(shape).astype(dtype)
    else:  # a view at an offset: maybe unaligned, as an Arrow column can be
        array = (np.arange(count + offset) % 7).astype(dtype)[offset:].reshape(shape)
    tensor = as_tensor(array)
    assert tensor.dtype.as_numpy_dtype == array.dtype and tuple(tensor.shape) == array.shape
    np.testing.assert_array_equal(tensor.numpy(), array)
    shareable = array.size and array.flags.c_contiguous and array.ctypes.data % ALIGNMENT == 0
    if array.size:
        array.reshape(-1)[0] = 1 if array.reshape(-1)[0] == 0 else 0  # shared: seen there
        assert (tensor.numpy().reshape(-1)[0] == array.reshape(-1)[0]) == bool(shareable)


def test_as_tensor_converts_what_dlpack_cannot_take() -> None:
    text = np.array([b"a", b"bc"], dtype=object)
    assert as_tensor(text).numpy().tolist() == [b"a", b"bc"]
    frozen = aligned_empty((4,), np.dtype("float32"))
    frozen[...] = 3.0
    frozen.flags.writeable = False
    np.testing.assert_array_equal(as_tensor(frozen).numpy(), frozen)


def _write(
    path: Path, rows: int, row_group: int, columns: int, weights: bool, classes: bool = False
) -> fitpipe.Schema:
    rng = np.random.default_rng(rows * 31 + row_group)
    values = {f"f{i}": rng.normal(size=rows).astype("float32") for i in range(columns)}
    y = rng.integers(0, 3, size=rows) if classes else rng.normal(size=rows)
    values["y"] = y.astype("float32")
    if weights:
        values["w"] = rng.uniform(0.5, 2.0, size=rows).astype("float32")
    pq.write_table(pa.table(values), path, row_group_size=row_group)
    names = [f"f{i}" for i in range(columns)]
    return fitpipe.Schema(features=names, targets="y", sample_weight="w" if weights else None)


def _trainer(columns: int) -> fitpipe.Trainer:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((columns,))
    hidden = keras.layers.Dense(3, activation="tanh")(inputs)
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(hidden)))
    trainer.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return trainer


def _run(path: Path, schema: fitpipe.Schema, columns: int, blocks: bool, **fit: Any) -> Any:
    with (
        pytest.MonkeyPatch.context() as patch,
        BlockSpy() as spy,
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always")
        patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        trainer = _trainer(columns)
        history = trainer.fit(path, schema=schema, verbose=0, **fit)
        batch = fit["batch_size"]  # evaluate and predict take no class weights
        scores = trainer.evaluate(path, schema=schema, batch_size=batch, verbose=0)
        predicted = trainer.predict(path, schema=schema, batch_size=batch, verbose=0)
    weights = [w.numpy() for w in trainer.model.weights]
    said = [str(w.message) for w in seen]
    return history.history, scores, predicted, weights, spy.made, said


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.integers(1, 90),
    row_group=st.integers(1, 40),
    columns=st.integers(1, 3),
    batch_size=st.integers(1, 24),
    shuffle=st.booleans(),
    buffer=st.integers(1, 50),
    validation_split=st.sampled_from([0.0, 0.3]),
    steps_per_epoch=st.sampled_from([None, 1, 3]),
    weights=st.booleans(),
    class_weight=st.sampled_from([None, {0: 1.0, 1: 2.5, 2: 0.5}]),
)
def test_fit_evaluate_predict_in_blocks_equal_the_tf_data_path(
    tmp_path_factory: pytest.TempPathFactory,
    rows: int,
    row_group: int,
    columns: int,
    batch_size: int,
    shuffle: bool,
    buffer: int,
    validation_split: float,
    steps_per_epoch: int | None,
    weights: bool,
    class_weight: dict[int, float] | None,
) -> None:
    if validation_split and rows < 4:
        validation_split = 0.0
    path = Path(tmp_path_factory.mktemp("blocks")) / "data.parquet"
    schema = _write(path, rows, row_group, columns, weights, classes=class_weight is not None)
    fit = {
        "class_weight": class_weight,
        "batch_size": batch_size,
        "epochs": 3,
        "shuffle": shuffle,
        "validation_split": validation_split,
        "steps_per_epoch": steps_per_epoch,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
        patch.setattr(parquet_module, "SHUFFLE_BUFFER_ROWS", buffer)
        plain = _run(path, schema, columns, False, **fit)
        blocked = _run(path, schema, columns, True, **fit)
    assert plain[4] == 0 and blocked[4] >= 3, "the block path was not (or always) taken"
    assert blocked[5] == plain[5]  # the same warnings (an input that ran out, ...)
    assert_same_results(blocked, plain)


def test_a_cursor_dropped_mid_epoch_stops_its_thread_and_closes_the_blocks() -> None:
    closed: list[bool] = []

    def blocks() -> Iterator[tuple[Any, ...]]:
        try:
            for i in range(1000):
                yield (np.full((8, 2), float(i), "float32"),)
        finally:
            closed.append(True)

    spec = (tf.TensorSpec([None, 2], tf.float32),)
    cursor = BlockCursor(RowBlocks(4, blocks()), spec, spec)
    assert cursor.ready() and cursor.remaining == 2
    del cursor
    gc.collect()
    deadline = time.monotonic() + 5
    while (reading_threads() or not closed) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not reading_threads() and closed == [True]


def test_passes_read_one_after_another_keep_no_earlier_pass_alive() -> None:
    """A pass read ahead waits for the pass before; once read, nothing of that pass is kept.

    Each pass's blocks are made for the pass: a chain of passes (each holding what it last
    handed over) would keep every epoch's memory for the whole ``fit``.
    """

    def blocks(value: float) -> Iterator[tuple[Any, ...]]:
        for _ in range(3):
            yield (np.full((8, 2), value, "float32"),)

    spec = (tf.TensorSpec([None, 2], tf.float32),)
    cursors = [BlockCursor(RowBlocks(4, blocks(0.0)), spec, spec)]
    for value in (1.0, 2.0, 3.0):
        cursors.append(BlockCursor(RowBlocks(4, blocks(value)), spec, spec, after=cursors[-1]))
    for value, cursor in enumerate(cursors):  # each pass in turn, all its batches
        seen = []
        while cursor.ready():
            seen.append(float(cursor.batch(cursor.position)[0][0, 0]))
            cursor.position += 1
        assert seen == [float(value)] * 6
        cursor.close()
    dropped = [weakref.ref(c._handoff) for c in cursors[:-1]]
    del cursor, cursors[:-1]
    gc.collect()
    assert [ref() for ref in dropped] == [None, None, None]


def test_an_error_reading_a_block_reaches_the_trainer_as_raised() -> None:
    def blocks() -> Iterator[tuple[Any, ...]]:
        yield (np.zeros((4, 2), "float32"),)
        raise OSError("disk gone")

    spec = (tf.TensorSpec([None, 2], tf.float32),)
    cursor = BlockCursor(RowBlocks(4, blocks()), spec, spec)
    assert cursor.ready()
    cursor.position = cursor.batches
    with pytest.raises(OSError, match="disk gone"):
        cursor.ready()
    assert not cursor.ready()  # ended: asking again does not hang


@settings(max_examples=60, deadline=None)
@given(case=blocks_and_batch(), skip=st.integers(0, 12), n=st.integers(1, 7))
def test_a_cursor_skips_and_runs_the_batches_of_the_blocks_in_order(
    case: tuple[list[Any], np.ndarray, int], skip: int, n: int
) -> None:
    blocks, ids, size = case
    expected = [ids[lo : lo + size] for lo in range(0, len(ids), size)]
    spec = ({"a": tf.TensorSpec([None, 2], tf.int64), "b": tf.TensorSpec([None], tf.float64)},)
    spec += (tf.TensorSpec([None], tf.int32),)
    cursor = BlockCursor(RowBlocks(size, iter(blocks)), spec, spec)
    cursor.skip(skip)
    seen: list[np.ndarray] = []

    def call(c: Any, m: int) -> tuple[int, None]:
        assert 1 <= m <= c.remaining
        for i in range(m):
            batch = c.batch(c.position + i)
            np.testing.assert_array_equal(batch[0]["b"].numpy(), batch[1].numpy() * 2.0)
            seen.append(batch[1].numpy())
        c.position += m
        return m, None

    while True:
        count, _ = cursor.run(call, n, False)
        if count < n:
            break
    assert len(seen) == max(0, len(expected) - skip)
    for got, want in zip(seen, expected[skip:], strict=True):
        np.testing.assert_array_equal(got, want)


def test_an_error_converting_a_row_group_reaches_fit_unchanged_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.parquet"
    schema = _write(path, 40, 10, 2, False)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    original = parquet_module._Reader._convert
    calls = [0]

    def failing(reader: Any, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise ValueError("row group 3 is unreadable")
        return original(reader, *args)

    monkeypatch.setattr(parquet_module._Reader, "_convert", failing)
    for blocks in (False, True):
        calls[0] = 0
        monkeypatch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        with pytest.raises(ValueError, match=r"^row group 3 is unreadable$"):
            _trainer(2).fit(path, schema=schema, batch_size=4, epochs=1, verbose=0, shuffle=False)


class _Counting:
    """Counts the row groups converted by block-reading threads (not ``fit``'s probes)."""

    def __init__(self, patch: pytest.MonkeyPatch) -> None:
        self.converted = 0
        original = parquet_module._Reader._convert

        def counting(reader: Any, *args: Any) -> Any:
            self.converted += threading.current_thread().name == "fitpipe-blocks"
            return original(reader, *args)

        patch.setattr(parquet_module._Reader, "_convert", counting)

    def reaches(self, count: int, seconds: float = 10.0) -> bool:
        """Whether ``count`` row groups get converted within ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.converted < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.converted >= count


def _threads_end(seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while reading_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not reading_threads()


@pytest.mark.parametrize("row_groups", [1, 3])
@pytest.mark.parametrize("validation", [False, True])
def test_the_next_epochs_first_block_is_read_while_this_epoch_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row_groups: int, validation: bool
) -> None:
    """No epoch waits for its first block: read once the last pass's blocks were all read."""
    path = tmp_path / "data.parquet"
    schema = _write(path, 24 * row_groups, 24, 2, False)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    counter, ahead = _Counting(monkeypatch), []
    val = path if validation else None  # validated on the same file (read with schema)

    def read_by_last_batch(epoch: int) -> int:
        """Row groups read by the end of ``epoch``'s last batch (the next passes begun)."""
        train = row_groups * (epoch + 1) + 1  # and the next epoch's first block
        # validations before this epoch, and the next one's first block from the second on
        return train + (row_groups * epoch + (epoch >= 1) if validation else 0)

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == row_groups - 1 and self.epoch < 2:  # an epoch with one after it
                ahead.append(counter.reaches(read_by_last_batch(self.epoch)))

    trainer = _trainer(2)
    trainer.fit(
        path, schema=schema, batch_size=24, epochs=3, shuffle=False, verbose=0,
        validation_data=val, callbacks=[Watch()],
    )  # fmt: skip
    assert ahead == [True, True], f"blocks converted: {counter.converted}"
    assert _threads_end(), "a reading thread outlived fit"
    per_epoch = row_groups * (2 if validation else 1)
    assert counter.converted == 3 * per_epoch  # no pass read for an epoch that never ran


def test_a_run_stopped_early_stops_reading_the_pass_it_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.parquet"
    schema = _write(path, 96, 8, 2, False)  # 12 row groups a pass
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    counter = _Counting(monkeypatch)

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.model.stop_training = True

    history = _trainer(2).fit(
        path, schema=schema, batch_size=8, epochs=5, shuffle=False, verbose=0, callbacks=[Stop()]
    )
    assert len(history.history["loss"]) == 1
    assert _threads_end(), "the pass read ahead went on reading after fit"
    assert 12 <= counter.converted <= 13  # of the pass read ahead, one block at most
