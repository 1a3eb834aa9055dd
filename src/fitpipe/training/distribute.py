"""Training under a ``tf.distribute`` strategy: the model's own step, run on every replica.

A model built under ``strategy.scope()`` keeps that strategy (Keras 3 records it as
``model.distribute_strategy``). fitpipe then does what Keras' own TensorFlow trainer does:

* the step runs as ``strategy.run(model.train_step, args=(batch,))``; the logs of the
  replicas are reduced with a mean (metric variables are already synchronized by Keras), and
  predictions are concatenated in replica order;
* the input is distributed by the strategy through the pipeline
  (:func:`fitpipe.pipeline.distribute_pipeline`: in-memory inputs auto-sharded, sources that
  shard themselves read by their own worker only); this module is the step side only;
* the step is not XLA-compiled (cross-replica reductions run outside XLA on CPU), and batches
  are never sliced from resident rows inside the compiled loop.

With the default strategy nothing here is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from fitpipe.adapters import Share
from fitpipe.errors import FitpipeValueError, message
from fitpipe.pipeline import (
    check_address,
    distribute_pipeline,
    is_multi_worker,
    predistributed_without_strategy,
)
from fitpipe.schemas import Mode
from fitpipe.training.sharing import chief_shares
from fitpipe.training.steps import StepFunction

__all__ = [
    "build_for_batch",
    "build_state",
    "distributed_pipeline",
    "distributed_step",
    "input_share",
    "step_function",
    "strategy_of",
]

_DEFAULT = None if tf.distribute.has_strategy() else tf.distribute.get_strategy()


def strategy_of(model: Any) -> tf.distribute.Strategy | None:
    """The strategy the model was built under, or None for the default (one device).

    Args:
        model: A Keras model.

    Returns:
        The strategy, or None.

    Raises:
        FitpipeValueError: For ``ParameterServerStrategy``, which needs a coordinator.
    """
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or strategy is _DEFAULT:
        return None
    if type(strategy).__name__ == "_DefaultDistributionStrategy":
        return None
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        raise FitpipeValueError(
            message(
                "fit",
                "does not support ParameterServerStrategy",
                "fitpipe runs synchronous strategies (MirroredStrategy, "
                "MultiWorkerMirroredStrategy)",
                "Build the model under a MirroredStrategy or MultiWorkerMirroredStrategy",
                strategy=strategy,
            )
        )
    return strategy


def service_address(address: Any, model: Any) -> str | None:
    """Checks ``fit``'s ``data_service`` argument (None: the pipeline runs here).

    Refused under ``MultiWorkerMirroredStrategy``, before any collective: every worker
    would run a service job of its own, whose batches arrive in an order of their own, and
    keep its part of each. Shuffled rows are then lost or doubled between the workers (a
    two-worker run lost and doubled 6 of 44 rows in its second epoch), pipelines the
    service workers batch are cut differently for each worker, and the service produces
    every batch once per worker.

    Args:
        address: The argument, or None.
        model: The model trained (its strategy decides).

    Raises:
        FitpipeTypeError: For an address that is not a non-empty string.
        FitpipeValueError: Under ``MultiWorkerMirroredStrategy``.
    """
    if address is None:
        return None
    address = check_address(address, "fit")
    strategy = strategy_of(model)
    if strategy is not None and is_multi_worker(strategy):
        raise FitpipeValueError(
            message(
                "fit",
                "cannot read its input from a tf.data service under MultiWorkerMirroredStrategy",
                "Each worker would run a service job of its own, its batches in an order "
                "of its own: shuffled rows would be lost or doubled between the workers",
                "Drop `data_service` (each worker then reads its own share of the input), "
                "or train under MirroredStrategy on one machine",
                data_service=address,
            )
        )
    return address


def input_share(model: Any, caller: str) -> Share | None:
    """How the model's inputs are planned once for every worker (None: each plans its own).

    Under ``MultiWorkerMirroredStrategy`` the chief alone plans a source that plans from
    metadata (a Parquet source reads every file's footer) and shares the plan
    (:func:`~fitpipe.training.sharing.chief_shares`); a failed plan fails every worker.

    Args:
        model: The model (its strategy decides).
        caller: The public method, for messages.
    """
    strategy = strategy_of(model)
    if strategy is None or not is_multi_worker(strategy):
        return None
    return chief_shares(strategy, caller)


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], tf.SparseTensor):
        return tf.sparse.concat(0, parts)
    return tf.concat(parts, axis=0)


def _multi_worker_concat(value: Any, strategy: tf.distribute.Strategy) -> tf.Tensor:
    """Gathers every replica's rows on every worker, in global replica order (as Keras)."""
    local = strategy.experimental_local_results(value)
    sizes = tf.stack([tf.shape(v)[0] for v in local])
    gathered = strategy.gather(value, axis=0)
    all_sizes = strategy.gather(sizes, axis=0)  # one size per replica, grouped by worker
    parts = tf.split(gathered, all_sizes, num=strategy.num_replicas_in_sync)
    per_worker = len(strategy.extended.worker_devices)
    ordered: list[Any] = []
    for replica in range(per_worker):
        ordered += parts[replica::per_worker]
    result = _concat(ordered)
    if isinstance(result, tf.Tensor):  # the gather loses the inner shape: the replicas' own
        result.set_shape(tf.TensorShape([None]).concatenate(local[0].shape[1:]))
    return result


def reduce_outputs(outputs: Any, strategy: tf.distribute.Strategy, reduction: str) -> Any:
    """Reduces the per-replica outputs of ``strategy.run`` as Keras does.

    Args:
        outputs: A structure of per-replica values (or plain tensors).
        strategy: The strategy.
        reduction: ``"mean"`` (logs of train/test steps) or ``"concat"`` (predictions).

    Returns:
        A structure of plain tensors.
    """

    def one(value: Any) -> Any:
        if reduction == "concat":
            if is_multi_worker(strategy):
                return _multi_worker_concat(value, strategy)
            return _concat(list(strategy.experimental_local_results(value)))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

    return tf.nest.map_structure(one, outputs)


def distributed_step(
    strategy: tf.distribute.Strategy, step: Callable[[Any], Any], collect: bool
) -> Callable[[Any], Any]:
    """The model's step run on every replica, its outputs reduced.

    Args:
        strategy: The strategy.
        step: ``model.train_step``, ``test_step`` or ``predict_step``.
        collect: True for predictions (concatenated), False for logs (averaged).

    Returns:
        A function of one distributed batch.
    """
    reduction = "concat" if collect else "mean"

    @tf.autograph.experimental.do_not_convert
    def run(data: Any) -> Any:
        return reduce_outputs(strategy.run(step, args=(data,)), strategy, reduction)

    return run


class DistributedStepFunction(StepFunction):
    """:class:`StepFunction` of a replicated step, one global batch split over the replicas.

    Its compiled loops are the base class's explicit ``tf.while_loop``s (as in Keras'
    trainer): a replicated step inside an autograph loop's conditional (``break``) would
    fail to feed its captured placeholders.
    """

    strategy: tf.distribute.Strategy | None = None
    #: Per-replica batches: their value checks are a ``tf.data`` stage (``BatchChecks``).
    checks_in_loop = False
    #: Whether :func:`build_for_batch` created the state this step updates.
    state_built = False

    def on_batch(self, data: Any, caller: str | None, spec: Any) -> Any:
        """Runs one step on one given batch (the ``*_on_batch`` methods), as Keras does.

        ``train_on_batch`` and ``test_on_batch`` give every replica the whole batch (as
        Keras' own methods do): each replica's loss is scaled by the number of replicas, so
        the summed gradients, the synchronized metrics and the averaged logs are the one
        device's for any number of rows (a split would leave a replica short or empty, whose
        logs and gradients would then count as much as a full one's). ``predict_on_batch``
        splits the batch and returns each row once.

        Args:
            data: The batch.
            caller: The public method (unused: errors reach the caller as TensorFlow's).
            spec: The batch's spec (unused).
        """
        assert self.strategy is not None
        if not self.collect:
            batch = self.strategy.experimental_distribute_values_from_function(lambda _: data)
            return self.one_step(batch)
        given = tuple(data) if isinstance(data, tuple) else (data,)
        present = len(given)
        while present > 1 and given[present - 1] is None:  # `(x, y, None)`: no weights
            present -= 1
        dataset = tf.data.Dataset.from_tensors(given[:present])
        rows = next(iter(self.strategy.experimental_distribute_dataset(dataset)))
        absent = (None,) * (len(given) - present)
        return self.one_step((*rows, *absent) if isinstance(data, tuple) else rows[0])


def step_function(
    strategy: tf.distribute.Strategy,
    step: Callable[[Any], Any],
    run_eagerly: bool,
    collect: bool,
    caller: str,
    mode: Mode,
) -> StepFunction:
    """The compiled step of a model built under ``strategy`` (never XLA-compiled).

    Args:
        strategy: The model's strategy.
        step: ``model.train_step``, ``test_step`` or ``predict_step``.
        run_eagerly: Run eagerly (debugging).
        collect: True for predict.
        caller: The public method, for messages.
        mode: What the step does.
    """
    replicated = distributed_step(strategy, step, collect)
    function = DistributedStepFunction(replicated, False, run_eagerly, collect, caller, mode)
    function.strategy = strategy
    return function


def build_state(
    model: Any, strategy: tf.distribute.Strategy, element_spec: Any, caller: str = "fit"
) -> None:
    """Creates the model's, loss', metrics' and optimizer's variables under the strategy.

    Variables cannot be created inside a replicated step, so they are created first, eagerly
    on a batch of zeros shaped like the input (what Keras' own trainer does symbolically);
    the metrics are then reset.

    Args:
        model: The compiled model.
        strategy: Its strategy.
        element_spec: The spec of one batch ``(x,)``, ``(x, y)`` or ``(x, y, sw)``.
        caller: The public method, for messages.
    """
    specs = [spec for spec in tf.nest.flatten(element_spec) if spec is not None]
    if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
        return
    zeros = tf.nest.map_structure(
        lambda spec: (
            None
            if spec is None
            else tf.zeros([2 if d is None else d for d in spec.shape.as_list()], spec.dtype)
        ),
        element_spec,
    )
    x, y, sample_weight = (*zeros, None, None)[:3]
    with strategy.scope():
        y_pred = model(x, training=False)
        # (a model compiled without a loss computes its own, in its own step)
        if y is not None and getattr(model, "compiled", False) and model.loss is not None:
            model.compute_loss(x, y, y_pred, sample_weight, training=False)
            model.compute_metrics(x, y, y_pred, sample_weight)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            try:
                optimizer.build(model.trainable_variables)
            except RuntimeError as err:  # made outside the scope: tf's "Mixing different ..."
                raise _outside_scope(err, strategy, caller) from err
    model.reset_metrics()


def _outside_scope(
    err: RuntimeError, strategy: tf.distribute.Strategy, caller: str
) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            caller,
            "cannot build the optimizer over the model's strategy: it was made outside "
            f"`strategy.scope()` ({str(err).splitlines()[0][:160]})",
            "A model built under a strategy is compiled (its optimizer made) under the same "
            "strategy's scope",
            "Call `compile` inside `with strategy.scope():`",
            strategy=strategy,
        )
    )


