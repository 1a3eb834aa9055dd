"""SciPy sparse matrices and arrays (any format) and JAX BCOO arrays, kept sparse.

Registered lazily for objects of the ``scipy`` and ``jax`` packages; neither is imported by
fitpipe. Each sparse leaf becomes a ``tf.SparseTensor`` (see :mod:`fitpipe.adapters.sparse`),
so batches are sparse and the data is never densified.
"""

from __future__ import annotations

from typing import Any

from fitpipe.adapters.arrays import ArrayFamilyAdapter
from fitpipe.adapters.sparse import is_sparse_array


class SparseArrayAdapter(ArrayFamilyAdapter):
    """Takes one SciPy sparse matrix/array or JAX BCOO array as ``x``."""

    name = "sparse"
    accepts = "a SciPy sparse matrix or array (any format) or a JAX BCOO array"

    def can_adapt(self, x: Any) -> bool:
        """True for SciPy sparse matrices/arrays and JAX BCOO arrays."""
        return is_sparse_array(x)
