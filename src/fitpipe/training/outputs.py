"""Predictions written to Parquet, chunk by chunk, with passthrough columns alongside.

Rows are read in order in chunks (a table slice, a row group, a stream batch), predicted and
appended as one row group each, so memory stays at about one chunk. The file appears at the
output path only when complete: a crash or a kill leaves no partial file (see
:func:`write_atomically`).
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
from fitpipe.schemas import Role, Schema, SchemaLike, as_schema
from fitpipe.schemas.arrow_types import checked_schema

__all__ = ["chunks_of", "output_table", "predict_to_file", "write_atomically"]

CHUNK_ROWS = 65536
_COLUMNAR = {"arrow", "arrow-stream", "parquet"}


def _table_chunks(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, CHUNK_ROWS):
        yield table.slice(start, CHUNK_ROWS)


def _arrow_tables(x: Any, schema: Schema, caller: str) -> Iterator[tuple[str, pa.Table, Schema]]:
    """Yields ``(source, table, schema)`` chunks; the schema resolved against the data."""
    roles = (Role.FEATURE, Role.PASSTHROUGH)
    if isinstance(x, pa.RecordBatchReader):
        resolved = checked_schema(schema, x.schema, "the RecordBatchReader", roles, caller)
        for batch in x:
            yield "the RecordBatchReader", pa.Table.from_batches([batch]), resolved
        return
    if isinstance(x, (pa.Table, pa.RecordBatch)) or hasattr(type(x), "__arrow_c_stream__"):
        table = x if isinstance(x, pa.Table) else pa.table(x)
        resolved = checked_schema(schema, table.schema, type(x).__name__, roles, caller)
        for chunk in _table_chunks(table):
            yield type(x).__name__, chunk, resolved
        return
    plan = plan_source(x, schema, caller)
    for piece in plan.pieces:
        for part in piece.read(plan.schema.columns(roles)):
            table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
            yield piece.source, table, plan.schema


def chunks_of(
    x: Any, schema: SchemaLike | None, caller: str
) -> Iterator[tuple[Any, pa.Table | None]]:
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
    schema = as_schema(schema, caller)
    if schema is None:
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
    for source, table, resolved in _arrow_tables(x, schema, caller):
        features, _, _ = table_roles(table, resolved, source, first, caller, targets=False)
        first += table.num_rows
        yield features, table.select(list(resolved.passthrough))


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


def _open_unnamed(folder: str) -> int | None:
    """A file with no name in ``folder`` (Linux ``O_TMPFILE``), or None where unsupported.

    A process killed while writing it leaves nothing behind: the file only gets a name once
    complete.
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o644)
    except OSError:
        return None


def _remove_stale(folder: str, name: str) -> None:
    """Removes partial files of ``name`` left by writers that were killed."""
    prefix, suffix = f".{name}.", ".partial"
    for entry in os.listdir(folder):
        pid = entry[len(prefix) : -len(suffix)]
        if not (entry.startswith(prefix) and entry.endswith(suffix) and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, entry))
        except OSError:
            continue


def _publish(fd: int, final: str, partial: str) -> None:
    """Gives the complete unnamed file ``fd`` its name, replacing any file already there."""
    source = f"/proc/self/fd/{fd}"
    folder = os.open(os.path.dirname(final), os.O_RDONLY)
    try:  # a directory fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which follows /proc
        try:
            os.link(source, os.path.basename(final), dst_dir_fd=folder)
        except FileExistsError:
            os.link(source, os.path.basename(partial), dst_dir_fd=folder)
            os.replace(partial, final)
    finally:
        os.close(folder)


def _write_tables(
    where: Any, tables: Iterator[pa.Table], progress: Callable[[int], None], final: str
) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(where, table.schema)
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
    finally:
        if writer is not None:
            writer.close()


def write_atomically(
    path: str | os.PathLike[str], tables: Iterator[pa.Table], progress: Callable[[int], None]
) -> str:
    """Writes tables as row groups of one Parquet file that appears only when complete.

    On Linux the file is written with no name (``O_TMPFILE``) and linked into place at the
    end, so even a killed process leaves no partial file. Elsewhere it is written under a
    temporary name and renamed; partial files of killed writers are removed by the next write.
    """
    final = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(final))
    partial = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    _remove_stale(folder, name)
    fd = _open_unnamed(folder)
    try:
        if fd is not None:
            with os.fdopen(fd, "wb", closefd=False) as file:
                _write_tables(file, tables, progress, final)
                file.flush()
            _publish(fd, final, partial)
        else:
            _write_tables(partial, tables, progress, final)
            os.replace(partial, final)
    finally:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return final


def predict_to_file(
    model: keras.Model,
    predict_chunk: Callable[[Any], Any],
    x: Any,
    schema: SchemaLike | None,
    output: str | os.PathLike[str],
    verbose: Any,
) -> str:
    """Predicts ``x`` chunk by chunk into the Parquet file ``output``, with a row progress bar.

    Args:
        model: The model (names the output columns).
        predict_chunk: Returns the model's outputs for one chunk of features.
        x: The input (arrays, Arrow data or Parquet).
        schema: Its schema, for columnar inputs.
        output: The Parquet file to write.
        verbose: 0 for no progress bar.

    Returns:
        The path written.
    """
    bar = keras.utils.Progbar(None, unit_name="row") if verbose not in (0, "0") else None
    written = [0]

    def progress(rows: int) -> None:
        # Draws the rows before this chunk: the last count is drawn once, by the final update
        # (Keras' bar would draw it twice when the chunk ends 0.05 s after the last redraw).
        if bar is not None and written[0]:
            bar.update(written[0])
        written[0] += rows

    def tables() -> Iterator[pa.Table]:
        for features, passthrough in chunks_of(x, schema, "predict"):
            yield output_table(model, predict_chunk(features), passthrough)

    path = write_atomically(output, tables(), progress)
    if bar is not None:
        bar.update(written[0], finalize=True)
    return path
