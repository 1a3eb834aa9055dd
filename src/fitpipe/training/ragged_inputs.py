"""Ragged data for a model input whose rows have a fixed size: as Keras where the rows have it.

Keras hands a ``tf.RaggedTensor`` to the model's layers as it is, whatever the input: one
whose varying sizes are ``None`` takes it (a layer that handles ragged tensors follows), and
so does an input of a fixed size when every row has that size (a ragged tensor made with
``tf.ragged.constant`` from rows of one length; a ``Dense`` layer multiplies it as a dense
one). Rows that vary fail inside Keras' step, with an opaque graph error
(``RaggedMatMul/assert_equal``). fitpipe never pads them (``to_tensor()`` would fill short
rows with zeros: wrong data, silently); it checks their lengths where it can:

* where the batches' values are known before the first step (the caller's tensor itself:
  :func:`known_rows`), its rows of one length are read as dense rows of that length, then
  checked as any, so a tensor whose rows all have the input's size runs as in Keras, and one
  whose rows vary is refused at once, worded for a tensor (:func:`check_ragged`);
* where only the spec is known (a stream: a ``tf.data.Dataset``, a generator or
  ``PyDataset`` of ragged batches, a table's list column), each batch is checked as it is
  read, by the batch value checks (``batch_checks.BatchChecks``, a rule per such leaf:
  ``check_rules.Rule.rows``), before the step that would use it: the batches whose rows have
  the input's size train as in Keras, and the first that does not is a fitpipe error naming
  the batch, the input and the length found (:func:`ragged_error`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.errors import DataMismatchError, message, raw

__all__ = [
    "check_ragged",
    "fixed_rows",
    "known_rows",
    "numpy_ragged_problem",
    "ragged_error",
    "ragged_problem",
]


def _uniform(value: tf.RaggedTensor) -> bool:
    """Whether every ragged dimension of ``value`` has one length in all its rows."""
    return all(np.unique(np.asarray(lengths)).size <= 1 for lengths in value.nested_row_lengths())


def _dense_spec(spec: Any, value: Any) -> Any:
    """``spec`` of ``value``: a ragged one as dense rows when its rows have one length."""
    if not isinstance(spec, tf.RaggedTensorSpec) or not isinstance(value, tf.RaggedTensor):
        return spec
    if not _uniform(value):
        return spec
    sizes = [int(size) for size in value.bounding_shape()[1:]]
    return tf.TensorSpec([None, *sizes, *value.flat_values.shape[1:]], spec.dtype)


def known_rows(x_spec: Any, x: Any) -> Any:
    """``x_spec`` with the ragged leaves of ``x`` whose rows have one length as dense rows.

    ``x``: the values of the batches' ``x``, nested as ``x_spec`` (None: not known).
    """
    if x is None:
        return x_spec
    try:
        return tf.nest.map_structure(_dense_spec, x_spec, x, check_types=False)
    except (TypeError, ValueError):  # nested otherwise: the spec's checks say so
        return x_spec


def _shape(spec: Any) -> tuple[int | None, ...] | None:
    shape = getattr(spec, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return tuple(tf.TensorShape(shape).as_list())


def fixed_rows(tensor: Any, spec: Any) -> bool:
    """Whether ``spec`` is ragged where the model input ``tensor`` has a fixed size.

    A ragged dimension (``None`` in the spec) the input gives a size: only batches whose
    rows all have it run (in Keras too). Of another rank (or unknown): True, as no row
    can have that size.
    """
    if not isinstance(spec, tf.RaggedTensorSpec) or getattr(tensor, "ragged", False):
        return False
    expected, found = tuple(tensor.shape), _shape(spec)
    if found is None or len(expected) != len(found):
        return True
    return any(size is None and expected[i] is not None for i, size in enumerate(found) if i)


def check_ragged(tensor: Any, spec: Any, name: str, caller: str, known: bool) -> None:
    """Refuses a tensor whose rows vary for an input of a fixed size, before the first step.

    ``known``: the batches' values were read (:func:`known_rows`): a ragged spec left is a
    tensor whose rows vary. Where only the spec is known (a stream), nothing is refused
    here: each batch is checked as it is read (:func:`ragged_problem`).

    Raises:
        DataMismatchError: A tensor of rows of varying length for an input of a fixed size.
    """
    if not known or not fixed_rows(tensor, spec):
        return
    raise DataMismatchError(
        message(
            caller,
            f"got rows of different lengths (a ragged tensor) for {name}, whose rows have a "
            "fixed size",
            f"The model expected dense rows of shape {tuple(tensor.shape)} for {name}",
            "Pad or truncate the rows to one length first (`x.to_tensor(shape=...)`), or "
            "build the input with `keras.Input(..., ragged=True)` or `None` for the varying "
            "sizes",
            x=raw(f"ragged data of shape {tuple(spec.shape)} for {name}"),
        )
    )


def _checked_lengths(value: Any, shape: tuple[int | None, ...]) -> list[tuple[Any, int]]:
    """Each ragged dimension's row lengths in ``value`` with the size ``shape`` gives it."""
    checked = []
    for i, part in enumerate(value.nested_row_lengths()):
        size = shape[i + 1]
        if size is not None:
            checked.append((part, size))
    return checked


