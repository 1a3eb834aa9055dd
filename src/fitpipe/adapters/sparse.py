"""SciPy sparse matrices and arrays, and JAX BCOO arrays, as ``tf.SparseTensor`` leaves.

Neither library is imported: the objects are recognised by the module of their type and read
through their own attributes (``tocoo()`` for SciPy, ``indices``/``data`` for BCOO). The
entries are copied once into a canonical ``tf.SparseTensor`` (row-major order, duplicates
summed, BCOO padding dropped); the data is never densified, and the pipeline gathers the rows
of each batch from it as from any sparse tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters.numbers import dtype_refusal
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message

__all__ = ["is_jax_sparse", "is_scipy_sparse", "is_sparse_array", "to_sparse_tensor"]


def _module(value: Any) -> str:
    return str(getattr(type(value), "__module__", "") or "")


def is_scipy_sparse(value: Any) -> bool:
    """Tells, without importing SciPy, whether ``value`` is a SciPy sparse matrix or array."""
    return _module(value).startswith("scipy.sparse") and hasattr(value, "tocoo")


def is_jax_sparse(value: Any) -> bool:
    """Tells, without importing JAX, whether ``value`` is a JAX sparse (BCOO) array."""
    return (
        _module(value).startswith("jax.experimental.sparse")
        and hasattr(value, "indices")
        and hasattr(value, "data")
    )


def is_sparse_array(value: Any) -> bool:
    """Tells whether ``value`` is a SciPy sparse matrix/array or a JAX BCOO array."""
    return is_scipy_sparse(value) or is_jax_sparse(value)


def _entries(value: Any, caller: str, path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The (indices, values, shape) of the stored entries, as NumPy arrays."""
    if is_scipy_sparse(value):
        coo = value.tocoo()
        coords = getattr(coo, "coords", None) or (coo.row, coo.col)
        indices = np.stack([np.asarray(c, dtype=np.int64) for c in coords], axis=1)
        return indices, np.asarray(coo.data), tuple(int(d) for d in coo.shape)
    if type(value).__name__ != "BCOO":
        raise FitpipeTypeError(
            message(
                caller,
                f"cannot use the JAX sparse array `{path}` of type {type(value).__name__}",
                "JAX sparse inputs are BCOO arrays",
                "Convert it, e.g. `jax.experimental.sparse.BCOO.from_scipy_sparse(...)` or "
                "`BCOO.fromdense(...)`",
                **{path: value},
            )
        )
    if value.n_batch or value.n_dense:  # batched or dense-block layouts: plain COO first
        value = value.update_layout(n_batch=0, n_dense=0)
    shape = tuple(int(d) for d in value.shape)
    return np.asarray(value.indices, dtype=np.int64), np.asarray(value.data), shape


def _canonical(
    indices: np.ndarray, values: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Drops padding (out-of-bounds entries), sorts row-major and sums duplicates."""
    inside = np.all((indices >= 0) & (indices < np.asarray(shape, dtype=np.int64)), axis=1)
    indices, values = indices[inside], values[inside]
    if not len(values):
        return indices.reshape(0, len(shape)), values
    flat = np.ravel_multi_index(tuple(indices.T), shape)
    unique, inverse = np.unique(flat, return_inverse=True)
    if len(unique) == len(flat):
        order = np.argsort(flat, kind="stable")
        return indices[order], values[order]
    summed = np.zeros(len(unique), dtype=values.dtype)
    np.add.at(summed, inverse, values)
    return np.stack(np.unravel_index(unique, shape), axis=1).astype(np.int64), summed


def to_sparse_tensor(value: Any, caller: str, path: str) -> tf.SparseTensor:
    """Converts a SciPy sparse matrix/array or a JAX BCOO array to a ``tf.SparseTensor``.

    Args:
        value: The sparse array.
        caller: The public method being run.
        path: Where it was found (``"x"``, ``"x['tokens']"``).

    Returns:
        The sparse tensor (canonical order, duplicates summed), never densified.

    Raises:
        FitpipeTypeError: For a dtype that is not numeric or boolean.
        FitpipeValueError: For a sparse scalar (rank 0).

    """
    indices, values, shape = _entries(value, caller, path)
    refusal = dtype_refusal(path, values.dtype, sparse=True)
    if refusal is not None:
        raise FitpipeTypeError(message(caller, *refusal, **{path: value}))
    if not shape:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot batch the sparse scalar `{path}`",
                "Arrays need a first (sample) dimension",
                "Pass a sparse array with one row per sample",
                **{path: value},
            )
        )
    indices, values = _canonical(indices, values, shape)
    return tf.SparseTensor(indices, values, shape)
