"""A pipeline's batches distributed over a ``tf.distribute`` strategy's replicas.

The dataset side of distribution (the step side, running the model's step on every replica
and reducing its outputs, is :mod:`fitpipe.training`'s):

* in-memory inputs, and prediction, use ``strategy.experimental_distribute_dataset`` (the
  strategy's normal auto-sharding);
* sources that can shard themselves (a :class:`Pipeline` with a ``shard`` function: Parquet
  through :class:`~fitpipe.adapters.Shardable`, resident rows that allow it through
  ``ArraySource.shard_rows``) use ``strategy.distribute_datasets_from_function``: each worker
  reads only its own part, every worker runs the same number of steps (see
  :mod:`fitpipe.adapters.sharding` and :mod:`fitpipe.pipeline.sharding`);
* an input distributed by a strategy already is iterated as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from fitpipe.adapters import ArraySource, Mode, not_distributed_error, replicas_of
from fitpipe.errors import FitpipeValueError, message
from fitpipe.pipeline.core import Pipeline
from fitpipe.pipeline.sharding import array_shard

#: A ``tf.data`` stage: the dataset of a pipeline's batches, mapped.
Stage = Callable[[tf.data.Dataset], tf.data.Dataset]

__all__ = [
    "DistributedPipeline",
    "distribute_pipeline",
    "is_multi_worker",
    "predistributed_without_strategy",
]


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether the strategy spans several workers (``MultiWorkerMirroredStrategy``)."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


class DistributedPipeline(Pipeline):
    """A pipeline whose :attr:`dataset` is a ``tf.distribute`` distributed dataset.

    Everything else (element spec, errors, epoch hooks, closing) is the base pipeline's.

    Attributes:
        staged: ``staged(stage)`` distributes the batches again, each passed through
            ``stage`` (a ``tf.data`` map: the trainer's value checks) before they are split
            over the replicas; None for a dataset the user distributed.
    """

    def __init__(
        self,
        base: Pipeline,
        distributed: Any,
        count: Callable[[], int | None],
        staged: Callable[[Stage], Any] | None = None,
    ) -> None:
        super().__init__(
            base.adapter, base.source, base.dataset, count, base.batch_size, None, None, base.shard
        )
        self.base = base
        self.distributed = distributed
        self.staged = staged

    @property
    def dataset(self) -> Any:
        """The distributed dataset (iterate it once per epoch)."""
        return self.distributed

    def seek(self, pass_index: int) -> None:
        """Makes the next iteration read pass ``pass_index`` (see :meth:`Pipeline.seek`)."""
        self.base.seek(pass_index)


def _sharded(
    strategy: tf.distribute.Strategy,
    build: Callable[[int, int, int], tuple[tf.data.Dataset, int]],
    stage: Stage | None = None,
) -> tuple[Any, int]:
    """Distributes per-worker datasets built from the strategy's input context."""
    steps: list[int] = []

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
        dataset, count = build(context.input_pipeline_id, context.num_input_pipelines, per_pipeline)
        dataset = dataset if stage is None else stage(dataset)
        steps.append(count)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options)

    distributed = strategy.distribute_datasets_from_function(dataset_fn)
    return distributed, steps[0]


def predistributed_without_strategy(pipeline: Pipeline, caller: str) -> Pipeline:
    """The pipeline of a model built under no strategy, for an input distributed already.

    A dataset distributed by a strategy of one replica yields plain tensors: it is iterated
    as it is, as Keras' own ``fit`` iterates it with the default strategy. Any other input
    is returned unchanged.

    Args:
        pipeline: The pipeline, as built for one device.
        caller: The public method, for messages.

    Returns:
        The pipeline, or one that iterates the distributed dataset.

    Raises:
        FitpipeValueError: For a dataset distributed over more than one replica.
    """
    distributed = pipeline.source.distributed
    if distributed is None:
        return pipeline
    if replicas_of(distributed) != 1:
        raise not_distributed_error(caller, distributed)
    return DistributedPipeline(pipeline, distributed, lambda: pipeline.num_batches)


