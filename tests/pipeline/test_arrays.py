"""Batching row-addressed sources: order, shuffling, seeds, and the streamed path."""

from __future__ import annotations

from typing import Any
from unittest import mock

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.columnar import convert, recycle
from fitpipe.errors import FitpipeValueError
from fitpipe.pipeline import arrays, row_chunks
from fitpipe.pipeline.arrays import resolve_batch_size
from fitpipe.testing import epoch_batches

N = 50
X = np.arange(N * 3, dtype="float32").reshape(N, 3)
Y = np.arange(N, dtype="int64")
SW = (np.arange(N, dtype="float32") + 1) / N


def epoch_ids(pipeline: Any) -> np.ndarray:
    return np.concatenate([b[1] for b in epoch_batches(pipeline)])


def test_unshuffled_epochs_repeat_the_same_order() -> None:
    pipeline = fitpipe.adapt(X, Y, batch_size=8)
    np.testing.assert_array_equal(epoch_ids(pipeline), Y)
    pipeline.on_epoch_end()
    np.testing.assert_array_equal(epoch_ids(pipeline), Y)


def test_shuffle_reshuffles_every_epoch_keeping_rows_whole(seeded: Any) -> None:
    seeded(0)
    pipeline = fitpipe.adapt(X, Y, SW, batch_size=8, shuffle=True)
    orders = []
    for _ in range(3):
        batches = epoch_batches(pipeline)
        assert [len(b[0]) for b in batches] == [8] * 6 + [2]
        ids = np.concatenate([b[1] for b in batches])
        rows = np.concatenate([b[0] for b in batches])
        weights = np.concatenate([b[2] for b in batches])
        np.testing.assert_array_equal(np.sort(ids), Y)
        np.testing.assert_array_equal(rows, X[ids])
        np.testing.assert_array_equal(weights, SW[ids])
        orders.append(tuple(ids))
        pipeline.on_epoch_end()
    assert orders[0] != tuple(Y)
    assert len(set(orders)) == 3


def test_shuffle_is_reproducible_under_set_random_seed(seeded: Any) -> None:
    def two_epochs(seed: int) -> list[tuple[int, ...]]:
        seeded(seed)
        pipeline = fitpipe.adapt(X, Y, batch_size=8, shuffle=True)
        return [tuple(epoch_ids(pipeline)) for _ in range(2)]

    first = two_epochs(7)
    assert two_epochs(7) == first
    assert two_epochs(8) != first


def test_shuffle_seed_argument_of_pipeline_from_source() -> None:
    from fitpipe.adapters import AdaptRequest
    from fitpipe.pipeline import PipelineOptions, adapt_source, pipeline_from_source

    request = AdaptRequest(x=X, y=Y, batch_size=8, shuffle=True)
    adapter, source = adapt_source(request)
    options = PipelineOptions.of(request)
    one = pipeline_from_source(adapter.name, source, options, seed=123)
    two = pipeline_from_source(adapter.name, source, options, seed=123)
    np.testing.assert_array_equal(epoch_ids(one), epoch_ids(two))


@pytest.mark.parametrize(
    ("rows", "batch_size", "sizes"),
    [(10, 3, [3, 3, 3, 1]), (10, 10, [10]), (10, 32, [10]), (1, 4, [1])],
)
@pytest.mark.parametrize("shuffle", [False, True])
def test_last_partial_batch_is_kept(
    rows: int, batch_size: int, sizes: list[int], shuffle: bool
) -> None:
    pipeline = fitpipe.adapt(X[:rows], Y[:rows], batch_size=batch_size, shuffle=shuffle)
    assert pipeline.num_batches == len(sizes)
    batches = epoch_batches(pipeline)
    assert [len(b[0]) for b in batches] == sizes
    np.testing.assert_array_equal(np.sort(np.concatenate([b[1] for b in batches])), Y[:rows])


@pytest.mark.parametrize(
    ("batch_size", "steps", "rows", "expected"),
    [
        (None, None, 100, 32),
        (7, None, 100, 7),
        (None, 3, 100, 34),
        (5, 3, 100, 5),
        (None, 200, 100, 1),
    ],
)
def test_resolve_batch_size(
    batch_size: int | None, steps: int | None, rows: int, expected: int
) -> None:
    assert resolve_batch_size(batch_size, steps, rows) == expected


@pytest.mark.parametrize(
    ("batch_size", "steps", "rows", "refused"),
    [
        (2**31 + 64, None, 2**31 + 64, True),  # its row indices wrapped to negative numbers
        (None, 1, 2**31, True),
        (2**31 - 1, None, 2**33, False),
        (2**40, None, 1000, False),  # a batch of the rows there are
        (None, 2, 2**32, True),
        (None, 4, 2**32, False),
    ],
)
def test_a_batch_of_more_rows_than_32_bit_indices_is_refused_naming_batch_size(
    batch_size: int | None, steps: int | None, rows: int, refused: bool
) -> None:
    if not refused:
        resolve_batch_size(batch_size, steps, rows, "predict")
        return
    with pytest.raises(FitpipeValueError, match=r"`predict` cannot make batches of 2,147,48"):
        resolve_batch_size(batch_size, steps, rows, "predict")


