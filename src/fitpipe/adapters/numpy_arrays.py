"""NumPy arrays and array-likes (anything ``np.asarray`` takes, nested lists of numbers)."""

from __future__ import annotations

from typing import Any

from fitpipe.adapters.arrays import ArrayFamilyAdapter, is_array_like, is_pandas, is_tf_value
from fitpipe.adapters.sparse import is_sparse_array


class NumpyAdapter(ArrayFamilyAdapter):
    """Takes one NumPy array or array-like as ``x``."""

    name = "numpy"
    accepts = "a NumPy array or array-like (`__array__`, nested lists of numbers)"

    def can_adapt(self, x: Any) -> bool:
        """True for arrays and array-likes that are not tensors, pandas or sparse arrays."""
        return (
            is_array_like(x) and not is_tf_value(x) and not is_pandas(x) and not is_sparse_array(x)
        )
