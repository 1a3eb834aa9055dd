"""PyTorch tensors as NumPy arrays, recognised and converted without importing torch.

A tensor is converted as Keras' own ``convert_to_numpy`` does it: detached from the autograd
graph (a tensor that ``requires_grad`` cannot give NumPy its values otherwise), moved to the
CPU, and a ``bfloat16`` tensor (which NumPy cannot read) read through ``float32`` into an
array of ``tf.bfloat16.as_numpy_dtype`` (``ml_dtypes.bfloat16``). A CPU
tensor's values are shared, not copied.

Tensors NumPy cannot hold are refused with a fitpipe error naming the tensor (the argument
given, or the part of a ``DataLoader``'s batch) and the fix: sparse layouts
(``tensor.to_dense()``), nested tensors (``to_padded_tensor``), tensors on the ``meta``
device (no values) and dtypes NumPy has none of (float8, quantized, ``complex32``). One
conversion serves tensors given directly and the leaves of a loader's batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.errors import FitpipeTypeError, message, raw

__all__ = ["is_torch_tensor", "torch_to_numpy"]


def is_torch_tensor(value: Any) -> bool:
    """Tells, without importing torch, whether ``value`` is a ``torch.Tensor`` (or subclass)."""
    return any(
        klass.__name__ == "Tensor" and getattr(klass, "__module__", None) == "torch"
        for klass in type(value).__mro__
    )


def _shape(tensor: Any) -> str:
    try:
        return str(tuple(tensor.shape))
    except (RuntimeError, TypeError, ValueError):  # a nested tensor's rows differ
        return "unknown (rows of different shapes)"


def describe_tensor(tensor: Any) -> str:
    """A torch tensor in words: its shape, dtype, layout and device (never its values)."""
    return (
        f"torch.Tensor of shape {_shape(tensor)}, dtype {tensor.dtype}, layout {tensor.layout}, "
        f"device {tensor.device.type!r}"
    )


def _refusal(tensor: Any) -> tuple[str, str] | None:
    """``(what it is, how to fix it)`` for a tensor NumPy cannot hold; None for others."""
    dtype = str(tensor.dtype)
    if getattr(tensor, "is_nested", False):
        return (
            "a nested torch tensor (rows of different shapes)",
            "Pad it to one dense tensor (`tensor.to_padded_tensor(0.0)`), or unbind it "
            "(`tensor.unbind()`) and pad or stack its rows,",
        )
    if str(tensor.layout) != "torch.strided":
        return (
            f"a sparse torch tensor (layout {tensor.layout})",
            "Densify it with `tensor.to_dense()`",
        )
    if tensor.device.type == "meta":
        return (
            "a torch tensor on the meta device, which holds no values",
            "Materialize it (make it on a real device, e.g. `device='cpu'`, with its values: a "
            "meta tensor has a shape and a dtype only)",
        )
    if dtype.startswith("torch.float8"):
        return (f"a torch tensor of dtype {dtype}", "Cast it with `tensor.float()`")
    if getattr(tensor, "is_quantized", False):
        return (
            f"a quantized torch tensor (dtype {dtype})",
            "Dequantize it with `tensor.dequantize()`",
        )
    return None


def torch_to_numpy(tensor: Any, caller: str, where: str, fix_in: str) -> np.ndarray:
    """The values of a ``torch.Tensor`` as a NumPy array (detached, on the CPU).

    Args:
        tensor: A ``torch.Tensor`` on any device, with or without ``requires_grad``.
        caller: The public method being run.
        where: The tensor, for messages: ``"`x['a']`"`` or ``"`y` of batch 3 from the
            DataLoader"``.
        fix_in: Where the fix goes, ending the fix: ``"before passing it"``, ``"in the
            dataset or the `collate_fn`"``.

    Returns:
        The array; of ``tf.bfloat16.as_numpy_dtype`` for a ``torch.bfloat16`` tensor.

    Raises:
        FitpipeTypeError: For tensors NumPy cannot hold (sparse, nested, meta, float8, ...).

    """
    refusal = _refusal(tensor)
    error: Exception | None = None
    if refusal is None:
        try:
            return _numpy(tensor)
        except (TypeError, RuntimeError, NotImplementedError) as err:  # what torch raises
            refusal, error = (
                (
                    f"a torch tensor NumPy cannot hold ({err})",
                    "Convert it to a dense CPU tensor of a NumPy dtype (e.g. `tensor.float()`)",
                ),
                err,
            )
    what, fix = refusal
    raise FitpipeTypeError(
        message(
            caller,
            f"cannot read {where}, {what}",
            "Torch tensors are read as NumPy arrays: dense, with values, of a dtype NumPy has",
            f"{fix} {fix_in}",
            tensor=raw(describe_tensor(tensor)),
        )
    ) from error


def _numpy(tensor: Any) -> np.ndarray:
    value = tensor.detach()
    if value.device.type != "cpu":
        value = value.cpu()
    if str(value.dtype) == "torch.bfloat16":
        return np.asarray(value.float().numpy()).astype(tf.bfloat16.as_numpy_dtype)
    return np.asarray(value.numpy())
