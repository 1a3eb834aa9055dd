"""Plans of Parquet sources for the Parquet adapter: made here, or by the chief and shared.

Under a multi-worker strategy (``AdaptRequest.share``) the chief alone checks the paths and
reads the footers; the other workers rebuild its plan from the bytes it shares
(:func:`~fitpipe.columnar.plan_bytes`, :func:`~fitpipe.columnar.plan_from_bytes`), reading
no footer, or raise its error.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow.dataset as pads

from fitpipe import limits
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
from fitpipe.schemas import Schema

__all__ = ["SHUFFLE_BUFFER_BATCHES", "key_column", "planned", "shuffle_buffer_rows"]

#: Batches the shuffle buffer mixes at least, however wide the rows.
SHUFFLE_BUFFER_BATCHES = 4


def shuffle_buffer_rows(row_bytes: float, group_rows: int, batch_size: int, most: int) -> int:
    """Rows the shuffle buffer mixes at once: bounded in bytes, not only in rows.

    ``most`` rows (the Parquet adapter's ``SHUFFLE_BUFFER_ROWS``), fewer where they take more
    than half of ``limits.RESIDENT_BYTES_LIMIT`` converted (65,536 rows of 3,000 float32 columns are
    750 MiB, more than the whole file held), but at least the largest row group (read whole
    anyway) and :data:`SHUFFLE_BUFFER_BATCHES` batches. Rows of no fixed width (text,
    ragged lists: ``row_bytes`` infinite) are counted in rows only.
    """
    if not math.isfinite(row_bytes) or row_bytes <= 0:
        return most
    by_bytes = int(limits.RESIDENT_BYTES_LIMIT // 2 // row_bytes)
    least = max(group_rows, SHUFFLE_BUFFER_BATCHES * batch_size, 1)
    return max(min(most, by_bytes), min(least, most))


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
        # A missing path before a missing schema; with a schema, planning expands the paths
        # first (once) and raises the same error.
        if not isinstance(x, pads.Dataset) and not isinstance(request.schema, Schema):
            existing_paths(x, caller)
        schema = require_schema(request, what)
        return plan_source(
            x,
            schema,
            caller,
            mode,
            name,
            written=request.chunks,
            table=table,
            resolved=request.resolved_schema,
        )

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
