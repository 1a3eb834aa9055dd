"""``fitpipe.adapt`` and :class:`Pipeline`: any supported input as one batched ``tf.data``.

Separation of concerns (who owns what on the way from an input to batches):

==================  =======================================================================
Owner               Concern
==================  =======================================================================
``AdaptRequest``    what an adapter reads: the input, its schema, batch size, shuffle,
                    steps, the call's ``mode`` (train/evaluate/predict: roles read,
                    sharding) and ``caller`` (messages)
``PipelineOptions`` what only the pipeline reads (``pipeline.options``): class weights,
                    the tf.data service, ``validation_split``, the model's output names,
                    with the batching arguments it shares with the request
Adapter             reading one input form into a source: rows (:class:`ArraySource`) or
                    batches (a batch source), with the capabilities it has
Pipeline (here)     batching, shuffling and resident rows (``pipeline.arrays``), class
                    weights (``pipeline.class_weights``), ``validation_split``
                    (``pipeline.split``), prefetch and the tf.data service
                    (``pipeline.service``), batches distributed over a strategy's
                    replicas (``pipeline.distributed``); it asks the source's
                    capabilities by ``isinstance`` (Seekable, Paced, Resumable, Shardable,
                    Checkable)
Trainer             epochs, steps, callbacks, the replicas' step under a strategy
                    (``training.distribute``): only through :class:`Pipeline`
==================  =======================================================================
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import (
    Adapter,
    AdaptRequest,
    ArraySource,
    BatchSourceBase,
    Checkable,
    Paced,
    Resumable,
    Seekable,
    Shardable,
    Shuffle,
    Source,
    Timed,
    check_supported,
    registry,
    unsupported,
)
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, FitpipeWarning, message
from fitpipe.pipeline import service
from fitpipe.pipeline.arrays import ResidentRows, array_dataset, resolve_batch_size
from fitpipe.pipeline.class_weights import (
    ClassWeightPlan,
    class_weight_table,
    source_class_weight,
    weighted_dataset,
    weighted_shard,
)
from fitpipe.pipeline.options import GIVEN_ORDER, PipelineOptions
from fitpipe.pipeline.service import check_address
from fitpipe.pipeline.split import ValidationSplit
from fitpipe.schemas import as_schema

__all__ = [
    "Pipeline",
    "Shard",
    "adapt",
    "adapt_source",
    "build_pipeline",
    "check_shuffle",
    "pipeline_from_source",
]


#: ``shard(index, count, replicas)``: shard ``index`` of ``count`` and the steps of every shard.
Shard = Callable[[int, int, int], tuple[tf.data.Dataset, int]]


class Pipeline:
    """One input, adapted: a ``tf.data.Dataset`` of Keras batches plus what the trainer needs.

    Iterating :attr:`dataset` once is one epoch; iterate it again for the next. Call
    :meth:`on_epoch_end` between epochs (inputs such as ``PyDataset`` rely on it) and
    :meth:`close` when done (or use the pipeline as a context manager).

    Args:
        adapter: The registered name of the adapter that took the input.
        source: What the adapter made of the input (rows or batches).
        dataset: The batches, one iteration per epoch.
        count_batches: Returns the batches in the coming epoch, or None when unknown.
        batch_size: Rows per batch, for row-addressed inputs.
        rows: The rows held in memory, when the trainer may slice batches from them.
        seek: ``seek(n)`` makes the next iteration read pass ``n`` (resumed runs).
        shard: How a :class:`~fitpipe.adapters.Shardable` source shards itself over workers
            (class weights applied), or None.
        made: The source's own dataset, when ``dataset`` is that dataset unchanged (the
            source's batch checks then see the batches the trainer takes), else None.

    Attributes:
        class_weight: The ``class_weight`` applied, checked and resolved (``"balanced"``
            computed), or None.
        split: How a grouped or stratified ``validation_split`` came out (set by the
            trainer on the training pipeline), or None.
    """

    def __init__(
        self,
        adapter: str,
        source: Source,
        dataset: tf.data.Dataset,
        count_batches: Callable[[], int | None],
        batch_size: int | None = None,
        rows: ResidentRows | None = None,
        seek: Callable[[int], None] | None = None,
        shard: Shard | None = None,
        made: tf.data.Dataset | None = None,
    ) -> None:
        self._adapter = adapter
        self._source = source
        self._dataset = dataset
        self._count_batches = count_batches
        self._batch_size = batch_size
        self._rows = rows
        self._seek = seek
        self._shard = shard
        self.class_weight: ClassWeightPlan | None = None
        self.split: ValidationSplit | None = None
        #: The source's own dataset, when :attr:`dataset` is that dataset unchanged.
        self.made = made

    @property
    def adapter(self) -> str:
        """The registered name of the adapter that took the input."""
        return self._adapter

    @property
    def source(self) -> Source:
        """What the adapter made of the input (rows or batches)."""
        return self._source

    @property
    def dataset(self) -> tf.data.Dataset:
        """Batches ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; one iteration per epoch."""
        return self._dataset

    @property
    def element_spec(self) -> Any:
        """The ``tf.TypeSpec`` structure of one batch."""
        return self._dataset.element_spec

    @property
    def num_batches(self) -> int | None:
        """Batches in the coming epoch, or None when unknown; asked again every epoch."""
        return self._count_batches()

    @property
    def batch_size(self) -> int | None:
        """Rows per batch for row-addressed inputs; None for inputs that come in batches."""
        return self._batch_size

    @property
    def rows(self) -> ResidentRows | None:
        """Rows held in memory, when the input is arrays that all fit (else None).

        A trainer may slice batches from them inside its compiled loop instead of iterating
        :attr:`dataset` (the same batches with ``shuffle=False``).
        """
        return self._rows

    @property
    def finite(self) -> bool:
        """False when the input is known never to end."""
        return self._source.finite

    @property
    def shard(self) -> Shard | None:
        """``shard(index, count, replicas)`` of a source that shards itself, else None.

        Returns the dataset of shard ``index`` of ``count`` (per-replica batches for its
        ``replicas`` replicas, zero-weight padded, class weights applied) and the steps
        every shard runs.
        """
        return self._shard

    def seek(self, pass_index: int) -> None:
        """Makes the next iteration of :attr:`dataset` read pass ``pass_index`` (0-based).

        Shuffled inputs draw each pass's order from the seed and the pass index, so a run
        resumed mid-epoch replays the order of the pass it stopped in. Inputs whose order does
        not depend on the pass ignore this.

        Args:
            pass_index: The pass over the input (0-based) the next iteration reads.
        """
        if self._seek is not None:
            self._seek(pass_index)
        elif isinstance(self._source, Seekable):
            self._source.seek(pass_index)

    def expect(self, batches: int | None) -> None:
        """Tells the input how many more batches the current iteration will be asked for.

        None means "until it ends". Inputs read once (generators) then never hand
        :attr:`dataset` batches that a dropped iterator would lose.

        Args:
            batches: The number of batches, or None.
        """
        if isinstance(self._source, Paced):
            self._source.expect(batches)

    def check_batches(self, check: Callable[[int, tuple[Any, ...]], None] | None) -> bool:
        """Has the source run ``check(index, batch)`` on each batch as it makes it (in Python).

        Only a :class:`~fitpipe.adapters.Checkable` source whose batches reach
        :attr:`dataset` unchanged (no class weights, no ``tf.data`` service) takes it;
        ``index`` counts the batches of each iteration from 0.

        Args:
            check: Raises to stop the iteration at a bad batch; None removes the check.

        Returns:
            Whether the source runs it (False: the caller checks the batches itself).
        """
        if not isinstance(self._source, Checkable):
            return False
        taken = check is None or (self.made is not None and self._dataset is self.made)
        self._source.check_batches(check if taken else None)
        return taken

    def input_state(self, pass_index: int, seen: int) -> Any:
        """The input's own iterator state after ``seen`` batches of pass ``pass_index``.

        Only inputs that keep one (Grain iterators) answer; None otherwise or when unknown.

        Args:
            pass_index: The pass over the input (0 for the first epoch's).
            seen: Batches of that pass read.

        Returns:
            The state (as the input's ``get_state()`` gave it), or None.
        """
        if isinstance(self._source, Resumable):
            return self._source.input_state(pass_index, seen)
        return None

    def restore_state(self, pass_index: int, seen: int, state: Any) -> None:
        """Makes pass ``pass_index`` continue from ``state`` (see :meth:`input_state`).

        Args:
            pass_index: The pass over the input to continue.
            seen: Batches of that pass already read before ``state`` was taken.
            state: A state :meth:`input_state` returned; inputs without one ignore it.
        """
        if isinstance(self._source, Resumable):
            self._source.restore_state(pass_index, seen, state)

    def on_epoch_end(self) -> None:
        """Tells the input an epoch ended (``PyDataset.on_epoch_end``)."""
        self._source.on_epoch_end()

    def stage_seconds(self) -> dict[str, float]:
        """Seconds the input spent so far in each stage it times (see ``adapters.stages``).

        Empty for inputs that time nothing (rows in memory, ``tf.data``).
        """
        if isinstance(self._source, Timed):
            return self._source.stage_seconds()
        return {}

    def take_error(self) -> BaseException | None:
        """Returns the exception user code raised while producing batches, if any."""
        return self._source.take_error()

    def close(self) -> None:
        """Stops workers and releases files held for the input."""
        self._source.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pipeline(adapter={self._adapter!r}, num_batches={self.num_batches})"


def _check_positive_int(value: Any, name: str, caller: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise FitpipeValueError(
            message(
                caller,
                f"got an invalid `{name}`",
                f"`{name}` is a positive integer or None",
                f"Pass e.g. `{name}=32`",
                **{name: value},
            )
        )


def adapt_source(
    request: AdaptRequest,
    options: PipelineOptions | None = None,
    *,
    warn_ignored: bool = True,
) -> tuple[Adapter, Source]:
    """Finds the adapter for ``request.x``, checks the arguments it supports, and adapts.

    Args:
        request: The adapter's request.
        options: The pipeline's options, whose given arguments (``class_weight``,
            ``validation_split``) the adapter must support too; None: none given.
        warn_ignored: Warn when ``shuffle=True`` is ignored by the input.

    Returns:
        The adapter and its source.

    """
    _check_positive_int(request.batch_size, "batch_size", request.caller)
    _check_positive_int(request.steps, "steps", request.caller)
    if request.x is None:
        raise FitpipeValueError(
            message(
                request.caller,
                "got no input",
                "`x` is the data to train on, evaluate or predict",
                "Pass `x`",
                x=None,
            )
        )
    adapter = registry.find(request.x, request.caller)
    values = {} if options is None else options.given()
    named = set(request.given()) | set(values)
    given = tuple(name for name in GIVEN_ORDER if name in named)
    if request.shuffle == "batch" and "shuffle" not in adapter.supports:
        raise _no_batch_shuffle(adapter, request)
    if "shuffle" in given and "shuffle" not in adapter.supports:
        if warn_ignored:
            warnings.warn(
                f"`{request.caller}` ignores `shuffle=True` for {adapter.accepts}: the input "
                "fixes its own order. Shuffle the input itself (e.g. `dataset.shuffle(n)`).",
                FitpipeWarning,
                stacklevel=3,
            )
        given = tuple(name for name in given if name != "shuffle")
    check_supported(adapter, request, given, values)
    if request.schema is not None:  # a mapping or a schema file path becomes a Schema
        request = dataclasses.replace(request, schema=as_schema(request.schema, request.caller))
    adapted = adapter.adapt(request)
    if not isinstance(adapted, (ArraySource, BatchSourceBase)):
        adapted.close()
        raise FitpipeTypeError(
            f"adapter {adapter.name!r} returned {type(adapted).__name__}, which is neither "
            "an ArraySource nor a batch source (BatchSource, BatchSourceBase)"
        )
    source: Source = adapted
    if request.shuffle == "batch" and not isinstance(source, ArraySource):
        source.close()
        raise _no_batch_shuffle(adapter, request)
    return adapter, source


def _no_batch_shuffle(adapter: Adapter, request: AdaptRequest) -> Exception:
    return unsupported(
        adapter,
        request,
        "shuffle",
        "rows addressed by index (arrays, tensors, frames, Arrow tables and small Parquet "
        "data held in memory), and this input is read in its own batches",
        "Pass `shuffle=True` or `shuffle=False`",
        shown='shuffle="batch"',
    )


def check_shuffle(shuffle: Any, caller: str) -> None:
    """Checks ``shuffle``: True, False (Python or NumPy bools) or ``"batch"``.

    Raises:
        FitpipeTypeError: For anything else.

    """
    if isinstance(shuffle, (bool, np.bool_)) or (isinstance(shuffle, str) and shuffle == "batch"):
        return
    raise FitpipeTypeError(
        message(
            caller,
            "got an invalid `shuffle`",
            '`shuffle` is True, False, or "batch" (shuffle in batch-sized chunks)',
            'Pass a bool or "batch"',
            shuffle=shuffle,
        )
    )


def pipeline_from_source(
    adapter_name: str,
    source: Source,
    options: PipelineOptions,
    *,
    seed: int | None = None,
) -> Pipeline:
    """Builds the pipeline of an adapted source (batching, shuffling, class weights, prefetch).

    Args:
        adapter_name: The adapter that made the source.
        source: The source.
        options: The pipeline's options (batch size, shuffle, class weights, steps).
        seed: Shuffle seed; drawn from NumPy's global generator when None.

    Returns:
        The pipeline.

    """
    plan = source_class_weight(options.class_weight, source, options.caller, options.output_names)
    class_weight = None if plan is None else plan.applied
    if isinstance(source, ArraySource):
        batch_size = resolve_batch_size(options.batch_size, options.steps, source.num_samples)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        if options.data_service is not None:  # rows as graph constants, for remote workers
            dataset = service.constant_array_dataset(source, batch_size, options.caller)
            rows, seek = None, None
        else:
            dataset, rows, seek = array_dataset(source, batch_size, options.shuffle, seed)
        batches = math.ceil(source.num_samples / batch_size)
        count: Callable[[], int | None] = lambda: batches  # noqa: E731
    else:
        batch_size, rows, seek = None, None, None
        dataset = source.make_dataset()
        count = source.count_batches
    made = dataset if isinstance(dataset, tf.data.Dataset) else None
    read_ahead = source.read_ahead
    shard: Shard | None = source.shard if isinstance(source, Shardable) else None
    if class_weight is not None:
        dataset = weighted_dataset(dataset, class_weight, parallel=read_ahead)
        if shard is not None:
            shard = weighted_shard(shard, class_weight)
        if rows is not None:
            rows = dataclasses.replace(rows, class_weights=class_weight_table(class_weight))
    if options.data_service is not None:
        reshuffle = None
        if isinstance(source, ArraySource) and options.shuffle == "batch":
            raise FitpipeValueError(
                message(
                    options.caller,
                    'cannot shuffle in batch-sized chunks (`shuffle="batch"`) on a tf.data service',
                    "Its workers read rows in their own order",
                    "Pass `shuffle=True`, or run the pipeline here (no `data_service`)",
                    shuffle=options.shuffle,
                )
            )
        if isinstance(source, ArraySource) and options.shuffle:
            reshuffle = (source.num_samples, batch_size or 0, seed or 0)
        dataset = service.on_service(
            dataset, options.data_service, options.caller, adapter_name, reshuffle
        )
        if not isinstance(source, ArraySource):  # workers batch their own splits
            count = lambda: None  # noqa: E731
    if read_ahead:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    pipeline = Pipeline(
        adapter_name, source, dataset, count, batch_size, rows, seek, shard, made=made
    )
    pipeline.class_weight = plan
    return pipeline


def build_pipeline(
    request: AdaptRequest,
    options: PipelineOptions | None = None,
    *,
    warn_ignored: bool = True,
) -> Pipeline:
    """Adapts ``request.x`` and builds its pipeline.

    Args:
        request: The adapter's request.
        options: The pipeline's options (None: ``PipelineOptions.of(request)``).
        warn_ignored: Warn when ``shuffle=True`` is ignored by the input.

    Returns:
        The pipeline.

    """
    options = PipelineOptions.of(request) if options is None else options
    adapter, source = adapt_source(request, options, warn_ignored=warn_ignored)
    return pipeline_from_source(adapter.name, source, options)


def adapt(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    *,
    batch_size: int | None = None,
    shuffle: Shuffle = False,
    class_weight: Mapping[Any, Any] | str | None = None,
    schema: Any = None,
    steps: int | None = None,
    data_service: str | None = None,
) -> Pipeline:
    """Turns any supported input into a :class:`Pipeline` of Keras-style batches.

    Args:
        x: The input: arrays, tensors, lists/dicts of arrays, pandas objects, generators,
            ``tf.data.Dataset``, ``keras.utils.PyDataset``, or any form a registered adapter
            takes.
        y: Targets, for row-addressed inputs.
        sample_weight: Per-sample (or per-time-step) weights, for row-addressed inputs.
        batch_size: Rows per batch for row-addressed inputs (default 32).
        shuffle: Reshuffle rows every epoch (row-addressed inputs; others warn); ``"batch"``
            shuffles row-addressed inputs in batch-sized chunks (others refuse it).
        class_weight: Map from class index to weight, multiplied with ``sample_weight``;
            ``"balanced"`` (computed from the targets); or such values by output name
            (dict targets' keys). See :mod:`fitpipe.pipeline.class_weights`.
        schema: A declared schema, for columnar inputs.
        steps: Batches per epoch; with arrays and no ``batch_size`` it sets the batch size to
            ``ceil(rows / steps)``.
        data_service: Address of a tf.data service dispatcher (``"grpc://host:port"``): the
            pipeline then runs on its workers (see :mod:`fitpipe.pipeline.service`); an
            input whose pipeline calls into Python here is refused before any batch.

    Returns:
        The pipeline.

    Raises:
        UnsupportedInputError: When no adapter takes ``x`` (the message lists them).
        UnsupportedArgumentError: For arguments the chosen adapter does not support.
        FitpipeValueError: For invalid values and mismatched data.

    """
    check_shuffle(shuffle, "adapt")
    address = None if data_service is None else check_address(data_service, "adapt")
    request = AdaptRequest(
        x=x,
        y=y,
        sample_weight=sample_weight,
        batch_size=batch_size,
        shuffle=shuffle,
        schema=schema,
        steps=steps,
    )
    options = PipelineOptions.of(request, class_weight=class_weight, data_service=address)
    return build_pipeline(request, options)
