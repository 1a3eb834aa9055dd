"""Which NumPy dtypes hold numbers fitpipe takes: NumPy's own, and ``ml_dtypes``' bfloat16.

NumPy arrays of ``ml_dtypes`` numbers (``bfloat16``, ``float8_e4m3fn``, ``int4``: what JAX
hands out) have NumPy's kind ``"V"`` (``float8_e5m2``: ``"f"``). Keras takes those
``tf.convert_to_tensor`` takes, and casts their floats to floatx in NumPy. fitpipe batches
them as they are and casts in the step: it takes the floats of 16 bits or more that
TensorFlow casts to float32 (``bfloat16``); TensorFlow cannot batch and branch on the
narrower ones (float8: no ``Switch`` kernel, int4: no cast to floats), which are refused in
words (:func:`dtype_refusal`) before TensorFlow fails inside a step. Tensors, ``tf.data``
elements and streamed batches of those dtypes are refused in the same words
(:func:`tensor_dtype_refusal`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.errors import FitpipeTypeError, message

__all__ = [
    "NATIVE_FLOATS",
    "complex_error",
    "complex_refusal",
    "dtype_refusal",
    "is_number_dtype",
    "tensor_dtype_refusal",
    "unusable_dtype",
]

_NUMPY_KINDS = frozenset("biuf")
#: NumPy's own floating dtypes (``ml_dtypes`` floats, such as bfloat16, are not among them).
NATIVE_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def is_number_dtype(dtype: np.dtype) -> bool:
    """Whether arrays of ``dtype`` hold numbers or booleans fitpipe takes (not complex).

    Args:
        dtype: A NumPy dtype, ``ml_dtypes`` ones included.
    """
    if not _ml_dtype(dtype):
        return dtype.kind in _NUMPY_KINDS and dtype.type is not np.longdouble
    return _tensorflow_computes(dtype)


def _ml_dtype(dtype: np.dtype) -> bool:
    return (getattr(dtype.type, "__module__", "") or "").split(".", 1)[0] == "ml_dtypes"


@functools.cache
def _tensorflow_computes(dtype: np.dtype) -> bool:
    """Whether TensorFlow takes arrays of ``dtype`` as floats of 16 bits or more."""
    if dtype.itemsize < 2:
        return False
    try:
        tf.cast(tf.convert_to_tensor(np.zeros(1, dtype)), tf.float32)
    except (TypeError, ValueError, tf.errors.OpError):
        return False
    return True


def unusable_dtype(dtype: np.dtype) -> str | None:
    """Why arrays of ``dtype`` cannot be used, in words (None when they can, or hold text).

    Args:
        dtype: A NumPy dtype.
    """
    if is_number_dtype(dtype) or dtype.kind in "USOT":
        return None
    if dtype.kind == "c":
        return "complex"
    if _ml_dtype(dtype) or dtype.type is np.longdouble:
        return "tensorflow"  # ml_dtypes numbers and long doubles TensorFlow cannot take
    return "other"


def complex_refusal(path: str, dtype: object, sparse: bool = False) -> tuple[str, str, str]:
    """What failed, what was expected, how to fix, for complex ``path`` (a real model's data).

    Args:
        path: Where the data was found (``"x"``, ``"x['signal']"``).
        dtype: Its dtype.
        sparse: For the values of a sparse array.
    """
    noun = "the sparse " if sparse else ""
    return (
        f"cannot use {noun}`{path}` of dtype {dtype}: complex values for real numbers",
        "Model inputs and targets take real numbers unless the model's input is complex "
        "(TensorFlow's cast to floats would silently drop the imaginary parts)",
        f"Pass the part the model should see, e.g. `np.real({path})`, `np.abs({path})`, or "
        "both as features (`np.stack([v.real, v.imag], -1)`)",
    )


def complex_error(
    caller: str, path: str, dtype: object, received: Any, sparse: bool = False
) -> FitpipeTypeError:
    """The error for complex ``path`` given for real numbers (:func:`complex_refusal`'s words).

    What refuses complex data once it is converted or known by its spec words it here:
    sample weights of arrays as they are converted, targets and sample weights of every form
    on the batches' spec, ``x`` for a real model input.

    Args:
        caller: The public method being run.
        path: Where the data was found (``"sample_weight"``, ``"y['out']"``).
        dtype: Its dtype.
        received: What is shown as received, under ``path``.
        sparse: For the values of a sparse array.
    """
    return FitpipeTypeError(
        message(caller, *complex_refusal(path, dtype, sparse), **{path: received})
    )


def dtype_refusal(path: str, dtype: np.dtype, sparse: bool = False) -> tuple[str, str, str] | None:
    """What failed, what was expected, how to fix, for an array of ``dtype`` (None: usable).

    Args:
        path: Where the array was found (``"x"``, ``"x['tokens']"``).
        dtype: Its dtype.
        sparse: For the values of a sparse array (which hold no text).
    """
    why = unusable_dtype(dtype)
    if why is None and not (sparse and dtype.kind in "USOT"):
        return None
    if why == "complex":
        return complex_refusal(path, dtype, sparse)
    noun = "the sparse " if sparse else ""
    numbers = (
        "numbers TensorFlow batches and computes with (NumPy's booleans, integers and "
        "floats, and ml_dtypes' bfloat16)"
    )
    if why == "tensorflow":
        cast = "float64" if dtype.type is np.longdouble else "float32"
        return (
            f"cannot use {noun}`{path}` of dtype {dtype}, which TensorFlow cannot batch and "
            "cast to floats",
            f"Inputs hold {numbers}" + ("" if sparse else ", booleans or strings"),
            f"Convert it first, e.g. `{path}.astype('{cast}')` (Keras casts floats to "
            "float32 anyway)",
        )
    if sparse:
        return (
            f"cannot use the sparse `{path}` of dtype {dtype}",
            "Sparse inputs hold numbers or booleans",
            "Convert it, e.g. `x.astype('float32')`",
        )
    return (
        f"cannot use `{path}` of dtype {dtype}",
        "Inputs must be numbers, booleans or strings",
        _other_fix(path, dtype),
    )


def _other_fix(path: str, dtype: np.dtype) -> str:
    """How to convert an array of a dtype that is no number, boolean or string."""
    if dtype.names is not None:
        return (
            "Pass its fields as one array, e.g. "
            f"`np.stack([{path}[name] for name in {path}.dtype.names], axis=-1)`, or as named "
            f"inputs, `{{name: {path}[name] for name in {path}.dtype.names}}`"
        )
    if dtype.kind in "mM":
        return (
            "Convert it first, e.g. datetimes to microseconds with "
            "`.astype('datetime64[us]').astype('int64')`"
        )
    return f"Convert it first, e.g. `{path}.astype('float32')`"


def tensor_dtype_refusal(
    path: str, dtype: tf.DType, sparse: bool = False
) -> tuple[str, str, str] | None:
    """:func:`dtype_refusal` for a TensorFlow dtype: float8 and int4 are refused alike.

    Only the ``ml_dtypes`` numbers TensorFlow cannot batch and cast to floats are refused
    (a tensor, a ``tf.data`` element or a streamed batch of them fails inside TensorFlow
    otherwise); complex tensors are the model's to judge (a complex model input takes them).

    Args:
        path: Where the tensor was found (``"x"``, ``"y['out']"``).
        dtype: Its TensorFlow dtype.
        sparse: For the values of a sparse tensor.

    Returns:
        What failed, what was expected, how to fix; None when TensorFlow can use it.
    """
    try:
        numpy_dtype = np.dtype(dtype.as_numpy_dtype)
    except (TypeError, AttributeError):
        return None
    if unusable_dtype(numpy_dtype) != "tensorflow":
        return None
    return dtype_refusal(path, numpy_dtype, sparse)
