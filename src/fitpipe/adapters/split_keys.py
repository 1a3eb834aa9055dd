"""Reading the keys of a grouped ``validation_split`` (``split_by``) along with the rows.

``split_by`` names a column (of an Arrow table, of Parquet data, of a pandas DataFrame, or an
entry of a dict of arrays), or is the keys themselves: an array with one key per row, for
rows in memory. A named column is read only for the split: it need not be in the schema, and
a dict's entry or a DataFrame's column named by ``split_by`` is not given to the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from fitpipe.adapters.arrays import is_pandas, is_tf_value
from fitpipe.adapters.base import AdaptRequest
from fitpipe.columnar import key_array, missing_key_column
from fitpipe.errors import DataMismatchError, FitpipeTypeError, message

__all__ = ["check_key_rows", "given_keys", "row_keys", "table_keys"]


def given_keys(split_by: Any, caller: str) -> pa.Array:
    """Keys given as an array (one per row), as an Arrow array of keys."""
    values = split_by.numpy() if is_tf_value(split_by) else split_by
    if getattr(values, "ndim", 1) != 1:
        raise FitpipeTypeError(
            message(
                caller,
                "got `split_by` keys that are not one per row",
                "`split_by` is a column name, or a 1-D array with one key per row",
                "Pass a 1-D array of ids, e.g. `df['user_id'].to_numpy()`",
                split_by=split_by,
            )
        )
    return key_array(values, "the `split_by` keys", caller)


def row_keys(request: AdaptRequest) -> tuple[Any, pa.Array | None]:
    """``x`` without the entry or column ``split_by`` names, and the keys (None: not asked).

    Args:
        request: The request of an adapter of rows in memory (arrays, dicts, DataFrames).

    Raises:
        DataMismatchError: When the named entry or column is missing.
        FitpipeTypeError: When ``x`` has no named columns, or the keys are not ids.
    """
    split_by, x, caller = request.split_by, request.x, request.caller
    if split_by is None:
        return x, None
    if not isinstance(split_by, str):
        return x, given_keys(split_by, caller)
    if isinstance(x, Mapping):
        names = [str(k) for k in x]
        if split_by not in x:
            raise missing_key_column(split_by, names, "the dict `x`", caller)
        keys = given_keys(x[split_by], caller)
        return {k: v for k, v in x.items() if k != split_by}, keys
    if is_pandas(x) and getattr(x, "ndim", 1) == 2:
        names = [str(c) for c in x.columns]
        if names.count(split_by) != 1:
            raise missing_key_column(split_by, names, "the pandas.DataFrame", caller)
        keys = key_array(pa.array(x[split_by]), f"column {split_by!r}", caller)
        return x.drop(columns=[split_by]), keys
    raise FitpipeTypeError(
        message(
            caller,
            f"cannot find a column {split_by!r} in `x`: it has no named columns",
            "`split_by` names a column of columnar data, an entry of a dict `x` or a column "
            "of a DataFrame; for other inputs it is the keys themselves, one per row",
            "Pass the keys as an array, e.g. `split_by=user_ids`",
            split_by=split_by,
            x=x,
        )
    )


def table_keys(table: pa.Table, split_by: Any, source: str, caller: str) -> pa.Array:
    """The keys of an in-memory table: its column ``split_by``, or the keys given."""
    if not isinstance(split_by, str):
        return given_keys(split_by, caller)
    if table.column_names.count(split_by) != 1:
        raise missing_key_column(split_by, table.column_names, source, caller)
    return key_array(table.column(split_by), f"column {split_by!r}", caller)


def check_key_rows(keys: pa.Array | None, rows: int, caller: str) -> None:
    """Checks that there is one key per row.

    Raises:
        DataMismatchError: When the counts differ.
    """
    if keys is None or len(keys) == rows:
        return
    raise DataMismatchError(
        message(
            caller,
            f"got {len(keys)} `split_by` keys for {rows} rows",
            "`split_by` holds one key per row of `x`",
            "Pass the keys of the same rows, in the same order",
            split_by=keys.type,
        )
    )
