"""Rows in memory copied to the accelerator a trainer's step runs on.

A trainer slices the batches of rows in memory inside its compiled loop
(:class:`~fitpipe.pipeline.ResidentRows`). With the step on a GPU and the rows in host memory,
each call gathered its batches' rows on the host and copied them over (NumPy arrays over
:data:`~fitpipe.limits.RESIDENT_BYTES_LIMIT` a 16 MiB block at a time, read by a thread): on
an H200, 2,000,000 x 512 float32 rows trained at 350k samples a second, 0.09x of the same
step fed from rows already on the device (``benchmarks/RESULTS.md``). Rows copied there
once per call (``fit``, ``evaluate``, ``predict``) are gathered where the step runs.

What is copied: every dense leaf whose dtype TensorFlow can gather on a GPU
(:data:`DEVICE_DTYPES`), while the rows take at most :data:`~fitpipe.limits.DEVICE_ROWS_BYTES`
and the device has room (an allocation that fails leaves the rows where they were). Sparse,
ragged and string leaves stay in host memory; so do NumPy arrays too large to hold on the
host unless every leaf can be copied (they have no host copy to fall back on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe import limits
from fitpipe.pipeline.arrays import ResidentRows
from fitpipe.pipeline.numpy_rows import ArrayBlocks
from fitpipe.pipeline.row_picks import rows_variable

__all__ = ["DEVICE_DTYPES", "FILL_BYTES", "array_rows", "device_bytes", "placed_rows"]

#: Bytes of a NumPy array's rows copied to the device at a time (see ``_device_copy``).
FILL_BYTES = 64 * 2**20

#: The dtypes TensorFlow's ``GatherV2`` has GPU kernels for (``tensorflow/core/kernels/
#: gather_op.cc``): a leaf of another dtype would be gathered on the host from a device copy.
DEVICE_DTYPES = frozenset(
    {
        tf.bool,
        tf.int32,
        tf.int64,
        tf.float16,
        tf.bfloat16,
        tf.float32,
        tf.float64,
        tf.complex64,
        tf.complex128,
    }
)


def _copyable(leaf: Any) -> bool:
    dense = isinstance(leaf, (tf.Variable, np.ndarray))
    return dense and tf.as_dtype(leaf.dtype) in DEVICE_DTYPES


def _nbytes(leaves: Sequence[Any]) -> int:
    """The bytes of the copyable leaves (a held variable's rows are counted, not its shape's).

    A variable holding rows leaves its row count open (``row_picks.rows_variable``).
    """
    return sum(
        int(np.prod(_rows_shape(leaf))) * tf.as_dtype(leaf.dtype).size
        for leaf in leaves
        if _copyable(leaf)
    )


def _rows_shape(leaf: Any) -> tuple[int, ...]:
    if isinstance(leaf, tf.Variable):
        return tuple(int(n) for n in tf.shape(leaf))
    return tuple(leaf.shape)


def _device_copy(leaf: Any) -> tf.Variable:
    """A variable on the current device holding ``leaf``'s rows.

    A held variable is copied in one transfer. A large NumPy array is copied
    :data:`FILL_BYTES` of rows at a time into a variable made on the device: TensorFlow
    converts a NumPy array with a copy (1 GB: 0.3-4 s of faulting in fresh host memory), so
    converting it whole would hold a second copy of the caller's rows in host memory. int32
    arrays are converted whole: TensorFlow registers many of its GPU kernels for int32 with
    their tensors in host memory, and a sliced assignment of int32 rows on a GPU is untried.
    """
    if isinstance(leaf, tf.Variable):
        return rows_variable(leaf.value())
    if leaf.nbytes <= FILL_BYTES or leaf.dtype == np.int32:
        return rows_variable(leaf)
    variable = rows_variable(tf.zeros(leaf.shape, leaf.dtype))
    step = max(1, FILL_BYTES // max(1, leaf[:1].nbytes))
    for start in range(0, len(leaf), step):
        variable[start : start + step].assign(leaf[start : start + step])
    return variable


def _copied(leaves: Sequence[Any], device: str) -> list[Any] | None:
    """``leaves`` with each copyable one copied into a variable on ``device``.

    None when none could be copied, or the device ran out of memory (what was copied is let
    go with the list).
    """
    if not any(_copyable(leaf) for leaf in leaves):
        return None
    out: list[Any] = []
    try:
        with tf.device(device):
            out.extend(_device_copy(leaf) if _copyable(leaf) else leaf for leaf in leaves)
    except tf.errors.ResourceExhaustedError:
        return None
    return out


def placed_rows(rows: ResidentRows, device: str) -> ResidentRows:
    """``rows`` with their copyable leaves copied to ``device`` (as they were when they can't).

    Args:
        rows: Rows held in host memory.
        device: Where the step runs, e.g. ``"/device:GPU:0"``.

    Returns:
        New rows (the same batches, order and class weights), or ``rows`` when nothing was
        copied: no copyable leaf, over :data:`~fitpipe.limits.DEVICE_ROWS_BYTES`, or no room.
    """
    if _nbytes(rows.leaves) > limits.DEVICE_ROWS_BYTES:
        return rows
    leaves = _copied(rows.leaves, device)
    return rows if leaves is None else dataclasses.replace(rows, leaves=tuple(leaves))


def array_rows(blocks: ArrayBlocks, device: str, class_weights: Any = None) -> ResidentRows | None:
    """NumPy arrays too large to hold on the host, copied whole to ``device`` as rows.

    Args:
        blocks: The arrays' blocks, as a trainer would otherwise stream them.
        device: Where the step runs.
        class_weights: The class weight table applied to each batch, as ``ResidentRows``.

    Returns:
        Rows with the blocks' batch size, shuffle and seed, or None when a leaf's dtype has no
        GPU gather, the arrays take over :data:`~fitpipe.limits.DEVICE_ROWS_BYTES`, or the
        device has no room (the trainer then streams the blocks).
    """
    flat = tf.nest.flatten(blocks.parts)
    if not all(_copyable(leaf) for leaf in flat):
        return None
    if _nbytes(flat) > limits.DEVICE_ROWS_BYTES:
        return None
    leaves = _copied(flat, device)
    if leaves is None:
        return None
    structure = tf.nest.map_structure(lambda _: None, blocks.parts)
    return ResidentRows(
        tuple(leaves),
        structure,
        blocks.num_samples,
        blocks.batch_size,
        blocks.shuffle,
        blocks.seed,
        class_weights,
    )


def device_bytes(rows: ResidentRows, host: ResidentRows | None) -> int:
    """Bytes of ``rows``' leaves copied to the device: those not among ``host``'s leaves.

    Args:
        rows: Rows a trainer takes (``Pipeline.rows_on``).
        host: The rows held on the host they were copied from (None: copied from NumPy).
    """
    kept = () if host is None else host.leaves
    return _nbytes([leaf for leaf in rows.leaves if not any(leaf is other for other in kept)])
