"""Checks of the dtypes of a batch's spec that no input form may bring to the model's step.

Arrays are checked as they are converted (``fitpipe.adapters.numbers``); a ``tf.data``
dataset, a generator or a ``PyDataset`` is known by its batches' spec only. Every form is
checked here again, on that spec, in the same words: the ``ml_dtypes`` numbers TensorFlow
cannot batch and cast to floats (float8, int4) in any part of the batch, which fail inside
TensorFlow otherwise (no ``Switch`` kernel, no cast).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from fitpipe.adapters import leaf_names, tensor_dtype_refusal
from fitpipe.errors import FitpipeTypeError, message

__all__ = ["check_spec_dtypes"]


def _leaves(element_spec: Any, first: int = 0) -> list[tuple[str, Any]]:
    """``(path, spec)`` for each leaf of a batch's spec, from the part ``first`` on."""
    batch = element_spec if isinstance(element_spec, tuple) else (element_spec,)
    flat = [leaf for part in batch[:3] for leaf in tf.nest.flatten(part)]
    pairs = list(zip(leaf_names(batch[:3]), flat, strict=True))
    skipped = len(leaf_names(batch[:first]))
    return pairs[skipped:]


def _dtype(spec: Any) -> tf.DType | None:
    dtype = getattr(spec, "dtype", None)
    return dtype if isinstance(dtype, tf.DType) else None


def check_spec_dtypes(element_spec: Any, caller: str) -> None:
    """Refuses batches holding numbers TensorFlow cannot batch and cast (float8, int4).

    Args:
        element_spec: The spec of a batch ``(x, y, sample_weight)`` (or of ``x`` alone).
        caller: The public method being run.

    Raises:
        FitpipeTypeError: For a leaf of such a dtype, named by its path (``y['out']``).
    """
    for path, spec in _leaves(element_spec):
        dtype = _dtype(spec)
        if dtype is None:
            continue
        refusal = tensor_dtype_refusal(path, dtype, isinstance(spec, tf.SparseTensorSpec))
        if refusal is not None:
            raise FitpipeTypeError(message(caller, *refusal, **{path: spec}))
