"""Mapped buffers used again while a trainer's call runs, never while anything holds them.

``columnar.recycle`` hands a mapping out again when no array, view or tensor of it is left
(read from the reference count of its root array). The class of bug it could bring is a
buffer written while something still reads it; the state-machine test below holds buffers
through every kind of holder fitpipe makes (views, row slices, DLPack tensors, ``tf.data``
elements, tensors gathered from them) in random orders and checks that no live buffer is
ever handed out again or changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.columnar import aligned_empty, as_tensor, convert, recycle, recycling

#: Buffers from this size are mapped (and recycled) in these tests (the default is 32 MiB).
MAPPED = 4096
SIZES = (4096, 8192, 12288)


@pytest.fixture(autouse=True)
def _small_mapped_buffers() -> Iterator[None]:
    with mock.patch.object(convert, "MAPPED_BYTES", MAPPED):
        yield
    assert not recycle._users  # every scope left
    recycle.release()
    assert not recycle._pool


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def test_a_buffer_nothing_holds_is_handed_out_again_inside_the_scope_only() -> None:
    with recycling():
        first = aligned_empty((1024,), np.float32)
        where = _address(first)
        del first
        again = aligned_empty((32, 32), np.float32)  # same bytes, any shape or dtype
        assert _address(again) == where
        other = aligned_empty((1024,), np.float32)
        assert _address(other) != where  # ``again`` holds it
    del again, other
    kept = len(recycle._pool)  # kept a while for the next call, but not handed out here
    outside = [aligned_empty((1024,), np.float32) for _ in range(2)]
    assert where not in {_address(a) for a in outside} and len(recycle._pool) == kept == 2


def test_the_pool_lets_its_mappings_go_a_while_after_the_last_call_unless_another_begins() -> None:
    with mock.patch.object(recycle, "KEEP_SECONDS", 0.2):
        with recycling():
            aligned_empty((1024,), np.float32)
        assert recycle._pool  # kept for a call that comes soon
        with recycling():  # one did: the timer is stopped
            time.sleep(0.4)
            assert recycle._pool
        deadline = time.monotonic() + 30
        while recycle._pool and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not recycle._pool


# Holders of a buffer's memory, as fitpipe makes them.
HOLDERS: dict[str, Callable[[np.ndarray], Any]] = {
    "view": lambda a: a.reshape(-1)[16:],
    "rows": lambda a: a[1:],
    "dlpack tensor": as_tensor,
    "tensor of rows": lambda a: as_tensor(a[16:]),
    "tf.data element": lambda a: next(
        iter(tf.data.Dataset.from_generator(lambda: iter([a]), output_signature=_spec(a)))
    ),
    "sliced tensor": lambda a: as_tensor(a)[1:],
}


def _spec(array: np.ndarray) -> tf.TensorSpec:
    return tf.TensorSpec(array.shape, tf.as_dtype(array.dtype))


def _value(holder: Any) -> np.ndarray:
    return np.array(holder)  # a copy: what the holder reads now


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(SIZES),
            st.sampled_from(sorted(HOLDERS)),
            st.lists(st.integers(0, 7), max_size=3),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_buffer_is_handed_out_while_anything_holds_its_memory(
    steps: list[tuple[int, str, list[int]]],
) -> None:
    held: list[tuple[Any, np.ndarray]] = []  # (holder, the values it must keep reading)
    with recycling():
        for number, (nbytes, kind, drops) in enumerate(steps):
            for index in sorted({d % (len(held) or 1) for d in drops if held}, reverse=True):
                del held[index]
            buffer = aligned_empty((nbytes // 4 // 16, 16), np.float32)
            for holder, _ in held:  # a held buffer is never handed out again
                assert not np.shares_memory(np.asarray(holder), buffer)
            buffer[...] = number
            holder = HOLDERS[kind](buffer)
            del buffer
            held.append((holder, _value(holder)))
            for holder, values in held:
                np.testing.assert_array_equal(_value(holder), values)


def test_the_pool_tracks_at_most_its_limit_and_lets_a_free_mapping_go_for_a_new_one() -> None:
    with recycling(), recycling():  # nested: one pool
        kept = [aligned_empty((1024 + 1024 * i,), np.float32) for i in range(12)]
        assert len(recycle._pool) == recycle.RECYCLED_MAPPINGS
        del kept[0]
        aligned_empty((64 * 1024,), np.float32)  # a new size: the free one makes room
        assert len(recycle._pool) == recycle.RECYCLED_MAPPINGS
        assert sum(root.nbytes == 4096 for root in recycle._pool) == 0


def _parquet(path: Any, rows: int, width: int) -> list[str]:
    rng = np.random.default_rng(0)
    columns = {f"f{i}": rng.standard_normal(rows, dtype=np.float32) for i in range(width)}
    columns["y"] = rng.standard_normal(rows, dtype=np.float32)
    pq.write_table(pa.table(columns), path, row_group_size=rows // 4)
    return [f"f{i}" for i in range(width)]


def _weights_after_streamed_fit(path: Any, features: list[str]) -> list[np.ndarray]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((len(features),))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(8)(inputs)))
    trainer = fitpipe.Trainer(model)
    trainer.compile("adam", "mse")
    schema = fitpipe.Schema(features=features, targets="y")
    with mock.patch.object(limits, "RESIDENT_BYTES_LIMIT", 0):  # streamed
        trainer.fit(path, schema=schema, batch_size=32, epochs=3, verbose=0)
    return [w.copy() for w in model.get_weights()]


def test_a_streamed_fit_over_recycled_blocks_trains_as_one_over_fresh_ones(tmp_path: Any) -> None:
    path = tmp_path / "rows.parquet"
    features = _parquet(path, 512, 64)  # blocks of 128 rows x 64 float32: 32 KiB, mapped
    made: list[int] = []
    real = recycle._anonymous_map

    def counted(nbytes: int) -> Any:
        made.append(nbytes)
        return real(nbytes)

    with mock.patch.object(recycle, "_anonymous_map", counted):
        recycled = _weights_after_streamed_fit(path, features)
    with mock.patch.object(recycle, "RECYCLED_MAPPINGS", 0):
        fresh = _weights_after_streamed_fit(path, features)
    assert made and len(made) < 3 * 4  # fewer mappings than blocks: some were used again
    for got, want in zip(recycled, fresh, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("calls", [("fit",), ("fit", "evaluate", "fit"), ("evaluate", "predict")])
def test_the_rows_a_call_held_are_free_once_it_returns(calls: tuple[str, ...]) -> None:
    # A compiled loop is kept on the trainer for its next call; traced for a held variable
    # passed as an argument, it kept that variable (and the mapped memory under it) as long
    # as the trainer lived, so the next call could not use the mapping again.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 16), dtype=np.float32)  # 16 KiB held: mapped here
    y = rng.standard_normal((256, 1), dtype=np.float32)
    inputs = keras.Input((16,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse")
    for call in calls:
        if call == "predict":
            trainer.predict(x, batch_size=32, verbose=0)
        else:
            getattr(trainer, call)(x, y, batch_size=32, verbose=0)
        held = {_address(root) for root in recycle._pool if root.nbytes == x.nbytes}
        assert held  # the held copy was made in a pooled mapping
        with recycling():
            assert _address(aligned_empty(x.shape, np.float32)) in held, call  # free again
