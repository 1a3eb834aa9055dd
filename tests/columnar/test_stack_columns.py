"""``stack_columns``: columns stacked into rows (by NumPy in blocks of rows, or by TensorFlow
from :data:`WIDE_COLUMNS` columns on) give ``np.stack``'s array."""

from __future__ import annotations

import gc
import mmap
import tracemalloc
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fitpipe.columnar import convert, table_roles
from fitpipe.columnar.convert import (
    ALIGNMENT,
    WIDE_COLUMNS,
    aligned_empty,
    as_tensor,
    backing_tensor,
    join_rows,
    owned_tensor,
    stack_columns,
    take_rows_into,
)
from fitpipe.schemas import Schema
from fitpipe.testing.strategies import numpy_text

DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.str_])


def _owner(array: np.ndarray) -> object:
    """What holds an array's memory (the first base that is not an array)."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


@st.composite
def columns(draw: st.DrawFn) -> list[np.ndarray]:
    """Columns of one shape: (rows,) or (rows, k) for fixed-size lists; mixed dtypes.

    1-12 columns (NumPy stacks them) or from :data:`WIDE_COLUMNS` on (TensorFlow does).
    """
    rows = draw(st.integers(0, 70))
    shape = (rows,) if draw(st.booleans()) else (rows, draw(st.integers(1, 3)))
    numeric = draw(st.booleans())
    count = draw(st.integers(1, 12) | st.integers(WIDE_COLUMNS, WIDE_COLUMNS + 8))
    kinds = [draw(DTYPES.filter(lambda d: (d is not np.str_) == numeric)) for _ in range(count)]
    return [draw(hnp.arrays(kind, shape)) for kind in kinds]


@given(
    parts=columns(),
    block_rows=st.one_of(st.none(), st.integers(1, 80)),
    transposed_bytes=st.sampled_from([1, 100, 1000, convert.TRANSPOSE_BLOCK_BYTES]),
)
def test_blocks_of_any_size_give_np_stack_s_array(
    parts: list[np.ndarray], block_rows, transposed_bytes: int
) -> None:
    expected = np.stack(parts, axis=-1)
    with mock.patch.object(convert, "TRANSPOSE_BLOCK_BYTES", transposed_bytes):
        stacked = stack_columns(parts, block_rows)
    assert stacked.dtype == expected.dtype
    assert stacked.shape == expected.shape
    np.testing.assert_array_equal(stacked, expected)


@pytest.mark.parametrize("block_rows", [None, 1024])  # by TensorFlow; by NumPy, 5 blocks
def test_a_wide_table_is_stacked_whole_and_matches(block_rows: int | None) -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(5000, dtype=np.float32) for _ in range(300)]  # 1,200 B a row
    stacked = stack_columns(parts, block_rows)
    np.testing.assert_array_equal(stacked, np.stack(parts, axis=-1))
    assert (backing_tensor(stacked) is not None) is (block_rows is None)


def test_columns_stacked_by_tensorflow_reach_it_without_a_copy() -> None:
    parts = [np.full(100, i, np.int32) for i in range(WIDE_COLUMNS)]
    stacked = stack_columns(parts)
    tensor = backing_tensor(stacked)
    assert tensor is not None and as_tensor(stacked) is tensor
    assert not stacked.flags.writeable  # the tensor's memory: never written through NumPy
    assert np.shares_memory(stacked, np.asarray(tensor))
    np.testing.assert_array_equal(tensor, np.stack(parts, axis=-1))
    assert backing_tensor(stacked[1:]) is None  # a view of it is not the whole tensor
    assert isinstance(as_tensor(stacked[1:]), tf.Tensor)


@pytest.mark.parametrize(
    "dtype",
    [np.bool_, np.float16, np.float64, np.uint8, np.uint16, np.uint64, np.int8, np.int16],
)
@pytest.mark.parametrize("shape", [(7,), (5, 3)])
def test_every_numeric_dtype_stacks_through_tensorflow_as_np_stack(dtype, shape) -> None:
    rng = np.random.default_rng(1)
    parts = [(rng.random(shape) * 100).astype(dtype) for _ in range(WIDE_COLUMNS)]
    stacked = stack_columns(parts)
    assert backing_tensor(stacked) is not None  # TensorFlow's path, not NumPy's
    assert stacked.dtype == dtype and stacked.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(stacked, np.stack(parts, axis=-1))


def test_a_wide_table_is_transposed_a_block_at_a_time_into_fitpipe_s_memory() -> None:
    # Transposed whole, every read of a wide table took a new region of TensorFlow's
    # allocator as large as the table (faulted in again: 0.5 s a fit for 128 MiB).
    rng = np.random.default_rng(2)
    parts = [rng.standard_normal(4096, dtype=np.float32) for _ in range(WIDE_COLUMNS)]  # 1 MiB
    tf.config.experimental.reset_memory_stats("CPU:0")
    with mock.patch.object(convert, "TRANSPOSE_BLOCK_BYTES", 64 << 10):
        stacked = stack_columns(parts)
    assert tf.config.experimental.get_memory_info("CPU:0")["peak"] <= 64 << 10
    assert backing_tensor(stacked) is not None  # held as it is, without a copy
    np.testing.assert_array_equal(stacked, np.stack(parts, axis=-1))


def test_an_array_stacked_by_tensorflow_lets_its_tensor_go_with_it() -> None:
    parts = [np.zeros(10, np.float32) for _ in range(WIDE_COLUMNS)]
    stacked = stack_columns(parts)
    key = id(stacked)
    assert backing_tensor(stacked) is not None
    del stacked
    gc.collect()
    assert key not in convert._BACKING


@pytest.mark.parametrize("lengths", [(5, 3), (3, 5), (3000, 2999)])
def test_columns_of_different_lengths_raise_as_np_stack_does(lengths: tuple[int, int]) -> None:
    parts = [np.zeros(n) for n in lengths]
    with pytest.raises(ValueError, match="same shape"):
        np.stack(parts, axis=-1)
    with pytest.raises(ValueError, match="same shape"):
        stack_columns(parts, block_rows=1024)


def test_table_roles_stacks_feature_columns_in_order() -> None:
    table = pa.table({"b": [1.0, 2.0, 3.0], "a": [4.0, 5.0, 6.0], "y": [0, 1, 0]})
    x, _, _ = table_roles(table, Schema(features=["b", "a"], targets="y"), "t")
    np.testing.assert_array_equal(x, [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
    dtype=st.sampled_from([np.float32, np.float64, np.int8, np.int64, np.bool_, np.float16]),
)
@pytest.mark.parametrize("mapped", [False, True])
def test_aligned_empty_starts_at_64_bytes(shape: tuple[int, ...], dtype, mapped: bool) -> None:
    # mapped: every buffer of a byte or more is an mmap, as large ones are
    with mock.patch.object(convert, "MAPPED_BYTES", 0 if mapped else convert.MAPPED_BYTES):
        array = aligned_empty(shape, dtype)
    assert isinstance(_owner(array), mmap.mmap) == (mapped and array.nbytes > 0)
    assert array.shape == shape and array.dtype == dtype
    assert array.ctypes.data % ALIGNMENT == 0
    assert array.flags["C_CONTIGUOUS"] and array.flags["WRITEABLE"]
    array[...] = 1  # the whole buffer is the array's own
    assert array.sum() == array.size


@given(parts=columns())
def test_stacked_columns_are_aligned_for_tensorflow(parts: list[np.ndarray]) -> None:
    stacked = stack_columns(parts)
    if stacked.size and stacked.dtype.kind in "biuf":
        assert stacked.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_large_buffers_are_mapped_aligned_and_shared_with_tensorflow(extra: int) -> None:
    count = (convert.MAPPED_BYTES + extra * 4) // 4
    array = aligned_empty((count,), np.float32)
    assert isinstance(_owner(array), mmap.mmap) == (count * 4 >= convert.MAPPED_BYTES)
    assert array.ctypes.data % ALIGNMENT == 0 and array.flags["WRITEABLE"]
    array[...] = np.arange(count, dtype=np.float32)
    tensor = as_tensor(array)
    array[0] = -1.0  # aligned and writable: TensorFlow holds the same memory
    assert float(tensor[0]) == -1.0 and float(tensor[-1]) == count - 1


@st.composite
def row_parts(draw: st.DrawFn) -> list[np.ndarray]:
    """1-4 arrays of one dtype and trailing shape, 0-6 rows each."""
    dtype = draw(DTYPES)
    trailing = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    counts = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
    return [
        draw(hnp.arrays(dtype, (count, *trailing), elements=_elements(dtype))) for count in counts
    ]


def _elements(dtype: type) -> st.SearchStrategy:
    if dtype is np.str_:
        return numpy_text(max_size=3)
    if np.dtype(dtype).kind == "f":
        return st.floats(width=np.dtype(dtype).itemsize * 8, allow_nan=False)
    return hnp.from_dtype(np.dtype(dtype))


@given(parts=row_parts(), mapped=st.booleans())
def test_joined_rows_are_np_concatenate_in_aligned_memory(
    parts: list[np.ndarray], mapped: bool
) -> None:
    # Predictions of several calls and blocks of batches are joined this way: the values,
    # dtype and shape of np.concatenate, in a buffer of fitpipe's (mapped when large).
    with mock.patch.object(convert, "MAPPED_BYTES", 0 if mapped else convert.MAPPED_BYTES):
        joined = join_rows(parts)
    expected = np.concatenate(parts)
    assert joined.dtype == expected.dtype and joined.shape == expected.shape
    np.testing.assert_array_equal(joined, expected)
    if joined.nbytes and joined.dtype.kind != "U":
        assert joined.ctypes.data % ALIGNMENT == 0
        assert isinstance(_owner(joined), mmap.mmap) == mapped


@pytest.mark.parametrize(
    "parts",
    [
        [np.zeros((2, 3)), np.zeros((2, 4))],
        [np.zeros(()), np.zeros(())],
        [np.zeros((2, 3)), np.zeros((2,))],
    ],
    ids=["trailing-shapes", "scalars", "ranks"],
)
def test_rows_numpy_cannot_join_raise_numpys_error(parts: list[np.ndarray]) -> None:
    with pytest.raises(ValueError) as ours:
        join_rows(parts)
    with pytest.raises(ValueError) as numpys:
        np.concatenate(parts)
    assert str(ours.value) == str(numpys.value)


@given(
    array=hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.complex64]),
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
    ),
    mapped=st.booleans(),
)
def test_an_owned_tensor_is_a_copy_the_caller_cannot_change(
    array: np.ndarray, mapped: bool
) -> None:
    expected = array.copy()
    with mock.patch.object(convert, "MAPPED_BYTES", 0 if mapped else convert.MAPPED_BYTES):
        tensor = owned_tensor(array)
    assert tensor.dtype == tf.as_dtype(array.dtype) and tuple(tensor.shape) == array.shape
    array[...] = 0 if array.dtype != np.bool_ else ~array
    np.testing.assert_array_equal(tensor.numpy(), expected)


def test_an_owned_tensor_of_text_is_tensorflows() -> None:
    tensor = owned_tensor(np.array(["a", "bc"]))
    assert tensor.dtype == tf.string and tensor.numpy().tolist() == [b"a", b"bc"]


@given(
    array=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6)),
    data=st.data(),
)
def test_rows_taken_into_aligned_memory_are_np_take(array: np.ndarray, data: st.DataObject) -> None:
    rows = data.draw(
        hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(-len(array), len(array) - 1))
    )
    taken = take_rows_into(array, rows)
    np.testing.assert_array_equal(taken, np.take(array, rows, axis=0))
    assert taken.dtype == array.dtype
    if taken.nbytes and taken.dtype.kind != "U":
        assert taken.ctypes.data % ALIGNMENT == 0


@given(
    layout=st.sampled_from(["fortran", "columns", "rows", "reversed", "contiguous"]),
    dtype=st.sampled_from(["float32", "float64", "int64", ">f4"]),
    taken=st.integers(0, 64),
    seed=st.integers(0, 2**16),
)
def test_rows_of_any_layout_are_taken_without_copying_the_whole_source(
    layout: str, dtype: str, taken: int, seed: int
) -> None:
    """``np.take`` copies a non-contiguous source whole before it gathers (for every block of a
    shuffled epoch); the rows must cost memory of their own size only."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(20_000, 16)).astype(dtype)
    source = {
        "fortran": np.asfortranarray(base),
        "columns": base[:, ::2],
        "rows": base[::2],
        "reversed": base[::-1],
        "contiguous": base,
    }[layout]
    rows = rng.integers(-len(source), len(source), taken)
    tracemalloc.start()
    try:
        result = take_rows_into(source, rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(result, source[rows])
    assert result.flags.c_contiguous and result.dtype == source.dtype
    assert peak <= 3 * result.nbytes + 64 * 1024 < source.nbytes // 4, (peak, source.nbytes)


@pytest.mark.parametrize("row", [-4, 3, 100])
def test_rows_out_of_range_are_an_index_error_not_clipped(row: int) -> None:
    with pytest.raises(IndexError, match="out of range"):
        take_rows_into(np.zeros((3, 2)), np.array([0, row]))
