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
    ArraySource,
    Chunked,
    batch_size_or_default,
    check_supported,
    num_rows,
    registry,
    supported,
)
from fitpipe.columnar import (
    CHECK,
    bucket_uri,
    input_collision,
    is_uri,
    local_file_path,
    local_target,
    parse_uri,
    uri_info,
    write_atomically,
)
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message
from fitpipe.pipeline import adapted_source
from fitpipe.schemas import as_schema
from fitpipe.training.output_columns import (
    SEPARATOR,
    OutputColumns,
    output_names,
    output_rows,
)

__all__ = [
    "check_names",
    "check_output",
    "check_output_type",
    "chunk_source",
    "chunks_of",
    "planned_names",
    "predict_to_file",
]


def chunk_source(request: AdaptRequest) -> tuple[Chunked, int | None]:
    """The :class:`~fitpipe.adapters.Chunked` source of a prediction input, and its rows.

    The input's adapter is asked for a source read a chunk at a time (columnar data with its
    passthrough columns; rows in memory sliced) by ``request`` (``predict``'s, as
    ``predict`` without ``output`` adapts it) with ``chunks=True``. An input that comes in
    batches (a generator, a ``tf.data.Dataset``, a ``PyDataset``: its adapter batches no
    rows, so takes no ``batch_size``) is refused before anything is read from it.
    The rows are None where unknown before reading (a stream).

    Raises:
        FitpipeValueError: The input cannot be read in chunks (it comes in batches).
    """
    x, caller = request.x, request.caller
    adapter = registry.find(x, caller)
    if request.schema is not None:  # refused where unused (a Series), as `predict` does
        check_supported(adapter, request, ("schema",))
    takes = supported(adapter, request)
    if "batch_size" not in takes:
        raise _not_chunked(x)
    schema = as_schema(request.schema, caller) if "schema" in takes else None
    source = adapted_source(adapter, dataclasses.replace(request, schema=schema, chunks=True))
    if not isinstance(source, Chunked):
        source.close()
        raise _not_chunked(x)
    rows = source.num_samples if isinstance(source, ArraySource) else getattr(source, "rows", None)
    return source, rows


def _not_chunked(x: Any) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            "predict",
            "cannot write predictions of this input to Parquet",
            "`output=` takes arrays, Arrow tables, streams and Parquet sources",
            "Collect the predictions with `predict(x)` and write them yourself",
            x=x,
        )
    )