# The streamed path ------------------------------------------------------------------------


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)


def test_streamed_batches_equal_resident_batches(streamed: None, monkeypatch: Any) -> None:
    structures = ({"a": X, "b": X[:, 0].astype("int32")}, Y, SW)
    streamed_batches = epoch_batches(fitpipe.adapt(*structures, batch_size=7))
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 256 * 2**20)
    resident_batches = epoch_batches(fitpipe.adapt(*structures, batch_size=7))
    assert len(streamed_batches) == len(resident_batches) == 8
    for s, r in zip(streamed_batches, resident_batches, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, s, r)
        assert tf.nest.map_structure(lambda a: a.dtype, s) == tf.nest.map_structure(
            lambda a: a.dtype, r
        )


def test_streamed_shuffle_keeps_rows_aligned(streamed: None, seeded: Any) -> None:
    seeded(5)
    pipeline = fitpipe.adapt(X, Y, SW, batch_size=6, shuffle=True)
    spec = pipeline.element_spec
    assert spec[0].shape.as_list() == [None, 3]
    assert spec[2].shape.as_list() == [None]
    batches = epoch_batches(pipeline)
    ids = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(np.sort(ids), Y)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X[ids])
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), SW[ids])


def test_streamed_keeps_strings_resident(streamed: None) -> None:
    text = np.array([f"row{i}" for i in range(N)])
    batches = epoch_batches(fitpipe.adapt({"text": text, "num": X}, Y, batch_size=20))
    assert batches[0][0]["text"][0] == b"row0"
    np.testing.assert_array_equal(np.concatenate([b[0]["num"] for b in batches]), X)


def test_large_array_is_not_embedded_in_the_graph() -> None:
    big = np.zeros((2**20, 16), dtype="float32")  # 64 MiB, above the lowered limit below
    assert big.nbytes == 64 * 2**20
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "RESIDENT_BYTES_LIMIT", 32 * 2**20)
        pipeline = fitpipe.adapt(big, batch_size=2**16)
    assert len(serialized(pipeline)) < 2**20
    assert pipeline.num_batches == 16
    first = next(iter(pipeline.dataset))[0]
    assert first.shape == (2**16, 16)


def serialized(pipeline: Any) -> bytes:
    policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return pipeline.dataset._as_serialized_graph(external_state_policy=policy).numpy()


def test_resident_bytes_limit_decides_which_data_streams() -> None:
    small = np.zeros((64, 4), dtype="float32")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "RESIDENT_BYTES_LIMIT", small.nbytes)
        resident = fitpipe.adapt(small)
        patch.setattr(limits, "RESIDENT_BYTES_LIMIT", small.nbytes - 1)
        streamed = fitpipe.adapt(small)
    assert b"PyFunc" not in serialized(resident)
    assert b"PyFunc" in serialized(streamed)


