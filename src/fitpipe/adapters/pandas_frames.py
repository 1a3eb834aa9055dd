"""pandas ``DataFrame`` and ``Series``, read as array-likes through ``to_numpy()``.

Registered lazily: this module is imported only when a pandas object is passed, so pandas
stays an optional dependency.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fitpipe.adapters.arrays import ArrayFamilyAdapter


class PandasAdapter(ArrayFamilyAdapter):
    """Takes a pandas ``DataFrame`` (one 2-D input) or ``Series`` (one 1-D input)."""

    name = "pandas"
    accepts = "a pandas DataFrame or Series"

    def can_adapt(self, x: Any) -> bool:
        """True for DataFrames and Series."""
        return isinstance(x, (pd.DataFrame, pd.Series))
