"""Rows held in memory (Arrow tables), sharded over workers by blocks of rows.

Each epoch's row order (a permutation when shuffling, the same on every worker) is cut into
blocks of one shard-step of rows; blocks are dealt round-robin to the shards, so step ``i``
of the cluster reads exactly the rows of batch ``i`` on one device. The last step is padded
with zero-weight rows (see :mod:`fitpipe.adapters.sharding`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from fitpipe.adapters import no_autograph, per_replica_batch, plan_shards
from fitpipe.pipeline.arrays import ResidentRows, shuffled_order

__all__ = ["array_shard", "padded_gather"]


def padded_gather(gather: Callable[[tf.Tensor], Any], indices: tf.Tensor) -> tuple[Any, ...]:
    """Gathers the rows of ``indices``; index -1 is a padding row with sample weight 0.

    Args:
        gather: Graph function from row indices to ``(x, y)`` or ``(x, y, sw)``.
        indices: int64 row indices, -1 for padding.

    Returns:
        ``(x, y, sw)`` with ``sw`` 0 on padding rows (1 on real rows if there was none).
    """
    real = tf.cast(indices >= 0, tf.float32)
    batch = tuple(gather(tf.maximum(indices, 0)))
    if len(batch) < 3:
        return (*batch, real)
    x, y, sw = batch
    rank = sw.shape.rank or 1
    weight = tf.reshape(real, [-1] + [1] * (rank - 1))
    return x, y, sw * tf.cast(weight, sw.dtype)


def _shard_indices(
    order: tf.Tensor, rows: int, steps: int, count: int, index: int, size: int, replicas: int
) -> tf.data.Dataset:
    block = size * replicas
    padding = steps * count * block - rows
    padded = tf.concat([order, -tf.ones([padding], tf.int64)], axis=0)
    mine = tf.reshape(padded, [steps, count, block])[:, index, :]
    return tf.data.Dataset.from_tensor_slices(tf.reshape(mine, [steps * replicas, size]))


def array_shard(
    rows: ResidentRows, caller: str = "fit"
) -> Callable[[int, int, int], tuple[tf.data.Dataset, int]]:
    """The ``shard(index, count, replicas)`` function of rows held in memory.

    Args:
        rows: The pipeline's resident rows (their ``gather`` includes class weights).
        caller: The public method, for errors.

    Returns:
        A function returning the dataset of one shard (per-replica batches) and the steps
        every shard runs.
    """

    def build(index: int, count: int, replicas: int) -> tuple[tf.data.Dataset, int]:
        size = per_replica_batch(rows.batch_size, count * replicas, caller)
        block = size * replicas
        n = rows.num_samples
        blocks = [min(block, n - b * block) for b in range(math.ceil(n / block))]
        steps = plan_shards(blocks, count, block).steps

        def indices(order: tf.Tensor) -> tf.data.Dataset:
            return _shard_indices(order, n, steps, count, index, size, replicas)

        if rows.shuffle:
            seeds = tf.data.Dataset.random(seed=rows.seed, rerandomize_each_iteration=True)

            @no_autograph
            def shuffled(seed: tf.Tensor) -> tf.data.Dataset:
                key = tf.stack([seed, rows.seed])
                order = shuffled_order(n, rows.batch_size, rows.shuffle, key)
                return indices(tf.cast(order, tf.int64))

            dataset = seeds.take(1).flat_map(shuffled)
        else:
            dataset = indices(tf.range(n, dtype=tf.int64))
        gather = rows.gather
        return dataset.map(no_autograph(lambda idx: padded_gather(gather, idx))), steps

    return build
