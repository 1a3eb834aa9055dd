"""pandas ``DataFrame`` and ``Series``, read as array-likes through ``to_numpy()``.

With ``schema=``, a DataFrame is read by column roles instead, through Arrow (as a
``pyarrow.Table``). Registered lazily: this module is imported only when a pandas object is
passed, so pandas stays an optional dependency.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fitpipe.adapters.arrays import ARRAY_FAMILY_SUPPORTS, ArrayFamilyAdapter
from fitpipe.adapters.arrow_tables import (
    TABLE_SUPPORTS,
    frame_table,
    require_schema,
    table_chunks,
    table_source,
)
from fitpipe.adapters.base import AdaptRequest, ArraySource
from fitpipe.adapters.capabilities import SourceBase
from fitpipe.adapters.split_keys import row_keys


class PandasAdapter(ArrayFamilyAdapter):
    """Takes a pandas ``DataFrame`` (one 2-D input, or columns by ``schema``) or ``Series``.

    What it honours depends on the request (:meth:`supports_for`): a DataFrame read by
    ``schema`` names its targets and weights there, as an Arrow table does.
    """

    name = "pandas"
    accepts = "a pandas DataFrame or Series"
    supports = ARRAY_FAMILY_SUPPORTS | TABLE_SUPPORTS

    def can_adapt(self, x: Any) -> bool:
        """True for DataFrames and Series."""
        return isinstance(x, (pd.DataFrame, pd.Series))

    def supports_for(self, request: AdaptRequest) -> frozenset[str]:
        """A DataFrame with ``schema``: an Arrow table's arguments (no ``y``, no weights).

        Else an array's: a Series is one array, which no schema selects columns of.
        """
        if request.schema is not None and isinstance(request.x, pd.DataFrame):
            return TABLE_SUPPORTS
        return ARRAY_FAMILY_SUPPORTS

    def adapt(self, request: AdaptRequest) -> ArraySource | SourceBase:
        """Converts the frame as an array, or by column roles when a schema is given."""
        if "schema" in self.supports_for(request) and request.schema is not None:
            schema = require_schema(request, "a pandas.DataFrame")
            table = frame_table(request.x, schema, request.caller, request.mode)
            if request.chunks:
                return table_chunks(table, request, type(table).__name__)
            keys = None
            if request.split_by is not None:  # read for the split only, used by no role
                keys = row_keys(request)[1]
            return table_source(table, request, "pandas.DataFrame", keys=keys)
        return super().adapt(request)