@pytest.mark.parametrize("shuffle", [False, True, "batch"])
def test_resident_rows_slice_the_batches_of_the_dataset(shuffle: Any, seeded: Any) -> None:
    """The fast path's interface (``loop_arguments``, ``fetch_function``, ``batch``) reads
    the batches the dataset gives, epoch by epoch, with class weights applied."""
    seeded(5)
    x, y = np.arange(23.0, dtype="float32")[:, None], np.arange(23) % 2
    pipeline = fitpipe.adapt(x, y, batch_size=5, shuffle=shuffle, class_weight={0: 1.0, 1: 2.0})
    rows = pipeline.rows
    assert rows is not None and rows.num_batches == 5
    fetch = tf.function(rows.fetch_function())
    for epoch in range(2):
        arguments = rows.loop_arguments(epoch)
        for i, batch in enumerate(pipeline.dataset):
            for got in (rows.batch(arguments, i), fetch(arguments, tf.constant(i)).get_value()):
                for part, expected in zip(got, batch, strict=True):
                    np.testing.assert_array_equal(part.numpy(), expected.numpy())
    whole = rows.as_batch()
    np.testing.assert_array_equal(whole[0].numpy(), x)
    np.testing.assert_array_equal(whole[1].numpy(), y)


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(
        ["bool", "int8", "uint16", "int32", "int64", "float16", "float32", "float64", "complex64"]
    ),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    layout=st.sampled_from(["c", "fortran", "strided", "offset", "swapped"]),
    mapped=st.booleans(),
)
def test_a_held_array_is_a_private_copy_of_the_callers_values(
    dtype: str, shape: list[int], layout: str, mapped: bool
) -> None:
    # A held array is a copy (as Keras converts arrays before its first step): the values
    # and dtype are the caller's, whatever the array's layout, and editing the caller's
    # array during a `fit` changes nothing. mapped: copied into mapped memory, as large
    # arrays are.
    base = (np.arange(int(np.prod(shape)) * 2) % 7).astype(dtype)
    array = base[: int(np.prod(shape))].reshape(shape)
    if layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "strided":
        array = base[::2].reshape(shape)
    elif layout == "offset":  # starts 1 element into a buffer: never aligned to 64 bytes
        array = base[1 : 1 + int(np.prod(shape))].reshape(shape)
    elif layout == "swapped":  # the other byte order
        array = array.astype(array.dtype.newbyteorder("S"))
    expected = array.copy()
    with mock.patch.object(convert, "MAPPED_BYTES", 0 if mapped else convert.MAPPED_BYTES):
        held = arrays._hold(array)
    assert held.dtype == tf.as_dtype(array.dtype)
    np.testing.assert_array_equal(held.numpy(), expected)
    if array.size:
        array.flat[0] = not array.flat[0] if dtype == "bool" else array.flat[0] + 1
        np.testing.assert_array_equal(held.numpy(), expected)


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8", "bool"])
def test_a_large_held_array_is_copied_once_into_mapped_memory(dtype: str) -> None:
    # TensorFlow's own conversion copies a caller's array into a fresh NumPy buffer (advised
    # for huge pages: seconds of page faults on some machines); the held copy is made into
    # fitpipe's mapped memory instead, once, and the variable takes that memory as it is.
    array = (np.arange(64 * 128) % 5).astype(dtype).reshape(64, 128)
    made: list[int] = []
    real = recycle._anonymous_map

    def spy(nbytes: int) -> Any:
        made.append(nbytes)
        return real(nbytes)

    with (
        mock.patch.object(convert, "MAPPED_BYTES", 1024),
        mock.patch.object(recycle, "_anonymous_map", spy),
    ):
        held = arrays._hold(array)
    assert made == [array.nbytes]
    np.testing.assert_array_equal(held.numpy(), array)


def _assert_calls_hold_rows_in_place(
    data: tuple[Any, ...], nbytes: int, compiled: dict[str, Any], called: dict[str, Any]
) -> None:
    """fit, evaluate, fit: TensorFlow's allocator never takes half the held rows' bytes."""
    inputs = keras.Input((64,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse", **compiled)
    for call in ("fit", "evaluate", "fit"):
        tf.config.experimental.reset_memory_stats("CPU:0")
        getattr(trainer, call)(*data, batch_size=32, verbose=0, **called)
        memory = tf.config.experimental.get_memory_info("CPU:0")
        assert memory["peak"] < nbytes // 2, (call, memory)  # chunks and batches only
        assert memory["current"] == 0, (call, memory)


def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "MAPPED_BYTES", 1024)
    monkeypatch.setattr(convert, "TRANSPOSE_BLOCK_BYTES", 64 << 10)
    monkeypatch.setattr(row_chunks, "CHUNK_BYTES", 8 * 32 * 64 * 4)  # 8 batches a chunk


@pytest.mark.parametrize("steps_per_execution", [1, 4])
@pytest.mark.parametrize("chunked", [True, False])
def test_training_reads_held_rows_where_they_are_held(
    steps_per_execution: int, chunked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gather from a variable over memory TensorFlow does not own alone copied the whole
    # variable into TensorFlow's allocator the first time (128 MiB at every ``fit`` of
    # 65,536 x 512 float32 rows), and the copies outlived the call.
    _small_blocks(monkeypatch)
    if not chunked:
        monkeypatch.setattr(arrays.ResidentRows, "chunk_functions", lambda self: None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 64), dtype=np.float32)  # 1 MiB held
    y = rng.standard_normal((4096, 1), dtype=np.float32)
    compiled = {"steps_per_execution": steps_per_execution}
    _assert_calls_hold_rows_in_place((x, y), x.nbytes, compiled, {})


@pytest.mark.parametrize("row_groups", [1, 4])
def test_held_parquet_rows_are_stacked_and_joined_outside_tensorflow_s_allocator(
    row_groups: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide columns transposed whole, or row groups joined by ``tf.concat``, took a region of
    # TensorFlow's allocator as large as the rows at every read, faulted in afresh.
    _small_blocks(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 64), dtype=np.float32)
    columns = {f"f{i}": x[:, i] for i in range(64)} | {"y": x[:, 0] * 2}
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=4096 // row_groups)
    schema = fitpipe.Schema(features=[f"f{i}" for i in range(64)], targets="y")
    _assert_calls_hold_rows_in_place((str(path),), x.nbytes, {}, {"schema": schema})
