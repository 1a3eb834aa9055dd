"""Batches an :class:`~fitpipe.adapters.ArraySource` into a ``tf.data.Dataset``.

Rows are addressed by index: a dataset of index batches (reshuffled every epoch when asked) is
mapped to the rows of every leaf. Leaves stay where they are as long as possible:

* tensors, and NumPy arrays up to :data:`RESIDENT_BYTES_LIMIT` in all, are held once in CPU
  variables and gathered inside the graph (referred to by handle, never embedded as graph
  constants, so no 2 GB protobuf limit and no copy when tf.data serializes the pipeline);
* larger NumPy arrays are not converted at all: each batch is gathered from the NumPy memory,
  so a large array is never copied whole.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import DEFAULT_BATCH_SIZE, ArraySource
from fitpipe.schemas import pack_roles

__all__ = [
    "RESIDENT_BYTES_LIMIT",
    "ResidentRows",
    "array_dataset",
    "index_batches",
    "resolve_batch_size",
]

#: NumPy data up to this many bytes in all is converted to tensors; larger data is streamed.
RESIDENT_BYTES_LIMIT = 256 * 2**20


def resolve_batch_size(batch_size: int | None, steps: int | None, num_samples: int) -> int:
    """Returns the batch size: the given one, else ``ceil(rows / steps)``, else 32 (as Keras).

    Args:
        batch_size: The requested batch size, or None.
        steps: The requested batches per epoch, or None.
        num_samples: The rows.

    """
    if batch_size:
        return int(batch_size)
    if steps:
        return max(1, math.ceil(num_samples / steps))
    return DEFAULT_BATCH_SIZE


def _split_batches(order: tf.Tensor, num_samples: int, batch_size: int) -> tf.data.Dataset:
    full = num_samples // batch_size * batch_size
    batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], [-1, batch_size]))
    if full < num_samples:
        batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
    return batches


def index_batches(num_samples: int, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Returns a dataset of int64 index vectors, one per batch, last partial batch kept.

    A shuffled epoch draws one permutation of all rows (one vector, not one element per row,
    so memory stays at 8 bytes a row); each new iteration of the dataset draws a new one.

    Args:
        num_samples: Rows.
        batch_size: Rows per batch.
        shuffle: Reshuffle the rows on every iteration of the dataset.
        seed: Seed of the shuffle (drawn from NumPy's global generator by the caller, so
            ``keras.utils.set_random_seed`` makes runs reproducible).
    """
    if shuffle:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)

        def permute(epoch_seed: tf.Tensor) -> tf.data.Dataset:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(num_samples, dtype=tf.int64), seed=tf.stack([epoch_seed, seed])
            )
            return _split_batches(order, num_samples, batch_size)

        return seeds.flat_map(permute)
    num_batches = math.ceil(num_samples / batch_size)

    def span(i: tf.Tensor) -> tf.Tensor:
        start = i * batch_size
        return tf.range(start, tf.minimum(start + batch_size, num_samples), dtype=tf.int64)

    return tf.data.Dataset.range(num_batches).map(span)


def _gather_sparse(sparse: tf.SparseTensor, rows: tf.Tensor) -> tf.SparseTensor:
    ordered = tf.sparse.reorder(sparse)
    row_ids = ordered.indices[:, 0]
    nrows = ordered.dense_shape[0]
    values = tf.RaggedTensor.from_value_rowids(ordered.values, row_ids, nrows=nrows)
    rest = tf.RaggedTensor.from_value_rowids(ordered.indices[:, 1:], row_ids, nrows=nrows)
    picked_values = tf.gather(values, rows)
    picked_rest = tf.gather(rest, rows)
    new_rows = tf.expand_dims(picked_values.value_rowids(), 1)
    indices = tf.concat([new_rows, picked_rest.flat_values], axis=1)
    shape = tf.concat([tf.shape(rows, out_type=tf.int64), ordered.dense_shape[1:]], axis=0)
    return tf.SparseTensor(indices, picked_values.flat_values, shape)


def _gather(leaf: Any, rows: tf.Tensor) -> Any:
    if isinstance(leaf, tf.SparseTensor):
        return _gather_sparse(leaf, rows)
    return tf.gather(leaf, rows)


