"""TensorFlow tensors: dense, ragged and sparse (and variables, read as tensors)."""

from __future__ import annotations

from typing import Any

from fitpipe.adapters.arrays import ArrayFamilyAdapter, is_tf_value


class TensorAdapter(ArrayFamilyAdapter):
    """Takes one ``tf.Tensor``, ``tf.RaggedTensor``, ``tf.SparseTensor`` or ``tf.Variable``."""

    name = "tensor"
    accepts = "a tf.Tensor, tf.RaggedTensor or tf.SparseTensor"

    def can_adapt(self, x: Any) -> bool:
        """True for TensorFlow values."""
        return is_tf_value(x)
