"""Checks of the dtypes of a batch's spec that no input form may bring to the model's step.

Arrays are checked as they are converted (``fitpipe.adapters.numbers``); a ``tf.data``
dataset, a generator or a ``PyDataset`` is known by its batches' spec only. Every form is
checked here again, on that spec, in the same words:

* the ``ml_dtypes`` numbers TensorFlow cannot batch and cast to floats (float8, int4) in
  any part of the batch, which fail inside TensorFlow otherwise (no ``Switch`` kernel, no
  cast);
* complex targets or sample weights for Keras' own step and loss, which cast them to the
  loss's floats and silently drop their imaginary parts (complex ``x`` for a real model
  input is refused with the model's inputs, ``fitpipe.training.inputs``).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from fitpipe.adapters import complex_error, leaf_names, tensor_dtype_refusal
from fitpipe.errors import FitpipeTypeError, message

__all__ = ["check_complex_targets", "check_spec_dtypes"]


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


def check_complex_targets(element_spec: Any, caller: str) -> None:
    """Refuses complex targets and sample weights, which Keras' loss casts to real numbers.

    Keras' losses and weighting convert both to the loss's float dtype: a complex tensor
    loses its imaginary part without a word. Only for the model's own step and loss
    (``check_model_targets`` decides): a custom step may use complex targets. Complex
    sample weights of arrays never get here: their conversion refuses them whatever the step
    (``fitpipe.adapters.arrays.check_sample_weight``), in the same words (``complex_error``).

    Args:
        element_spec: The spec of a batch ``(x, y, sample_weight)``.
        caller: The public method being run.

    Raises:
        FitpipeTypeError: For a complex leaf of ``y`` or ``sample_weight``.
    """
    for path, spec in _leaves(element_spec, first=1):
        dtype = _dtype(spec)
        if dtype is not None and dtype.is_complex:
            sparse = isinstance(spec, tf.SparseTensorSpec)
            raise complex_error(caller, path, dtype.name, spec, sparse)