def build_for_batch(function: StepFunction, model: Any, spec: Any) -> None:
    """Creates the state a ``train_on_batch``/``test_on_batch`` step updates, once per step.

    As Keras' own methods build the model, loss, metrics and optimizer before their first
    step (``_maybe_symbolic_build``): a replicated step that creates variables (a compiled
    metric's, the optimizer's) fails to feed its captured placeholders. A no-op without a
    strategy.

    Args:
        function: The step (a :class:`DistributedStepFunction` under a strategy).
        model: The compiled model.
        spec: The spec of the batch ``(x, y)`` or ``(x, y, sw)`` (``None`` where absent).
    """
    if not isinstance(function, DistributedStepFunction) or function.state_built:
        return
    assert function.strategy is not None
    build_state(model, function.strategy, spec)
    function.state_built = True


def distributed_pipeline(model: Any, pipeline: Any, mode: Mode, caller: str) -> Any:
    """The pipeline distributed over the model's strategy (unchanged without one).

    Args:
        model: The model, whose strategy (if any) the pipeline's batches are split over.
        pipeline: A :class:`fitpipe.pipeline.Pipeline`, or None (then None).
        mode: What the batches are read for.
        caller: The public method, for messages.
    """
    strategy = strategy_of(model)
    if pipeline is None:
        return None
    if strategy is None:  # a dataset distributed already: one replica's, as in Keras
        return predistributed_without_strategy(pipeline, caller)
    build_state(model, strategy, pipeline.element_spec, caller)
    return distribute_pipeline(pipeline, strategy, mode, caller)