def _common_seed(strategy: tf.distribute.Strategy, seed: int) -> int:
    """One shuffle seed for all workers (the sum of theirs), so their shards stay disjoint."""
    value = strategy.run(lambda: tf.constant(seed, tf.int64))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
    return int(total) % (2**31 - 1)


def _check_rows_per_replica(pipeline: Pipeline, replicas: int, caller: str) -> None:
    """Refuses training batches of fewer rows than replicas (a replica would get none).

    A replica given no rows adds a loss of 0 to the replicas' average: the step trains at a
    fraction of its gradient, silently (Keras' own ``fit`` fails inside its step there).
    """
    size, total = pipeline.batch_size, getattr(pipeline.source, "num_samples", None)
    if size is None or replicas <= 1:
        return
    rows = min(size, total) if isinstance(total, int) and total > 0 else size
    if rows >= replicas:
        return
    fix = f"Pass a `batch_size` of at least {replicas} (a multiple of {replicas} splits evenly)"
    if rows < size:
        fix += f", with at least {replicas} rows of data"
    raise FitpipeValueError(
        message(
            caller,
            f"cannot train on batches of {rows} row{'' if rows == 1 else 's'} over "
            f"{replicas} replicas",
            "Under a `tf.distribute` strategy every replica takes rows of each batch: one "
            "given none adds a loss of 0 to the replicas' average, and the step would train "
            "at a fraction of its gradient",
            fix,
            batch_size=size,
        )
    )


def distribute_pipeline(
    pipeline: Pipeline, strategy: tf.distribute.Strategy, mode: Mode, caller: str
) -> Pipeline:
    """Distributes a pipeline's batches over the strategy's replicas.

    When training and evaluating over several workers, sources that shard themselves
    (Parquet, and rows that allow it, ``ArraySource.shard_rows``: Arrow tables by row
    blocks) give each worker its own rows, padded with zero-weight rows so all workers run
    the same steps. Everything else (one worker's replicas, and prediction, whose rows must
    all come back in order) uses ``strategy.experimental_distribute_dataset``.

    Args:
        pipeline: The pipeline, as built for one device.
        strategy: The model's strategy.
        mode: What the call does (prediction is never sharded at the source).
        caller: The public method, for messages.

    Returns:
        A pipeline whose dataset is distributed (never resident rows); an input that was
        distributed already is iterated as it is.
    """
    source, rows = pipeline.source, pipeline.rows
    if mode is Mode.TRAIN:
        _check_rows_per_replica(pipeline, strategy.num_replicas_in_sync, caller)
    if source.distributed is not None:  # as it is
        return DistributedPipeline(pipeline, source.distributed, lambda: pipeline.num_batches)
    build = None
    # One worker reads every row: its batches are split over its replicas as Keras splits
    # them, never padded (padding rows count in unweighted metrics and the loss's mean).
    shards = mode.shards and is_multi_worker(strategy)
    if shards and pipeline.shard is not None:
        build = pipeline.shard
    elif shards and isinstance(source, ArraySource) and source.shard_rows and rows is not None:
        if rows.shuffle:
            rows = dataclasses.replace(rows, seed=_common_seed(strategy, rows.seed))
        build = array_shard(rows, caller)
    if build is not None:
        distributed, steps = _sharded(strategy, build)
        shard = build
        return DistributedPipeline(
            pipeline, distributed, lambda: steps, lambda stage: _sharded(strategy, shard, stage)[0]
        )
    distributed = strategy.experimental_distribute_dataset(pipeline.dataset)
    return DistributedPipeline(
        pipeline,
        distributed,
        lambda: pipeline.num_batches,
        lambda stage: strategy.experimental_distribute_dataset(stage(pipeline.dataset)),
    )
