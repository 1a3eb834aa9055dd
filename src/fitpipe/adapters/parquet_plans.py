"""Plans of Parquet sources for the Parquet adapter: made here, or by the chief and shared.

Under a multi-worker strategy (``AdaptRequest.share``) the chief alone checks the paths and
reads the footers; the other workers rebuild its plan from the bytes it shares
(:func:`~fitpipe.columnar.plan_bytes`, :func:`~fitpipe.columnar.plan_from_bytes`), reading
no footer, or raise its error.
"""

from __future__ import annotations

from typing import Any

import pyarrow.dataset as pads

from fitpipe.adapters.arrow_tables import require_schema
from fitpipe.adapters.base import AdaptRequest
from fitpipe.columnar import (
    ParquetPlan,
    TableColumns,
    existing_paths,
    missing_key_column,
    plan_bytes,
    plan_from_bytes,
    plan_source,
)
from fitpipe.errors import FitpipeTypeError, message

__all__ = ["key_column", "planned"]


def planned(
    request: AdaptRequest,
    x: Any,
    name: str | None,
    what: str,
    table: TableColumns | None = None,
) -> ParquetPlan:
    """The plan of Parquet data ``x``: made here, or by the chief and shared (``request.share``).

    ``table``: where a table format's columns are in its files (see
    :func:`~fitpipe.columnar.plan_source`).

    A missing path is reported before a missing schema. Under ``request.share`` the chief
    alone checks the paths and reads the footers; the other workers rebuild its plan from
    the bytes it shares (:func:`~fitpipe.columnar.plan_bytes`), reading no footer, or raise
    its error.
    """
    caller, mode = request.caller, request.mode

    def plan() -> ParquetPlan:
        if not isinstance(x, pads.Dataset):  # a missing path before a missing schema
            existing_paths(x, caller)
        schema = require_schema(request, what)
        return plan_source(x, schema, caller, mode, name, written=request.chunks, table=table)

    if request.share is None:
        return plan()
    made: list[ParquetPlan] = []  # the chief's own plan: not rebuilt from its bytes

    def chief() -> bytes:
        made.append(plan())
        return plan_bytes(made[0])

    data = request.share(chief)
    if made:
        return made[0]
    return plan_from_bytes(data, x, require_schema(request, what), caller, mode, name, table)


def key_column(request: AdaptRequest, plan: ParquetPlan) -> str | None:
    """The column ``split_by`` names (checked against the data), or None."""
    split_by = request.split_by
    if split_by is None:
        return None
    if not isinstance(split_by, str):
        raise FitpipeTypeError(
            message(
                request.caller,
                "needs `split_by` to name a column for Parquet data",
                "The keys of Parquet rows are read with the rows, from a column",
                "Pass the name of the key column, e.g. `split_by='user_id'`",
                split_by=split_by,
            )
        )
    names = list(plan.arrow_schema.names)
    if names.count(split_by) != 1:
        raise missing_key_column(split_by, names, str(request.x), request.caller)
    return split_by
