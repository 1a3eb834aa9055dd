"""Sharding at the source: which worker reads which rows, planned before anything is read.

Under a multi-worker strategy every worker (``tf.distribute`` calls it an input pipeline)
reads only its own units (Parquet row groups, or blocks of in-memory rows), dealt out
round-robin in order: unit ``u`` goes to shard ``u % shards``. All shards run the same
number of steps: a shard with fewer rows is padded at its end with rows whose sample weight
is 0, so no row is dropped and none counts twice. Rows without a sample weight get weight 1.

Round-robin in order means that when each unit holds exactly one shard-step of rows, step
``i`` of the cluster sees the same rows as step ``i`` on one device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from fitpipe.errors import FitpipeValueError, message

__all__ = ["ShardPlan", "pad_shard", "per_replica_batch", "plan_shards", "with_weights"]


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """How the units of a source are dealt to shards, and the steps every shard runs.

    Attributes:
        units: For each shard, the indices of the units it reads, in order.
        rows: For each shard, its real rows.
        rows_per_step: Rows one shard feeds per step (per-replica batch x its replicas).
        steps: Steps every shard runs.
    """

    units: tuple[tuple[int, ...], ...]
    rows: tuple[int, ...]
    rows_per_step: int
    steps: int

    def padding(self, shard: int) -> int:
        """Zero-weight rows appended to ``shard`` so it runs :attr:`steps` steps."""
        return self.steps * self.rows_per_step - self.rows[shard]


def plan_shards(unit_rows: Sequence[int], shards: int, rows_per_step: int) -> ShardPlan:
    """Deals units round-robin to ``shards`` and counts the steps of the longest shard.

    Args:
        unit_rows: The rows of each unit (row group, row block), in source order.
        shards: The number of shards (input pipelines, one per worker).
        rows_per_step: Rows each shard feeds per step.

    Returns:
        The plan.
    """
    units = tuple(tuple(range(s, len(unit_rows), shards)) for s in range(shards))
    rows = tuple(sum(unit_rows[u] for u in part) for part in units)
    steps = max(1, max(math.ceil(r / rows_per_step) for r in rows))
    return ShardPlan(units, rows, rows_per_step, steps)


def per_replica_batch(batch_size: int, replicas: int, caller: str) -> int:
    """The rows each replica gets of a global batch (which must split evenly).

    Args:
        batch_size: The global batch size.
        replicas: All replicas in sync.
        caller: The public method, for the error.

    Raises:
        FitpipeValueError: When the batch does not split evenly over the replicas.
    """
    if batch_size % replicas:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot split a batch of {batch_size} rows evenly over {replicas} replicas",
                "A source sharded over workers needs a global `batch_size` divisible by the "
                "number of replicas in sync",
                f"Pass a `batch_size` that is a multiple of {replicas}",
                batch_size=batch_size,
            )
        )
    return batch_size // replicas


def with_weights(chunks: tf.data.Dataset) -> tf.data.Dataset:
    """Adds a sample weight of 1 to every row of ``(x, y)`` chunks (others pass through)."""
    if len(chunks.element_spec) == 3:
        return chunks

    @tf.autograph.experimental.do_not_convert
    def add(*parts: Any) -> tuple[Any, ...]:
        rows = tf.shape(tf.nest.flatten(parts[0])[0])[0]
        return (*parts, tf.ones([rows], tf.float32))

    return chunks.map(add)


def _zeros(spec: Any, rows: int, caller: str) -> tf.Tensor:
    if not isinstance(spec, tf.TensorSpec) or not spec.shape[1:].is_fully_defined():
        raise FitpipeValueError(
            message(
                caller,
                "cannot pad a sharded source with variable-length columns",
                "Padding a worker's last batch needs fixed-size columns",
                "Give the variable-length columns a fixed length with `Schema(lengths=...)`",
                spec=spec,
            )
        )
    return tf.zeros([rows, *spec.shape[1:]], spec.dtype)


def pad_shard(chunks: tf.data.Dataset, rows: int, caller: str) -> tf.data.Dataset:
    """Appends ``rows`` zero rows with sample weight 0 to weighted ``(x, y, sw)`` chunks.

    Args:
        chunks: Weighted chunks (see :func:`with_weights`).
        rows: The padding rows (0: unchanged).
        caller: The public method, for errors.
    """
    if rows <= 0:
        return chunks
    padding = tf.nest.map_structure(lambda s: _zeros(s, rows, caller), chunks.element_spec)
    return chunks.concatenate(tf.data.Dataset.from_tensors(padding))
