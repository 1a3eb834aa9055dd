"""Predictions written to Parquet, chunk by chunk, with passthrough columns alongside.

Rows are read in order in chunks (a table slice, a row group, a stream batch), predicted and
appended as one row group each, so memory stays at about one chunk. The file appears at the
output path only when complete: a crash or a kill leaves no partial file (see
:func:`write_atomically`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import tensorflow as tf

from fitpipe.adapters import (
    AdaptRequest,
    Chunked,
    batch_size_or_default,
    check_supported,
    num_rows,
    registry,
    supported,
)
from fitpipe.columnar import classic_table, is_uri, uri_info, write_atomically
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message
from fitpipe.pipeline import adapted_source
from fitpipe.schemas import as_schema

__all__ = [
    "check_names",
    "check_output",
    "check_output_type",
    "chunks_of",
    "output_table",
    "planned_names",
    "predict_to_file",
]


def chunks_of(
    request: AdaptRequest, limit: int | None = None
) -> Iterator[tuple[Any, pa.Table | None]]:
    """Yields ``(features, passthrough)`` chunks of a prediction input, in row order.

    The input's adapter is asked for a :class:`~fitpipe.adapters.Chunked` source (columnar
    data read a chunk at a time with its passthrough columns; rows in memory sliced) by
    ``request`` (``predict``'s, as ``predict`` without ``output`` adapts it) with
    ``chunks=True``. Chunks of no rows (an empty part file, a stream's empty batch) add
    nothing and are skipped. ``limit``: the rows to yield at most (the first ones; None:
    every row).

    Raises:
        FitpipeValueError: The input cannot be read in chunks (it comes in batches).
    """
    x, caller = request.x, request.caller
    adapter = registry.find(x, caller)
    if request.schema is not None:  # refused where unused (a Series), as `predict` does
        check_supported(adapter, request, ("schema",))
    schema = as_schema(request.schema, caller) if "schema" in supported(adapter, request) else None
    source = adapted_source(adapter, dataclasses.replace(request, schema=schema, chunks=True))
    if not isinstance(source, Chunked):
        source.close()
        raise FitpipeValueError(
            message(
                caller,
                "cannot write predictions of this input to Parquet",
                "`output=` takes arrays, Arrow tables, streams and Parquet sources",
                "Collect the predictions with `predict(x)` and write them yourself",
                x=x,
            )
        )
    left = limit
    for features, passthrough in source.chunks():
        rows = max((num_rows(leaf) for leaf in tf.nest.flatten(features)), default=0)
        if left is not None and rows >= left:
            features = tf.nest.map_structure(lambda leaf, stop=left: leaf[:stop], features)
            passthrough = None if passthrough is None else passthrough.slice(0, left)
            rows = left
        if rows:
            yield features, passthrough
        if left is not None:
            left -= rows
            if not left:
                return


Chunk = tuple[Any, "pa.Table | None"]


def batch_aligned(chunks: Iterator[Chunk], batch: int) -> Iterator[Chunk]:
    """The chunks recut so that every batch but the last is whole, as one ``predict`` has it.

    Chunks come as the input stores its rows (a Parquet row group each), and each is
    predicted in batches of its own: a row group of 500 rows at batch 128 ended in a batch
    of 116, so ``predict(output=)`` ran more, shorter batches than Keras' ``predict`` of the
    same rows (and callbacks saw other batch numbers). The rows left over at a chunk's end
    are joined with the first rows of the next into one batch (a copy of under a batch of
    rows); the rest are views. Chunks of other leaves than NumPy arrays stay as they come.
    """
    carry: Chunk | None = None
    for features, passthrough in chunks:
        leaves = tf.nest.flatten(features)
        if not all(isinstance(leaf, np.ndarray) for leaf in leaves):
            if carry is not None:  # (a source mixing kinds: kept in order)
                yield carry
                carry = None
            yield features, passthrough
            continue
        rows, start = len(leaves[0]), 0
        if carry is not None:
            start = min(batch - len(tf.nest.flatten(carry[0])[0]), rows)
            carry = _joined(carry, _rows_of((features, passthrough), 0, start))
            if len(tf.nest.flatten(carry[0])[0]) < batch:
                continue
            yield carry
            carry = None
        whole = start + (rows - start) // batch * batch
        if whole > start:
            yield _rows_of((features, passthrough), start, whole)
        if whole < rows:
            carry = _rows_of((features, passthrough), whole, rows)
    if carry is not None:
        yield carry


def _rows_of(chunk: Chunk, start: int, stop: int) -> Chunk:
    features, passthrough = chunk
    part = tf.nest.map_structure(lambda leaf: leaf[start:stop], features)
    return part, None if passthrough is None else passthrough.slice(start, stop - start)


def _joined(first: Chunk, second: Chunk) -> Chunk:
    features = tf.nest.map_structure(lambda a, b: np.concatenate([a, b]), first[0], second[0])
    tables = [t for t in (first[1], second[1]) if t is not None]
    return features, pa.concat_tables(tables) if tables else None


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
    # The input's schema metadata (pandas' column list, ...) describes the input, not this file;
    # Parquet has no view layouts (Polars' strings): they are written as their classic ones.
    table = classic_table(passthrough.replace_schema_metadata(None))
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table


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


def _check_uri(output: str) -> str:
    """Checks an object store URI: not a folder, in a bucket (or folder) that exists."""
    _, path, info = uri_info(output, "predict")
    if info.type == pafs.FileType.Directory or output.endswith("/"):
        raise _output_error(
            f"got an `output` that is a folder ({output})",
            'Name an object in it, e.g. `output="s3://bucket/predictions/part-0.parquet"`',
            output,
        )
    bucket = path.split("/", 1)[0]
    scheme = output.split("://", 1)[0]
    found = uri_info(f"{scheme}://{bucket}", "predict")[2]
    if "/" not in path or found.type == pafs.FileType.NotFound:
        raise _output_error(
            f"cannot write {output}: no bucket {bucket!r}",
            "Create the bucket first, or fix the URI",
            output,
        )
    return output


def check_output_type(output: Any) -> None:
    """Checks that ``output`` is a path (what any worker can check, whatever its files).

    Raises:
        FitpipeTypeError: ``output`` is not a path.
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


def check_output(output: Any) -> str:
    """Checks ``output`` before anything is read or predicted; returns it as an absolute path.

    A URI (``s3://bucket/key.parquet``) is returned as given, once its bucket is found.

    Raises:
        FitpipeTypeError: ``output`` is not a path.
        FitpipeValueError: It is a folder, or its folder is missing or cannot be written.
    """
    check_output_type(output)
    if isinstance(output, str) and is_uri(output):
        return _check_uri(output)
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
    request: AdaptRequest,
    output: str | os.PathLike[str],
    verbose: Any,
    write: bool = True,
    check: Callable[[Any], Any] = check_output,
    stopped: Callable[[], bool] = lambda: False,
) -> str:
    """Predicts ``x`` chunk by chunk into the Parquet file ``output``, with a row progress bar.

    Args:
        model: The model (names the output columns).
        predict_chunk: Returns the model's outputs for one chunk of features.
        request: ``predict``'s request of the input (arrays, Arrow data or Parquet, with its
            schema); with ``steps``, the first ``steps`` times the batch size rows are
            predicted.
        output: The Parquet file to write.
        verbose: 0 for no progress bar.
        write: False on the workers of a multi-worker strategy but its chief: they run the
            same checks and predict every chunk all the same (the workers' steps run
            together), and write nothing.
        check: Checks ``output`` before anything is read (:func:`check_output`; under a
            multi-worker strategy, the chief's check, shared with every worker).
        stopped: Whether a callback stopped the prediction (``model.stop_predicting``):
            the rows predicted so far are written, and no chunk after them is read.

    Returns:
        The path written (by the chief, for the other workers).
    """
    check(output)
    steps = request.steps
    limit = None if steps is None else steps * batch_size_or_default(request.batch_size)
    chunks = batch_aligned(chunks_of(request, limit), batch_size_or_default(request.batch_size))
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
            rows = len(tf.nest.flatten(outputs)[0])
            if columns is not None and columns.num_rows > rows:  # stopped inside the chunk
                columns = columns.slice(0, rows)
            yield output_table(model, outputs, columns)
            if stopped():
                return

    if not write:
        for _ in tables():
            pass
        return os.fspath(output)
    return _write_with_progress(output, tables(), verbose)


def _write_with_progress(output: Any, tables: Iterator[pa.Table], verbose: Any) -> str:
    """Writes the tables to ``output`` (see :func:`write_atomically`) with a bar of rows."""
    bar = keras.utils.Progbar(None, unit_name="row") if verbose not in (0, "0") else None
    written = [0]

    def progress(rows: int) -> None:
        # Draws the rows before this chunk: the last count is drawn once, by the final update
        # (Keras' bar would draw it twice when the chunk ends 0.05 s after the last redraw).
        if bar is not None and written[0]:
            bar.update(written[0])
        written[0] += rows

    path = write_atomically(output, tables, progress)
    if bar is not None:
        bar.update(written[0], finalize=True)
    return path
