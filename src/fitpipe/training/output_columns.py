"""The columns ``predict(output=)`` writes: one per model output, typed by the first chunk.

Each model output is one column, named by the model's output names (a dict's keys; the keys
of nested dicts joined by :data:`SEPARATOR`: ``{"g": {"p": ...}}`` is column ``g.p``). Its
rows are written as predicted: a value per row as a scalar column (a final dimension of 1
included), a vector (or array) per row as a ``fixed_size_list`` (nested), a ragged output
(a ``tf.RaggedTensor``) as a ``list`` column, one list per row. Narrow floats Arrow has no
type for (bfloat16, float8) are written as float32, 4-bit integers as int8: each value
exactly. Every chunk of a file writes each column with the type its first chunk gave it: a
dense chunk of a ragged output is written as lists; a chunk whose rows take another shape
(a dense output whose width changes between batches) is refused, before the file appears,
as is a sparse output (a ``tf.SparseTensor``: Parquet has no sparse type).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import tensorflow as tf

from fitpipe.columnar import classic_table
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message

__all__ = ["SEPARATOR", "OutputColumns", "output_leaves", "output_names", "output_rows"]

#: Joins the keys of nested dict outputs into a column name: ``{"g": {"p": ...}}`` is ``g.p``.
SEPARATOR = "."


def _paths(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """``(name, leaf)`` of a dict output's entry, nested dicts and lists walked in order."""
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in _paths(f"{prefix}{SEPARATOR}{key}", item)]
    if isinstance(value, (list, tuple)):
        return [p for i, item in enumerate(value) for p in _paths(f"{prefix}{SEPARATOR}{i}", item)]
    return [(prefix, value)]


