"""Predictions written to Parquet, chunk by chunk, with passthrough columns alongside.

Rows are read in order in chunks (a table slice, a row group, a stream batch), predicted and
appended as one row group each, so memory stays at about one chunk. The file appears at the
output path only when complete: a crash or a kill leaves no partial file (see
:func:`write_atomically`).
"""

from __future__ import annotations

import contextlib
import itertools
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
from fitpipe.adapters.arrow_tables import frame_table
from fitpipe.adapters.parquet import plan_source
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message
from fitpipe.schemas import Mode, Schema, SchemaLike, as_schema
from fitpipe.schemas.arrow_types import checked_schema

__all__ = [
    "check_names",
    "check_output",
    "chunks_of",
    "output_table",
    "planned_names",
    "predict_to_file",
    "write_atomically",
]

CHUNK_ROWS = 65536
_COLUMNAR = {"arrow", "arrow-stream", "parquet"}


def _table_chunks(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, CHUNK_ROWS):
        yield table.slice(start, CHUNK_ROWS)


def _arrow_tables(x: Any, schema: Schema, caller: str) -> Iterator[tuple[str, pa.Table, Schema]]:
    """Yields ``(source, table, schema)`` chunks; the schema resolved against the data."""
    roles = Mode.PREDICT.roles
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
    plan = plan_source(x, schema, caller, Mode.PREDICT)
    for piece in plan.pieces:
        for part in piece.read(plan.schema.columns(roles)):
            table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
            yield piece.source, table, plan.schema


def _row_slice(structure: Any, start: int, stop: int) -> Any:
    def cut(leaf: Any) -> Any:
        if isinstance(leaf, tf.SparseTensor):
            size = [min(stop, int(leaf.dense_shape[0])) - start, *leaf.dense_shape[1:]]
            return tf.sparse.slice(leaf, [start] + [0] * (leaf.shape.rank - 1), size)
        return leaf[start:stop]

    return tf.nest.map_structure(cut, structure)


def chunks_of(
    x: Any, schema: SchemaLike | None, caller: str
) -> Iterator[tuple[Any, pa.Table | None]]:
    """Yields ``(features, passthrough)`` chunks of a prediction input, in row order."""
    adapter = registry.find(x, caller)
    schema = as_schema(schema, caller)
    if adapter.name == "pandas" and isinstance(schema, Schema) and hasattr(x, "columns"):
        x, adapter = frame_table(x, schema, caller, Mode.PREDICT), registry["arrow"]
    if adapter.name not in _COLUMNAR:
        rows = adapter.adapt(AdaptRequest(x=x, caller=caller, mode=Mode.PREDICT))
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
        for start in range(0, rows.num_samples, CHUNK_ROWS):
            yield _row_slice(rows.x, start, start + CHUNK_ROWS), None
        return
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
    if passthrough is None or passthrough.num_columns == 0:
        return pa.table(columns)
    # The input's schema metadata (pandas' column list, ...) describes the input, not this file.
    table = passthrough.replace_schema_metadata(None)
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


def _no_rows(output: Any) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            "predict",
            "got no rows to predict",
            "The input has at least one row",
            "Check the input",
            output=output,
        )
    )


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
            raise _no_rows(final)
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
    target = os.path.abspath(final)  # a bare file name is in the current directory
    folder, name = os.path.split(target)
    partial = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    _remove_stale(folder, name)
    fd = _open_unnamed(folder)
    try:
        if fd is not None:
            with os.fdopen(fd, "wb", closefd=False) as file:
                _write_tables(file, tables, progress, final)
                file.flush()
            _publish(fd, target, partial)
        else:
            _write_tables(partial, tables, progress, final)
            os.replace(partial, final)
    finally:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return final


def _output_error(what: str, fix: str, output: Any) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            "predict",
            what,
            "`output` is the path of a Parquet file to create or replace, in an existing "
            "folder that can be written",
            fix,
            output=output,
        )
    )


def check_output(output: Any) -> str:
    """Checks ``output`` before anything is read or predicted; returns it as an absolute path.

    Raises:
        FitpipeTypeError: ``output`` is not a path.
        FitpipeValueError: It is a folder, or its folder is missing or cannot be written.
    """
    if not isinstance(output, (str, os.PathLike)) or not isinstance(os.fspath(output), str):
        raise FitpipeTypeError(
            message(
                "predict",
                "got an `output` that is not a path",
                "`output` is the path of the Parquet file to write, as a str or os.PathLike",
                'Pass e.g. `output="predictions.parquet"`',
                output=output,
            )
        )
    target = os.path.abspath(os.fspath(output))
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise _output_error(
            f"got an `output` that is a folder ({target})",
            'Name a file in it, e.g. `output="predictions/part-0.parquet"`',
            output,
        )
    if not os.path.isdir(folder):
        raise _output_error(
            f"cannot write into {folder}: no such folder",
            "Create the folder first, or fix the path",
            output,
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _output_error(
            f"cannot write into {folder}: permission denied",
            "Choose a folder you can write to",
            output,
        )
    return target


def planned_names(model: keras.Model, features: Any) -> list[str] | None:
    """The output column names, from the model's symbolic outputs (None where unknown)."""
    try:
        inputs = tf.nest.map_structure(
            lambda leaf: keras.KerasTensor((None, *leaf.shape[1:]), dtype=str(leaf.dtype)),
            features,
        )
        return _output_names(model, model.compute_output_spec(inputs))
    except Exception:  # a model the symbolic call fails for is checked after its first chunk
        return None


def check_names(names: list[str], passthrough: list[str]) -> None:
    """Refuses an output file whose columns would not have one name each."""
    seen: set[str] = set()
    for name in [*passthrough, *names]:
        if name not in seen:
            seen.add(name)
            continue
        kind = "a model output" if name in names else "the passthrough list"
        raise FitpipeValueError(
            message(
                "predict",
                f"cannot write two columns named {name!r} to `output`: {kind} and a "
                "passthrough column have that name",
                "Each column of the output file has its own name: passthrough columns "
                f"{passthrough}, then the model outputs {names}",
                "Rename the model output (its layer name, or its key in the model's output "
                "dict), or leave the column out of `passthrough`",
                passthrough=passthrough,
            )
        )


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

    check_output(output)
    chunks = chunks_of(x, schema, "predict")
    first = next(chunks, None)
    if first is None:
        raise _no_rows(output)
    passthrough = first[1].column_names if first[1] is not None else []
    names = planned_names(model, first[0])
    if names is not None:
        check_names(names, passthrough)

    def tables() -> Iterator[pa.Table]:
        for features, columns in itertools.chain([first], chunks):
            outputs = predict_chunk(features)
            if names is None:  # the symbolic call failed: check before the first write
                check_names(_output_names(model, outputs), passthrough)
            yield output_table(model, outputs, columns)

    path = write_atomically(output, tables(), progress)
    if bar is not None:
        bar.update(written[0], finalize=True)
    return path
