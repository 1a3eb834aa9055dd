"""Streamed Parquet hands ``tf.data`` blocks it takes without a copy (64-byte aligned).

``Dataset.from_generator`` copies every NumPy array a generator yields unless its buffer is
contiguous and aligned to 64 bytes. The blocks the streamed reader makes (stacked row
groups, shuffle buffers reordered, batches joined across row groups) are written aligned,
and what is not (a single column read at an offset) is aligned before it is yielded, so no
block is copied twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters import parquet as parquet_module
from fitpipe.adapters import row_blocks
from fitpipe.adapters.row_blocks import aligned_rows, concat_rows, take_rows
from fitpipe.columnar.convert import ALIGNMENT, backing_tensor

DTYPES = ["float32", "float64", "int64", "int32", "uint8", "bool"]


def _aligned(leaf: Any) -> bool:
    """Taken by ``tf.data`` as it is (an empty array has nothing to copy)."""
    return leaf.size == 0 or bool(leaf.flags.c_contiguous and leaf.ctypes.data % ALIGNMENT == 0)


@st.composite
def blocks(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Blocks of one nesting: ``({"a": rows x width, "b": rows}, rows)``, offsets anywhere."""
    dtype = draw(st.sampled_from(DTYPES))
    width = draw(st.integers(1, 5))
    made = []
    for rows in draw(st.lists(st.integers(0, 30), min_size=1, max_size=4)):
        skip = draw(st.integers(0, 3))  # a view at an offset: unaligned, as pyarrow's can be
        base = np.arange((rows + skip) * width).reshape(rows + skip, width).astype(dtype)
        made.append(({"a": base[skip:], "b": base[skip:, 0].copy()}, np.arange(rows) * 0.5))
    return made


@settings(max_examples=150, deadline=None)
@given(chunks=blocks(), data=st.data(), by_tensorflow=st.booleans())
def test_joined_and_reordered_blocks_are_aligned_and_equal_numpys(
    chunks: list[tuple[Any, ...]], data: st.DataObject, by_tensorflow: bool
) -> None:
    joined = concat_rows(chunks)
    expected = tf.nest.map_structure(lambda *leaves: np.concatenate(leaves), *chunks)
    tf.nest.map_structure(np.testing.assert_array_equal, joined, expected)
    rows = len(joined[1])
    order = np.array(data.draw(st.permutations(range(rows))), dtype=np.int64)
    saved = row_blocks.GATHER_BYTES, row_blocks.GATHER_ROW_BYTES
    if by_tensorflow:  # every non-empty leaf gathered by TensorFlow, as wide blocks are
        row_blocks.GATHER_BYTES = row_blocks.GATHER_ROW_BYTES = 0
    try:
        mixed = take_rows(joined, order)
    finally:
        row_blocks.GATHER_BYTES, row_blocks.GATHER_ROW_BYTES = saved
    for leaf in tf.nest.flatten(mixed):
        assert (backing_tensor(leaf) is not None) is (by_tensorflow and leaf.size > 0)
    tf.nest.map_structure(
        lambda got, leaf: np.testing.assert_array_equal(got, leaf[order]), mixed, joined
    )
    pairs = zip(tf.nest.flatten((joined, mixed)), tf.nest.flatten((expected,) * 2), strict=True)
    for got, want in pairs:
        assert _aligned(got), (got.dtype, got.shape)
        assert got.dtype == want.dtype and got.shape == want.shape


@settings(max_examples=100, deadline=None)
@given(chunks=blocks())
def test_aligned_rows_copies_only_what_is_not_aligned(chunks: list[tuple[Any, ...]]) -> None:
    for chunk in chunks:
        done = aligned_rows(chunk)
        for before, after in zip(tf.nest.flatten(chunk), tf.nest.flatten(done), strict=True):
            np.testing.assert_array_equal(after, before)
            assert after.dtype == before.dtype and _aligned(after)
            assert (after is before) == _aligned(before)


def test_aligned_rows_passes_ragged_and_object_leaves_as_they_are() -> None:
    ragged = tf.ragged.constant([[1, 2], [3]])
    text = np.array([b"a", b"bc"], dtype=object)
    chunk = (ragged, text)
    done = aligned_rows(chunk)
    assert done[0] is ragged and done[1] is text


@contextlib.contextmanager
def recorded_yields() -> Iterator[list[Any]]:
    """Every structure a ``Dataset.from_generator`` generator yields while inside."""
    seen: list[Any] = []
    original = tf.data.Dataset.from_generator

    def recording(generator: Any, *args: Any, **kwargs: Any) -> tf.data.Dataset:
        def wrapped(*call_args: Any) -> Iterator[Any]:
            for item in generator(*call_args):
                seen.append(item)
                yield item

        return original(wrapped, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.data.Dataset, "from_generator", staticmethod(recording))
        yield seen


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.integers(1, 120),
    row_group=st.integers(1, 40),
    columns=st.integers(1, 4),
    dtype=st.sampled_from(["float32", "float64", "int64"]),
    batch_size=st.integers(1, 32),
    shuffle=st.booleans(),
    buffer=st.integers(1, 60),
    validation_split=st.sampled_from([0.0, 0.3]),
)
def test_every_block_the_streamed_reader_yields_is_aligned(
    tmp_path_factory: pytest.TempPathFactory,
    rows: int,
    row_group: int,
    columns: int,
    dtype: str,
    batch_size: int,
    shuffle: bool,
    buffer: int,
    validation_split: float,
) -> None:
    path = Path(tmp_path_factory.mktemp("aligned")) / "data.parquet"
    names = [f"f{i}" for i in range(columns)]
    values = {n: (np.arange(rows) * (i + 1)).astype(dtype) for i, n in enumerate(names)}
    pq.write_table(
        pa.table({**values, "y": np.arange(rows, dtype="float32")}), path, row_group_size=row_group
    )
    schema = fitpipe.Schema(features=names[0] if columns == 1 else names, targets="y")
    with pytest.MonkeyPatch.context() as patch, recorded_yields() as seen:
        patch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
        patch.setattr(parquet_module, "SHUFFLE_BUFFER_ROWS", buffer)
        pipeline = fitpipe.adapt(path, schema=schema, batch_size=batch_size, shuffle=shuffle)
        delivered = [b[1].numpy() for b in pipeline.dataset]
        if validation_split and rows >= 4:
            trainer = fitpipe.Trainer(_model(columns))
            trainer.compile(optimizer="sgd", loss="mse")
            trainer.fit(
                path,
                schema=schema,
                batch_size=batch_size,
                epochs=1,
                verbose=0,
                validation_split=validation_split,
                shuffle=shuffle,
            )
    assert sorted(np.concatenate(delivered).tolist()) == list(range(rows))
    assert seen, "the reader yielded nothing through Dataset.from_generator"
    for item in seen:
        for leaf in tf.nest.flatten(item):
            if isinstance(leaf, np.ndarray):
                assert _aligned(leaf), (leaf.dtype, leaf.shape, leaf.ctypes.data % ALIGNMENT)


def _model(columns: int) -> keras.Model:
    shape = () if columns == 1 else (columns,)
    inputs = keras.Input(shape)
    hidden = keras.layers.Reshape((1,))(inputs) if columns == 1 else inputs
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))
