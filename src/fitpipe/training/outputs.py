"""Predictions written to Parquet, chunk by chunk, with passthrough columns alongside.

Rows are read in order in chunks (a table slice, a row group, a stream batch), predicted and
appended as one row group each, so memory stays at about one chunk. The file is written under
a temporary name in the same folder and renamed into place only when complete: a crash or a
kill leaves no partial file at the output path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from fitpipe.adapters import AdaptRequest, ArraySource, registry
from fitpipe.adapters.arrow_columns import table_roles
from fitpipe.adapters.parquet import plan_source
from fitpipe.errors import FitpipeValueError, message
from fitpipe.schemas import Role, Schema
from fitpipe.schemas.arrow_types import check_arrow_schema

__all__ = ["chunks_of", "output_table", "write_atomically"]

CHUNK_ROWS = 65536
_COLUMNAR = {"arrow", "arrow-stream", "parquet"}


def _table_chunks(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, CHUNK_ROWS):
        yield table.slice(start, CHUNK_ROWS)


def _arrow_tables(x: Any, schema: Schema, caller: str) -> Iterator[tuple[str, pa.Table]]:
    columns = schema.columns((Role.FEATURE, Role.PASSTHROUGH))
    if isinstance(x, pa.RecordBatchReader):
        check_arrow_schema(
            schema, x.schema, "the RecordBatchReader", (Role.FEATURE, Role.PASSTHROUGH), caller
        )
        for batch in x:
            yield "the RecordBatchReader", pa.Table.from_batches([batch])
        return
    if isinstance(x, (pa.Table, pa.RecordBatch)) or hasattr(type(x), "__arrow_c_stream__"):
        table = x if isinstance(x, pa.Table) else pa.table(x)
        check_arrow_schema(
            schema, table.schema, type(x).__name__, (Role.FEATURE, Role.PASSTHROUGH), caller
        )
        for chunk in _table_chunks(table):
            yield type(x).__name__, chunk
        return
    for piece in plan_source(x, schema, caller).pieces:
        for part in piece.read(columns):
            table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
            yield piece.source, table


def chunks_of(x: Any, schema: Schema | None, caller: str) -> Iterator[tuple[Any, pa.Table | None]]:
    """Yields ``(features, passthrough)`` chunks of a prediction input, in row order."""
    adapter = registry.find(x, caller)
    if adapter.name == "pandas" and schema is not None and hasattr(x, "columns"):
        x, adapter = pa.Table.from_pandas(x, preserve_index=False), registry["arrow"]
    if adapter.name not in _COLUMNAR:
        rows = adapter.adapt(AdaptRequest(x=x, caller=caller))
        if not isinstance(rows, ArraySource):
            raise FitpipeValueError(
                message(
                    caller,
                    "cannot write predictions of this input to Parquet",
                    "`output=` takes arrays, Arrow tables, streams and Parquet sources",
                    "Collect the predictions with `predict(x)` and write them yourself",
                    x=x,
                )
            )
        yield rows.x, None
        return
    if not isinstance(schema, Schema):
        raise FitpipeValueError(
            message(
                caller,
                "needs a `schema` to read columnar data",
                "The schema names the feature and passthrough columns",
                "Pass `schema=fitpipe.Schema(...)`",
                schema=schema,
            )
        )
    first = 0
    for source, table in _arrow_tables(x, schema, caller):
        features, _, _ = table_roles(table, schema, source, first, caller, targets=False)
        first += table.num_rows
        yield features, table.select(list(schema.passthrough))


def _output_names(model: keras.Model, outputs: Any) -> list[str]:
    if isinstance(outputs, dict):
        return [str(k) for k in outputs]
    names = list(getattr(model, "output_names", None) or [])
    count = len(tf.nest.flatten(outputs))
    if len(names) == count:
        return names
    return ["prediction"] if count == 1 else [f"prediction_{i}" for i in range(count)]


def _column(values: np.ndarray) -> pa.Array:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


def output_table(model: keras.Model, outputs: Any, passthrough: pa.Table | None) -> pa.Table:
    """Passthrough columns, then one column per model output (vectors as fixed_size_list)."""
    names = _output_names(model, outputs)
    leaves = list(outputs.values()) if isinstance(outputs, dict) else tf.nest.flatten(outputs)
    columns = {name: _column(np.asarray(leaf)) for name, leaf in zip(names, leaves, strict=True)}
    table = passthrough if passthrough is not None else pa.table({})
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table


def write_atomically(
    path: str | os.PathLike[str], tables: Iterator[pa.Table], progress: Callable[[int], None]
) -> str:
    """Writes tables as row groups of one Parquet file, renamed into place when complete."""
    final = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(final))
    partial = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema)
            writer.write_table(table)
            progress(table.num_rows)
        if writer is None:
            raise FitpipeValueError(
                message(
                    "predict",
                    "got no rows to predict",
                    "The input has at least one row",
                    "Check the input",
                    output=final,
                )
            )
        writer.close()
        writer = None
        os.replace(partial, final)
    finally:
        if writer is not None:
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return final
