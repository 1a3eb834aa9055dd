"""``tf.distribute`` distributed datasets, read as they are.

They come from ``strategy.experimental_distribute_dataset`` or
``strategy.distribute_datasets_from_function``. The batches are already split over the
strategy's replicas, so the pipeline adds nothing to them (no class weights, no prefetch):
the trainer iterates the distributed dataset itself, for a model built under the same
strategy (see :mod:`fitpipe.training.distribute`). The pipeline's own ``dataset`` is a
stand-in with one replica's element spec, used for checks.

A model built under no strategy takes one too when the dataset's strategy has a single
replica, as Keras' own ``fit`` does: its batches are then plain tensors (the default strategy
reads them as they are). Over more replicas its batches are per-replica values, which such a
model cannot take (Keras fails inside the step): an error says so (:func:`replicas_of`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.errors import FitpipeValueError, message

__all__ = ["DistributedDatasetAdapter", "not_distributed_error", "replicas_of"]


def _replica_spec(spec: Any) -> Any:
    """One replica's spec of a per-replica spec (a plain spec with one replica)."""
    if type(spec).__name__ != "PerReplicaSpec":
        return spec
    return spec._component_specs[0]


def replicas_of(distributed: Any) -> int:
    """The replicas a distributed dataset splits its batches over.

    Args:
        distributed: A ``tf.distribute`` distributed dataset.

    Returns:
        Its strategy's replicas in sync (every worker's), or, for a dataset that does not
        name its strategy, the replicas of its per-replica element spec (1 for plain specs).
    """
    strategy = getattr(distributed, "_strategy", None)
    replicas = getattr(strategy, "num_replicas_in_sync", None)
    if isinstance(replicas, int):
        return replicas
    specs = [
        spec
        for spec in tf.nest.flatten(distributed.element_spec, expand_composites=False)
        if type(spec).__name__ == "PerReplicaSpec"
    ]
    return max([len(spec._component_specs) for spec in specs], default=1)


def not_distributed_error(caller: str, x: Any) -> FitpipeValueError:
    """The error for a dataset distributed over several replicas, for a model built under none."""
    return FitpipeValueError(
        message(
            caller,
            f"got a dataset distributed over {replicas_of(x)} replicas for a model built under "
            "no `tf.distribute` strategy",
            "Such a model takes a distributed dataset only when its strategy has one replica "
            "(its batches are then plain tensors); over more, each batch is split into "
            "per-replica parts that only a model built under that strategy can run",
            "Build and compile the model inside `strategy.scope()`, or pass the "
            "`tf.data.Dataset` itself",
            x=x,
        )
    )


class DistributedDatasetAdapter:
    """Takes a ``tf.distribute.DistributedDataset`` of ``(x,)``, ``(x, y)`` or ``(x, y, sw)``."""

    name = "distributed"
    accepts = "a tf.distribute distributed dataset"
    supports = frozenset({"steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for distributed datasets (from either ``tf.distribute`` function)."""
        return isinstance(x, tf.distribute.DistributedDataset)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Checks the element structure; the number of batches comes from the cardinality.

        Args:
            request: The request.

        Returns:
            The batch source, whose ``distributed`` is the input.

        Raises:
            FitpipeValueError: When the elements are not ``(x,)``/``(x, y)``/``(x, y, sw)``.

        """
        distributed = request.x
        spec = tf.nest.map_structure(_replica_spec, distributed.element_spec)
        if not isinstance(spec, tuple) or hasattr(type(spec), "_fields") or not 1 <= len(spec) <= 3:
            raise FitpipeValueError(
                message(
                    request.caller,
                    "got a distributed dataset whose elements are not tuples of 1 to 3 parts",
                    "Distributed batches are `(x,)`, `(x, y)` or `(x, y, sample_weight)`",
                    "Map the dataset to tuples before distributing it, e.g. "
                    "`dataset.map(lambda x: (x,))`",
                    x=distributed,
                )
            )
        cardinality = getattr(distributed, "cardinality", None)
        count = int(cardinality) if cardinality is not None and int(cardinality) >= 0 else None
        infinite = cardinality is not None and int(cardinality) == tf.data.INFINITE_CARDINALITY
        caller = request.caller

        def refuse() -> Iterator[Any]:  # the stand-in is never read under a strategy
            raise not_distributed_error(caller, distributed)
            yield  # pragma: no cover

        stand_in = tf.data.Dataset.from_generator(refuse, output_signature=spec)
        return BatchSource(
            make_dataset=lambda: stand_in,
            count_batches=lambda: count,
            finite=not infinite,
            read_ahead=False,
            distributed=distributed,
        )