def _named(outputs: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    return [p for key, value in outputs.items() for p in _paths(str(key), value)]


def output_names(model: keras.Model, outputs: Any) -> list[str]:
    """The column name of each output (in :func:`output_leaves`' order).

    A dict's keys (nested keys joined by :data:`SEPARATOR`); else the model's output names
    when there is one per output, else ``prediction`` (``prediction_0``, ... for several).
    """
    if isinstance(outputs, Mapping):
        return [name for name, _ in _named(outputs)]
    names = list(getattr(model, "output_names", None) or [])
    count = len(tf.nest.flatten(outputs))
    if len(names) == count:
        return names
    return ["prediction"] if count == 1 else [f"prediction_{i}" for i in range(count)]


def output_leaves(outputs: Any) -> list[Any]:
    """The outputs' values, one per column, in :func:`output_names`' order."""
    if isinstance(outputs, Mapping):
        return [leaf for _, leaf in _named(outputs)]
    return list(tf.nest.flatten(outputs))


def output_rows(outputs: Any) -> int:
    """The rows of predicted outputs (of their first, ragged ones included)."""
    first = output_leaves(outputs)[0]
    if isinstance(first, tf.RaggedTensor):
        return int(first.nrows())
    return int(np.shape(first)[0])


def _arrow_ready(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` in a dtype Arrow takes: narrow floats as float32, 4-bit integers as int8.

    Both widenings keep every value (``mixed_bfloat16`` models predict bfloat16).
    """
    if values.dtype.kind != "V":
        return values
    try:
        kind = tf.as_dtype(values.dtype)
    except TypeError:
        kind = None
    if kind is not None and kind.is_floating:
        return values.astype(np.float32)
    if kind is not None and kind.is_integer:
        return values.astype(np.int8)
    raise FitpipeTypeError(
        message(
            "predict",
            f"cannot write model output {name!r} of dtype {values.dtype} to `output`",
            "Outputs hold numbers, booleans or strings of dtypes Arrow has a type for",
            "Cast the output in the model (e.g. to float32), or collect the predictions "
            "with `predict(x)`",
            model_output=name,
        )
    )


def _fixed(values: np.ndarray) -> pa.Array:
    """Rows of any fixed shape: scalars, or (nested) ``fixed_size_list`` of their values."""
    flat = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


def _dense(values: np.ndarray, name: str) -> pa.Array:
    values = _arrow_ready(values, name)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    return _fixed(values)


def _ragged(values: tf.RaggedTensor, name: str) -> pa.Array:
    """One (nested) list per row; dimensions past the ragged ones as ``fixed_size_list``."""
    column = _fixed(_arrow_ready(np.asarray(values.flat_values), name))
    for splits in reversed(values.nested_row_splits):
        column = pa.ListArray.from_arrays(pa.array(np.asarray(splits), pa.int32()), column)
    return column


def _shape(values: Any) -> str:
    """A row's shape and dtype, ``None`` for ragged dimensions: ``(None, 3) (float32)``."""
    dims = tuple(None if d is None else int(d) for d in values.shape[1:])
    dtype = values.dtype.name if isinstance(values, tf.RaggedTensor) else np.asarray(values).dtype
    return f"{dims} ({dtype})"


class OutputColumns:
    """The model's outputs as columns, each written with the type of its first chunk.

    Args:
        model: The model (names the columns).
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.rows = 0  # rows tabled so far
        self.first: dict[str, tuple[pa.DataType, str, int]] = {}  # type, shape, ragged rank

    def table(self, outputs: Any, passthrough: pa.Table | None) -> pa.Table:
        """Passthrough columns, then one column per model output.

        Raises:
            FitpipeValueError: An output's rows take another shape than in the first chunk.
        """
        names = output_names(self.model, outputs)
        leaves = output_leaves(outputs)
        columns = {name: self._column(name, leaf) for name, leaf in zip(names, leaves, strict=True)}
        self.rows += output_rows(outputs)
        if passthrough is None or passthrough.num_columns == 0:
            return pa.table(columns)
        # The input's schema metadata (pandas' column list, ...) describes the input, not this
        # file; Parquet has no view layouts (Polars' strings): they are written as classic ones.
        table = classic_table(passthrough.replace_schema_metadata(None))
        for name, column in columns.items():
            table = table.append_column(name, column)
        return table

    def _column(self, name: str, values: Any) -> pa.Array:
        if isinstance(values, tf.SparseTensor):
            raise _sparse_error(name)
        ragged = isinstance(values, tf.RaggedTensor)
        if not ragged and not isinstance(values, np.ndarray):
            values = np.asarray(values)
        known = self.first.get(name)
        if known is None:
            column = _ragged(values, name) if ragged else _dense(values, name)
            rank = values.ragged_rank if ragged else 0
            self.first[name] = (column.type, _shape(values), rank)
            return column
        kind, shape, rank = known
        if rank and not ragged and np.ndim(values) > rank:  # a chunk of rows of one size
            column = _ragged(tf.RaggedTensor.from_tensor(values, ragged_rank=rank), name)
        else:
            column = _ragged(values, name) if ragged else _dense(values, name)
        if column.type != kind:
            raise _shape_error(name, shape, _shape(values), self.rows)
        return column


def _shape_error(name: str, before: str, after: str, row: int) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            "predict",
            f"cannot write model output {name!r} to `output`: its rows have shape {after} "
            f"from row {row} on, but shape {before} in the rows before",
            "An output has one shape and dtype in every batch written to one file (the first "
            "batches fix the column's type; a tf.RaggedTensor output is written as lists)",
            "Give the output one shape in every batch (pad it to a fixed length, e.g. with "
            "`Schema(lengths=...)`), return a tf.RaggedTensor, or collect the predictions "
            "with `predict(x)`",
            model_output=name,
        )
    )


def _sparse_error(name: str) -> FitpipeTypeError:
    return FitpipeTypeError(
        message(
            "predict",
            f"cannot write model output {name!r} to `output`: it is a tf.SparseTensor",
            "A file's column holds each row's values, dense: Parquet has no sparse type, and "
            "writing the output dense could take far more memory than it does",
            "Make the output dense in the model (`tf.sparse.to_dense`), or collect the "
            "predictions with `predict(x)`, which returns a tf.SparseTensor as Keras does",
            model_output=name,
        )
    )
