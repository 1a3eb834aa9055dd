"""PyTorch tensors as NumPy arrays, recognised and converted without importing torch.

A tensor is converted as Keras' own ``convert_to_numpy`` does it: detached from the autograd
graph (a tensor that ``requires_grad`` cannot give NumPy its values otherwise), moved to the
CPU, and a ``bfloat16`` tensor (which NumPy cannot read) read through ``float32`` into an
array of ``tf.bfloat16.as_numpy_dtype`` (``ml_dtypes.bfloat16``). A CPU
tensor's values are shared, not copied.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["is_torch_tensor", "torch_to_numpy"]


def is_torch_tensor(value: Any) -> bool:
    """Tells, without importing torch, whether ``value`` is a ``torch.Tensor`` (or subclass)."""
    return any(
        klass.__name__ == "Tensor" and getattr(klass, "__module__", None) == "torch"
        for klass in type(value).__mro__
    )


def torch_to_numpy(tensor: Any) -> np.ndarray:
    """The values of a ``torch.Tensor`` as a NumPy array (detached, on the CPU).

    Args:
        tensor: A ``torch.Tensor`` on any device, with or without ``requires_grad``.

    Returns:
        The array; of ``tf.bfloat16.as_numpy_dtype`` for a ``torch.bfloat16`` tensor.

    Raises:
        TypeError: For tensors NumPy cannot hold (sparse layouts, some dtypes), from torch.

    """
    value = tensor.detach()
    if value.device.type != "cpu":
        value = value.cpu()
    if str(value.dtype) == "torch.bfloat16":
        return np.asarray(value.float().numpy()).astype(tf.bfloat16.as_numpy_dtype)
    return np.asarray(value.numpy())