def chunks_of(source: Chunked, limit: int | None = None) -> Iterator[tuple[Any, pa.Table | None]]:
    """Yields the ``(features, passthrough)`` chunks of a source, in row order.

    Chunks of no rows (an empty part file, a stream's empty batch) add nothing and are
    skipped. ``limit``: the rows to yield at most (the first ones; None: every row).
    """
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
    _, path, info = uri_info(output, "predict", CHECK)
    if info.type == pafs.FileType.Directory or parse_uri(output, "predict").prefix:
        raise _output_error(
            f"got an `output` that is a folder ({output})",
            'Name an object in it, e.g. `output="s3://bucket/predictions/part-0.parquet"`',
            output,
        )
    bucket = path.split("/", 1)[0]
    found = uri_info(bucket_uri(output, "predict") or output, "predict", CHECK)[2]  # (its query)
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

    A URI (``s3://bucket/key.parquet``) is returned as given, once its bucket is found; a
    ``file://`` URI is its local path; a symbolic link, the path of the file it points at.

    Raises:
        FitpipeTypeError: ``output`` is not a path.
        FitpipeValueError: It is a folder, or its folder is missing or cannot be written.
    """
    check_output_type(output)
    local = local_file_path(output)
    if local is None and isinstance(output, str) and is_uri(output):
        if output[:7].lower() == "file://":
            raise _output_error(
                f"cannot write {output}: a file:// URI of another host",
                'Name a local file, as a path or as `"file:///path/to/predictions.parquet"`',
                output,
            )
        return _check_uri(output)
    target = local_target(output)
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


def check_not_input(output: str, x: Any, folders: bool = False, caller: str = "predict") -> None:
    """Refuses an ``output`` that would replace (or, with ``folders``, join) the input.

    One check for ``Trainer.predict`` and ``fitpipe predict``, for local paths and object
    store URIs alike (see :func:`~fitpipe.columnar.input_collision`): an input file, or an
    existing file an input folder's read takes, is refused; ``Trainer.predict`` writes a new
    file into an input folder if asked (the next read of the folder then takes the
    predictions too). With ``folders`` (``fitpipe predict``), any file inside an input
    folder or matching an input glob is refused as well. A file of a columnar input (a
    Delta or Iceberg table, a ``pyarrow.dataset.FileSystemDataset``), and any file inside a
    Delta Lake or Iceberg table's folder, is refused too.

    Args:
        output: The checked output (:func:`check_output`: a URI, or an absolute path).
        x: ``predict``'s input.
        folders: Refuse a file inside an input folder or matching an input glob too.
        caller: The name an error of the store gives the call.

    Raises:
        FitpipeValueError: Naming the input path it collides with.
    """
    where = input_collision(output, x, folders, caller)
    if where:
        raise _output_error(
            f"got an `output` that {where}: writing it would replace or join the input (or "
            "leave a stray file in a table's folder)",
            "Name a file outside the input and outside any Delta Lake or Iceberg table's "
            "folder (e.g. a `predictions/` folder beside the input)",
            output,
        )


def planned_names(model: keras.Model, features: Any) -> list[str] | None:
    """The output column names, from the model's symbolic outputs (None where unknown)."""
    try:
        inputs = tf.nest.map_structure(
            lambda leaf: keras.KerasTensor((None, *leaf.shape[1:]), dtype=str(leaf.dtype)),
            features,
        )
        return output_names(model, model.compute_output_spec(inputs))
    except Exception:  # a model the symbolic call fails for is checked after its first chunk
        return None


def check_names(names: list[str], passthrough: list[str]) -> None:
    """Refuses an output file whose columns would not have one name each."""
    for column in dict.fromkeys(passthrough):
        if passthrough.count(column) > 1:
            raise _names_error(
                f"the passthrough list names column {column!r} twice",
                "List each passthrough column once",
                column,
                names,
                passthrough,
            )
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            raise _names_error(
                "two model outputs have that name",
                "Rename one of the model outputs (its layer name, or its key in the model's "
                f"output dict; nested dict keys are joined by {SEPARATOR!r})",
                name,
                names,
                passthrough,
            )
        if name in passthrough:
            raise _names_error(
                "a model output and a passthrough column have that name",
                "Rename the model output (its layer name, or its key in the model's output "
                "dict), or leave the column out of `passthrough`",
                name,
                names,
                passthrough,
            )


def _names_error(
    why: str, fix: str, name: str, names: list[str], passthrough: list[str]
) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            "predict",
            f"cannot write two columns named {name!r} to `output`: {why}",
            "Each column of the output file has its own name: passthrough columns "
            f"{passthrough}, then the model outputs {names}",
            fix,
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
    input_checked: bool = False,
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
        input_checked: ``output`` was checked against ``request.x`` the strict way already
            (``check_not_input`` with ``folders``, by ``fitpipe predict``): not checked again.

    Returns:
        The path written (by the chief, for the other workers).
    """
    checked = check(output)
    if write and not input_checked:
        check_not_input(os.fspath(checked), request.x)
    batch_size = batch_size_or_default(request.batch_size)
    limit = None if request.steps is None else request.steps * batch_size
    source, rows = chunk_source(request)
    chunks = batch_aligned(chunks_of(source, limit), batch_size)
    first = next(chunks, None)
    if first is None:
        raise _no_rows(output)
    passthrough = first[1].column_names if first[1] is not None else []
    names = planned_names(model, first[0])
    if names is not None:
        check_names(names, passthrough)
    target = rows if limit is None or rows is None else min(rows, limit)
    written = OutputColumns(model)

    def tables() -> Iterator[pa.Table]:
        for features, columns in itertools.chain([first], chunks):
            outputs = predict_chunk(features)
            if names is None:  # the symbolic call failed: check before the first write
                check_names(output_names(model, outputs), passthrough)
            rows = output_rows(outputs)
            if columns is not None and columns.num_rows > rows:  # stopped inside the chunk
                columns = columns.slice(0, rows)
            yield written.table(outputs, columns)
            if stopped():
                return

    if not write:
        for _ in tables():
            pass
        return os.fspath(output)
    return _write_with_progress(output, tables(), verbose, target)


def _write_with_progress(
    output: Any, tables: Iterator[pa.Table], verbose: Any, target: int | None
) -> str:
    """Writes the tables to ``output`` (see :func:`write_atomically`) with a bar of rows.

    ``verbose``: 1 or ``"auto"`` draws a live bar of ``target`` rows (None: unknown);
    2 prints one line once written, as Keras' ``predict(verbose=2)``; 0 prints nothing.
    """
    bar = None
    if verbose not in (0, "0"):
        bar = keras.utils.Progbar(target, verbose=2 if verbose == 2 else 1, unit_name="row")
    written = [0]

    def progress(rows: int) -> None:
        # Draws the rows before this chunk: the last count is drawn once, by the final update
        # (Keras' bar would draw it twice when the chunk ends 0.05 s after the last redraw).
        if bar is not None and written[0]:
            bar.update(written[0])
        written[0] += rows

    path = write_atomically(output, tables, progress)
    if bar is not None:
        if bar.target is None or written[0] < bar.target:  # (stopped by a callback)
            bar.target = written[0]
        bar.update(written[0], finalize=True)
    return path