def _hold(leaf: Any) -> Any:
    """Keeps a dense leaf in a CPU variable: the dataset graph refers to it by handle.

    A tensor captured by a ``tf.data`` function is copied into the graph whenever tf.data
    serializes it (as it does at every iteration of a shuffled pipeline); a variable is not.
    """
    if isinstance(leaf, (tf.RaggedTensor, tf.SparseTensor)):
        return leaf
    with tf.device("/CPU:0"):
        return tf.Variable(leaf, trainable=False, shape=tf.TensorShape(np.shape(leaf)))


def _streams(leaf: Any, numpy_bytes: int) -> bool:
    return (
        isinstance(leaf, np.ndarray)
        and leaf.dtype.kind not in "US"
        and numpy_bytes > RESIDENT_BYTES_LIMIT
    )


def _make_gather(parts: tuple[Any, ...]) -> tuple[Callable[[tf.Tensor], Any], bool]:
    """Returns ``rows -> batch`` and whether every leaf is resident.

    Resident leaves are gathered in the graph; large NumPy leaves are streamed.
    """
    flat = tf.nest.flatten(parts)
    numpy_bytes = sum(leaf.nbytes for leaf in flat if isinstance(leaf, np.ndarray))
    streamed = [i for i, leaf in enumerate(flat) if _streams(leaf, numpy_bytes)]
    resident = {i: _hold(leaf) for i, leaf in enumerate(flat) if i not in streamed}
    streamed_arrays = [flat[i] for i in streamed]

    def take_rows(rows: np.ndarray) -> list[np.ndarray]:
        return [np.take(array, rows, axis=0) for array in streamed_arrays]

    def gather(rows: tf.Tensor) -> Any:
        out: list[Any] = [None] * len(flat)
        for i, leaf in resident.items():
            out[i] = _gather(leaf, rows)
        if streamed:
            dtypes = [tf.as_dtype(a.dtype) for a in streamed_arrays]
            taken = tf.numpy_function(take_rows, [rows], dtypes, stateful=False)
            for i, tensor, array in zip(streamed, taken, streamed_arrays, strict=True):
                tensor.set_shape([None, *array.shape[1:]])
                out[i] = tensor
        return tf.nest.pack_sequence_as(parts, out)

    return gather, not streamed


@dataclasses.dataclass(frozen=True)
class ResidentRows:
    """Rows held in memory as tensors, so a trainer can slice batches in its compiled loop.

    Attributes:
        gather: Graph function from a vector of row indices to one batch.
        num_samples: Rows.
        batch_size: Rows per batch (the last batch may be smaller).
        shuffle: Whether each epoch uses a new permutation.
        seed: Seed of the permutations.
    """

    gather: Callable[[tf.Tensor], Any]
    num_samples: int
    batch_size: int
    shuffle: bool
    seed: int

    @property
    def num_batches(self) -> int:
        """Batches per epoch."""
        return math.ceil(self.num_samples / self.batch_size)

    def order(self, epoch: int) -> tf.Tensor:
        """The rows of ``epoch`` in the order they are read: a permutation when shuffling."""
        rows = tf.range(self.num_samples, dtype=tf.int64)
        if not self.shuffle:
            return rows
        return tf.random.experimental.stateless_shuffle(rows, seed=[self.seed, epoch])


def array_dataset(
    source: ArraySource, batch_size: int, shuffle: bool, seed: int
) -> tuple[tf.data.Dataset, ResidentRows | None]:
    """Builds the dataset of Keras batches ``(x,)``, ``(x, y)`` or ``(x, y, sw)`` of one epoch.

    Args:
        source: The rows.
        batch_size: Rows per batch.
        shuffle: Reshuffle rows on every iteration.
        seed: Shuffle seed.

    Returns:
        The dataset (iterate it once per epoch), and the resident rows when every leaf is held
        in memory (None when some are streamed from NumPy).
    """
    parts = pack_roles(source.x, source.y, source.sample_weight)
    gather, resident = _make_gather(parts)
    indices = index_batches(source.num_samples, batch_size, shuffle, seed)
    dataset = indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    rows = ResidentRows(gather, source.num_samples, batch_size, shuffle, seed) if resident else None
    return dataset, rows
