"""Batch input forms: Python generators and iterators, and ``tf.data.Dataset``."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing import epoch_batches

X = np.arange(24, dtype="float32").reshape(12, 2)
Y = np.arange(12, dtype="int64")
SW = np.linspace(0.5, 2.0, 12).astype("float32")

Pair = collections.namedtuple("Pair", ["x", "y"])


class TypedPair(NamedTuple):
    x: Any
    y: Any


def batches(*parts: np.ndarray, size: int = 5) -> Iterator[tuple[np.ndarray, ...]]:
    for start in range(0, len(parts[0]), size):
        yield tuple(p[start : start + size] for p in parts)


def concat(found: list[Any], part: int) -> np.ndarray:
    return np.concatenate([np.asarray(b[part]) for b in found])


# Generators --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 3])
def test_generator_tuples_are_x_xy_xysw(width: int) -> None:
    parts = (X, Y, SW)[:width]
    pipeline = fitpipe.adapt(batches(*parts))
    assert pipeline.adapter == "generator"
    assert pipeline.num_batches is None
    assert pipeline.batch_size is None
    found = epoch_batches(pipeline)
    assert [len(b) for b in found] == [width] * 3
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(concat(found, i), part)


def test_plain_iterator_is_taken_like_a_generator() -> None:
    pipeline = fitpipe.adapt(iter(list(batches(X, Y))))
    assert pipeline.adapter == "generator"
    np.testing.assert_array_equal(concat(epoch_batches(pipeline), 1), Y)


def test_generator_dict_is_x() -> None:
    def gen() -> Iterator[dict[str, np.ndarray]]:
        for (a,) in batches(X):
            yield {"a": a, "b": a[:, 0]}

    found = epoch_batches(fitpipe.adapt(gen()))
    assert all(len(b) == 1 for b in found)
    np.testing.assert_array_equal(np.concatenate([b[0]["a"] for b in found]), X)
    np.testing.assert_array_equal(np.concatenate([b[0]["b"] for b in found]), X[:, 0])


def test_generator_single_array_is_x() -> None:
    found = epoch_batches(fitpipe.adapt(a for (a,) in batches(X)))
    assert all(len(b) == 1 for b in found)
    np.testing.assert_array_equal(concat(found, 0), X)


def test_generator_four_tuple_is_x() -> None:
    pipeline = fitpipe.adapt(batches(X, Y, SW, Y))
    spec = pipeline.element_spec
    assert len(spec) == 1
    assert isinstance(spec[0], tuple)
    assert len(spec[0]) == 4
    found = epoch_batches(pipeline)
    np.testing.assert_array_equal(np.concatenate([b[0][3] for b in found]), Y)


def test_generator_dict_inputs_inside_a_tuple() -> None:
    def gen() -> Iterator[Any]:
        for a, y in batches(X, Y):
            yield {"a": a}, y

    found = epoch_batches(fitpipe.adapt(gen()))
    assert all(len(b) == 2 for b in found)
    np.testing.assert_array_equal(concat(found, 1), Y)


@pytest.mark.parametrize("kind", [Pair, TypedPair], ids=["namedtuple", "NamedTuple"])
def test_generator_namedtuple_is_rejected(kind: Any) -> None:
    def gen() -> Iterator[Any]:
        for a, y in batches(X, Y):
            yield kind(a, y)

    with pytest.raises(ValueError, match=r"^`adapt` cannot unpack a namedtuple") as info:
        fitpipe.adapt(gen())
    text = str(info.value)
    assert "ambiguous" in text
    assert "plain tuple" in text
    assert "tuple(batch)" in text


def test_generator_namedtuple_nested_in_x_is_rejected() -> None:
    def gen() -> Iterator[Any]:
        for a, y in batches(X, Y):
            yield Pair(a, a), y

    with pytest.raises(ValueError, match=r"namedtuple.*\[0\].*plain tuple"):
        fitpipe.adapt(gen())


def endless() -> Iterator[Any]:
    i = 0
    while True:
        yield np.full((2, 1), i, "float32"), np.full((2,), i)
        i += 1


def take_ids(dataset: tf.data.Dataset, count: int) -> list[int]:
    iterator = iter(dataset)
    ids = [int(next(iterator)[1][0]) for _ in range(count)]
    time.sleep(0.1)  # let any prefetching run before the epoch is abandoned
    del iterator
    return ids


def test_generator_pipeline_epochs_continue_where_the_last_stopped() -> None:
    pipeline = fitpipe.adapt(endless())
    assert take_ids(pipeline.dataset, 3) == [0, 1, 2]
    assert take_ids(pipeline.dataset, 3) == [3, 4, 5]


def test_generator_variable_batch_dimension_and_last_partial_batch() -> None:
    found = epoch_batches(fitpipe.adapt(batches(X, Y, size=5)))
    assert [len(b[0]) for b in found] == [5, 5, 2]


def test_generator_yielding_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got a generator that yields nothing"):
        fitpipe.adapt(iter([]))


def test_generator_inconsistent_shapes_fail_on_iteration_with_the_expected_shape() -> None:
    def gen() -> Iterator[Any]:
        yield np.zeros((2, 3), "float32"), np.zeros(2)
        yield np.zeros((2, 3), "float32"), np.zeros(2)
        yield np.zeros((2, 4), "float32"), np.zeros(2)

    pipeline = fitpipe.adapt(gen())
    with pytest.raises(tf.errors.OpError, match="shape unlike the first"):
        epoch_batches(pipeline)
    error = pipeline.take_error()
    assert isinstance(error, DataMismatchError)
    assert isinstance(error, ValueError)
    assert str(error).startswith("`adapt` got batch 2 from the generator")
    assert "expected shape (None, 3)" in str(error)
    assert "(2, 4)" in str(error)
    assert pipeline.take_error() is None  # taken once


def test_generator_rank_change_in_the_first_batches_is_an_error() -> None:
    def gen() -> Iterator[Any]:
        yield np.zeros((2, 3)), np.zeros(2)
        yield np.zeros((2,)), np.zeros(2)

    with pytest.raises(ValueError, match="batch 1 from the generator whose `x` has rank 1"):
        fitpipe.adapt(gen())


def test_generator_rank_change_error_names_the_caller() -> None:
    def gen() -> Iterator[Any]:
        yield np.zeros((2, 3)), np.zeros(2)
        yield np.zeros((2,)), np.zeros(2)

    with pytest.raises(ValueError, match=r"^`adapt` got batch 1 from the generator whose `x`"):
        fitpipe.adapt(gen())


def test_generator_structure_change_in_the_first_batches_is_an_error() -> None:
    def gen() -> Iterator[Any]:
        yield np.zeros((2, 3)), np.zeros(2)
        yield np.zeros((2, 3)), np.zeros(2), np.zeros(2)

    with pytest.raises(ValueError, match=r"^`adapt` got batch 1 from the generator with a struc"):
        fitpipe.adapt(gen())


def test_generator_error_mid_way_is_kept_for_take_error() -> None:
    boom = RuntimeError("boom")

    def gen() -> Iterator[Any]:
        for i, batch in enumerate(batches(X, Y, size=2)):
            if i == 3:
                raise boom
            yield batch

    pipeline = fitpipe.adapt(gen())
    seen = []
    with pytest.raises(tf.errors.OpError, match="boom"):
        for batch in pipeline.dataset:
            seen.append(batch)
    assert len(seen) == 3
    assert pipeline.take_error() is boom
    assert pipeline.take_error() is None


def test_generator_error_while_peeking_propagates_directly() -> None:
    def gen() -> Iterator[Any]:
        raise RuntimeError("boom at start")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="boom at start"):
        fitpipe.adapt(gen())


# tf.data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 3])
def test_tf_data_tuples_are_x_xy_xysw(width: int) -> None:
    parts = (X, Y, SW)[:width]
    dataset = tf.data.Dataset.from_tensor_slices(parts).batch(5)
    pipeline = fitpipe.adapt(dataset)
    assert pipeline.adapter == "tf.data"
    assert pipeline.num_batches == 3
    assert pipeline.batch_size is None
    found = epoch_batches(pipeline)
    assert [len(b) for b in found] == [width] * 3
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(concat(found, i), part)


def test_tf_data_dict_is_x() -> None:
    dataset = tf.data.Dataset.from_tensor_slices({"a": X, "b": Y}).batch(5)
    pipeline = fitpipe.adapt(dataset)
    assert len(pipeline.element_spec) == 1
    assert set(pipeline.element_spec[0]) == {"a", "b"}
    found = epoch_batches(pipeline)
    np.testing.assert_array_equal(np.concatenate([b[0]["b"] for b in found]), Y)


def test_tf_data_single_tensor_is_x() -> None:
    pipeline = fitpipe.adapt(tf.data.Dataset.from_tensor_slices(X).batch(5))
    assert len(pipeline.element_spec) == 1
    assert isinstance(pipeline.element_spec[0], tf.TensorSpec)
    np.testing.assert_array_equal(concat(epoch_batches(pipeline), 0), X)


def test_tf_data_four_tuple_is_x() -> None:
    dataset = tf.data.Dataset.from_tensor_slices((X, Y, SW, Y)).batch(5)
    pipeline = fitpipe.adapt(dataset)
    assert len(pipeline.element_spec) == 1
    assert len(pipeline.element_spec[0]) == 4


@pytest.mark.parametrize("kind", [Pair, TypedPair], ids=["namedtuple", "NamedTuple"])
def test_tf_data_namedtuple_is_rejected(kind: Any) -> None:
    dataset = tf.data.Dataset.from_tensor_slices(kind(X, Y)).batch(5)
    with pytest.raises(ValueError, match=r"^`adapt` cannot unpack a namedtuple") as info:
        fitpipe.adapt(dataset)
    assert "plain tuple" in str(info.value)


def test_tf_data_unknown_and_infinite_cardinality() -> None:
    unknown = tf.data.Dataset.from_tensor_slices((X, Y)).batch(5).filter(lambda x, y: True)
    pipeline = fitpipe.adapt(unknown)
    assert pipeline.num_batches is None
    assert pipeline.finite
    endless = tf.data.Dataset.from_tensor_slices((X, Y)).batch(5).repeat()
    pipeline = fitpipe.adapt(endless)
    assert pipeline.num_batches is None
    assert not pipeline.finite
    assert len(list(pipeline.dataset.take(7))) == 7


def test_tf_data_every_iteration_is_a_new_epoch() -> None:
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(5)
    pipeline = fitpipe.adapt(dataset)
    first = concat(epoch_batches(pipeline), 1)
    pipeline.on_epoch_end()
    second = concat(epoch_batches(pipeline), 1)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("prefetched", [True, False])
def test_tf_data_reads_ahead_by_its_own_prefetch_not_a_second(prefetched: bool) -> None:
    # Its own prefetch, or the one tf.data injects after a last synchronous stage: a second
    # one cost a few percent of the CPU of a fit at batch 32.
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(5)
    dataset = dataset.prefetch(tf.data.AUTOTUNE) if prefetched else dataset
    assert fitpipe.adapt(dataset).dataset is dataset
    assert fitpipe.adapt(dataset.map(lambda x, y: x)).dataset is not dataset  # unpacked


@pytest.mark.parametrize("element", ["x", "dict", "xy", "four"])
def test_tf_data_keeps_its_options_and_values_however_it_is_unpacked(element: str) -> None:
    parts = {"x": X, "dict": {"a": X}, "xy": (X, Y), "four": (X, Y, SW, Y)}[element]
    options = tf.data.Options()
    options.deterministic = False
    options.threading.private_threadpool_size = 3
    dataset = tf.data.Dataset.from_tensor_slices(parts).batch(5).with_options(options)
    pipeline = fitpipe.adapt(dataset)
    assert pipeline.dataset.options().threading.private_threadpool_size == 3
    assert pipeline.dataset.options().deterministic is False
    found = epoch_batches(pipeline)
    first = tf.nest.flatten(found[0][0])[0]
    np.testing.assert_array_equal(first, X[:5])


def test_generator_batches_cross_in_groups_within_what_the_trainer_takes() -> None:
    pipeline = fitpipe.adapt(endless())
    time.sleep(0.2)  # let the feeder fill its queue: groups can form
    pipeline.expect(3)  # the trainer takes 3 batches from this iteration, then drops it
    assert take_ids(pipeline.dataset, 3) == [0, 1, 2]
    pipeline.expect(40)
    assert take_ids(pipeline.dataset, 40) == list(range(3, 43))
    assert take_ids(pipeline.dataset, 2) == [43, 44]  # not told: one batch at a time


def test_generator_groups_split_at_shape_changes() -> None:
    def sizes() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for size in [4, 4, 3, 3, 4, 1]:
            yield np.zeros((size, 2), "float32"), np.zeros((size,), "int64")

    pipeline = fitpipe.adapt(sizes())
    time.sleep(0.2)
    pipeline.expect(None)
    found = epoch_batches(pipeline)
    assert [len(b[0]) for b in found] == [4, 4, 3, 3, 4, 1]


@pytest.mark.parametrize(("rows", "most"), [(4, 64), (1024, 16)])
def test_generator_read_ahead_is_bounded_in_batches_and_bytes(rows: int, most: int) -> None:
    """At most 64 batches ahead, and past 2 batches at most 64 MiB (4 MiB batches: 16)."""
    from fitpipe.adapters import generators

    assert generators._BUFFER == 64 and generators._BUFFER_BYTES == 64 << 20
    read = []

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            read.append(len(read))
            yield np.zeros((rows, 1024), "float32"), np.zeros((rows,), "float32")

    pipeline = fitpipe.adapt(batches())
    pipeline.expect(None)  # the trainer takes every batch: the thread reads ahead
    deadline = time.monotonic() + 10
    while len(read) < most and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # nothing more is read
    assert len(read) == most
    pipeline.close()
