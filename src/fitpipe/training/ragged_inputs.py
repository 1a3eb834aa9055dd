"""Ragged data for a model input whose rows have a fixed size: refused where rows vary.

Keras hands a ``tf.RaggedTensor`` to the model's layers as it is, whatever the input: one
whose varying sizes are ``None`` takes it (a layer that handles ragged tensors follows), and
so does an input of a fixed size when every row has that size (a ragged tensor made with
``tf.ragged.constant`` from rows of one length; a ``Dense`` layer multiplies it as a dense
one). Rows that vary fail inside Keras' step. fitpipe checks before the first step: from the
spec alone where the batches are not known yet (a stream: refused), from the values where
they are (the caller's tensor itself: its rows of one length are read as dense rows of that
length, then checked as any, so a tensor whose rows all have the input's size runs as in
Keras, and one whose rows vary is refused, worded for a tensor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.errors import DataMismatchError, message, raw

__all__ = ["check_ragged", "known_rows"]


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


def check_ragged(tensor: Any, spec: Any, name: str, caller: str, known: bool) -> None:
    """Refuses rows of varying length for an input of a fixed size where they vary.

    ``known``: the batches' values were read (:func:`known_rows`): a ragged spec left is a
    tensor whose rows vary, and the fix is worded for it; else for a stream's tensors or a
    table's list column.

    Raises:
        DataMismatchError: Ragged data for an input of a fixed size where the rows vary.
    """
    if not isinstance(spec, tf.RaggedTensorSpec) or getattr(tensor, "ragged", False):
        return
    expected, found = tuple(tensor.shape), _shape(spec)
    if found is not None and len(expected) == len(found):
        varying = [i for i, size in enumerate(found) if i > 0 and size is None]
        if all(expected[i] is None for i in varying):
            return
    pad = "Pad or truncate the rows to one length first (`x.to_tensor(shape=...)`)"
    if not known:
        pad = (
            "Give the rows one length: a list column's in the schema (`lengths={column: n}` "
            "pads or truncates it), a tf.RaggedTensor's with `.to_tensor(shape=...)`"
        )
    raise DataMismatchError(
        message(
            caller,
            f"got rows of different lengths (a ragged tensor) for {name}, whose rows have a "
            "fixed size",
            f"The model expected dense rows of shape {expected} for {name}",
            f"{pad}, or build the input with `keras.Input(..., ragged=True)` or `None` for "
            "the varying sizes",
            x=raw(f"ragged data of shape {tuple(spec.shape)} for {name}"),
        )
    )
