"""SciPy sparse matrices/arrays (every format) and JAX BCOO arrays: sparse batches, never dense."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.testing import epoch_batches

sp = pytest.importorskip("scipy.sparse")

FORMATS = [
    "csr_matrix",
    "csc_matrix",
    "coo_matrix",
    "lil_matrix",
    "dok_matrix",
    "bsr_matrix",
    "dia_matrix",
    "csr_array",
    "csc_array",
    "coo_array",
]


def dense_rows(batches: list[Any], part: int = 0) -> np.ndarray:
    return np.concatenate([np.asarray(b[part]) for b in batches])


@st.composite
def sparse_matrices(draw: st.DrawFn) -> tuple[np.ndarray, Any]:
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    mask = draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols))
    dense = np.arange(1, rows * cols + 1, dtype="float32").reshape(rows, cols)
    dense[~np.asarray(mask).reshape(rows, cols)] = 0.0
    return dense, getattr(sp, draw(st.sampled_from(FORMATS)))(dense)


@given(sparse_matrices(), st.integers(1, 5), st.booleans())
def test_every_format_batches_its_rows_as_sparse_tensors(
    case: tuple[np.ndarray, Any], batch_size: int, shuffle: bool
) -> None:
    dense, matrix = case
    labels = np.arange(len(dense), dtype="int64")
    pipeline = fitpipe.adapt(matrix, labels, batch_size=batch_size, shuffle=shuffle)
    assert pipeline.adapter == "sparse"
    assert isinstance(pipeline.element_spec[0], tf.SparseTensorSpec)
    batches = epoch_batches(pipeline)
    order = dense_rows(batches, 1)
    np.testing.assert_array_equal(dense_rows(batches), dense[order])
    assert sorted(order) == list(range(len(dense)))


@pytest.mark.parametrize("form", FORMATS)
def test_each_format_alone_and_in_a_dict(form: str) -> None:
    # A DOK matrix is also a dict: it must still be taken as one sparse array.
    dense = np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]], "float32")
    matrix = getattr(sp, form)(dense)
    for x in (matrix, {"a": matrix}):
        (batch,) = epoch_batches(fitpipe.adapt(x))
        np.testing.assert_array_equal(batch[0] if x is matrix else batch[0]["a"], dense)


def test_sparse_leaves_inside_structures_and_as_targets() -> None:
    dense = np.eye(5, dtype="float32")
    x = {"a": sp.csr_matrix(dense), "b": [sp.coo_array(dense * 2), dense]}
    pipeline = fitpipe.adapt(x, sp.csc_matrix(dense[:, :2]), batch_size=2)
    spec = pipeline.element_spec
    assert isinstance(spec[0]["a"], tf.SparseTensorSpec)
    assert isinstance(spec[0]["b"][0], tf.SparseTensorSpec)
    assert isinstance(spec[1], tf.SparseTensorSpec)
    batches = epoch_batches(pipeline)
    np.testing.assert_array_equal(np.concatenate([b[0]["b"][0] for b in batches]), dense * 2)
    np.testing.assert_array_equal(dense_rows(batches, 1), dense[:, :2])


def test_duplicate_entries_are_summed_and_the_input_is_not_changed() -> None:
    matrix = sp.coo_matrix(([1.0, 2.0, 5.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    (batch,) = epoch_batches(fitpipe.adapt(matrix))
    np.testing.assert_array_equal(batch[0], [[0.0, 3.0], [5.0, 0.0]])
    assert matrix.nnz == 3  # the user's matrix keeps its duplicates


def test_complex_sparse_data_is_a_type_error_naming_the_dtype() -> None:
    matrix = sp.csr_matrix(np.eye(3, dtype="complex64"))
    with pytest.raises(TypeError, match=r"^`adapt` cannot use the sparse `x` of dtype complex64"):
        fitpipe.adapt(matrix)
    with pytest.raises(TypeError, match=r"cannot use the sparse `x\['a'\]` of dtype complex64"):
        fitpipe.adapt({"a": matrix})


def test_rows_of_sparse_and_dense_leaves_must_agree() -> None:
    with pytest.raises(ValueError, match=r"different numbers of samples.*x sizes: 4"):
        fitpipe.adapt(sp.csr_matrix(np.eye(4)), np.zeros(3))


def test_jax_bcoo_layouts_and_padding_become_the_same_rows() -> None:
    jsparse = pytest.importorskip("jax.experimental.sparse")
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(7, 3)).astype("float32")
    dense[dense < 0.2] = 0.0
    rows, cols = np.nonzero(dense)
    indices = np.stack([rows, cols], axis=1)
    plain = jsparse.BCOO((dense[rows, cols], indices), shape=dense.shape)
    # Padding entries (as BCOO.sum_duplicates leaves them) point one past the end.
    pad = np.full((3, 2), dense.shape, dtype=indices.dtype)
    values = np.concatenate([dense[rows, cols], np.ones(3, "float32")])
    padded = jsparse.BCOO((values, np.concatenate([indices, pad])), shape=dense.shape)
    batched = jsparse.BCOO.fromdense(dense, n_batch=1)
    for bcoo in (plain, padded, batched):
        pipeline = fitpipe.adapt(bcoo, batch_size=3)
        assert pipeline.adapter == "sparse"
        assert isinstance(pipeline.element_spec[0], tf.SparseTensorSpec)
        np.testing.assert_array_equal(dense_rows(epoch_batches(pipeline)), dense)


def test_dense_jax_arrays_are_arrays() -> None:
    jnp = pytest.importorskip("jax.numpy")
    data = np.arange(12, dtype="float32").reshape(6, 2)
    pipeline = fitpipe.adapt(jnp.asarray(data), {"t": jnp.arange(6)}, batch_size=4)
    assert pipeline.adapter == "numpy"
    np.testing.assert_array_equal(dense_rows(epoch_batches(pipeline)), data)