def ragged_problem(
    value: tf.RaggedTensor, shape: tuple[int | None, ...]
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(found, first bad position, its length as float64)`` of rows unlike ``shape`` (ops).

    ``shape``: the model input's; each ragged dimension's rows must have its size there.
    The position counts the rows of the first ragged dimension, then of the next ones.
    """
    checked = _checked_lengths(value, shape)
    if not checked:
        zero = tf.constant(0, tf.int32)
        return tf.constant(False), zero, tf.constant(0.0, tf.float64)
    lengths = tf.concat([tf.cast(part, tf.int64) for part, _ in checked], 0)
    bad = tf.concat([tf.not_equal(part, tf.cast(size, part.dtype)) for part, size in checked], 0)
    # padded: a batch of no rows has a 0, whose argmax is 0 (none fails on no row)
    first = tf.argmax(tf.concat([tf.cast(bad, tf.int32), [0]], 0), output_type=tf.int32)
    padded = tf.concat([lengths, tf.zeros([1], tf.int64)], 0)
    return tf.reduce_any(bad), first, tf.cast(tf.gather(padded, first), tf.float64)


def numpy_ragged_problem(value: Any, shape: tuple[int | None, ...]) -> float | None:
    """:func:`ragged_problem` in Python: the first length unlike ``shape``'s size, or None."""
    for part, size in _checked_lengths(value, shape):
        lengths = np.asarray(part)
        bad = lengths != size
        if bad.any():
            return float(lengths[int(np.argmax(bad))])
    return None


def ragged_error(
    caller: str, name: str, shape: tuple[int | None, ...], where: str, length: float
) -> DataMismatchError:
    """The error for a batch whose ragged rows lack the fixed size of input ``name``.

    Args:
        caller: The public method being run.
        name: The input, in words.
        shape: The model input's shape.
        where: The batch, in words (``"batch index 3"``, with ``" of the validation data"``).
        length: The first length found unlike the input's size.
    """
    found = int(length)
    return DataMismatchError(
        message(
            caller,
            f"got rows of different lengths (a ragged tensor) in {where} for {name}, whose "
            f"rows have a fixed size: a row of length {found}",
            f"The model expected dense rows of shape {shape} for {name}: every row of a "
            "ragged batch has that size (rows of one length run as in Keras, whose step "
            "fails on any other)",
            "Give the rows one length in the input pipeline: pad or truncate them with "
            "`.to_tensor(shape=...)` of the tf.RaggedTensor (a list column's with "
            "`lengths={column: n}` in the schema), or build the input with "
            "`keras.Input(..., ragged=True)` or `None` for the varying sizes",
            x=raw(f"a row of length {found} in {where} for {name}"),
        )
    )
