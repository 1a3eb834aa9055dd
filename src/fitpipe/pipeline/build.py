"""Building a :class:`~fitpipe.pipeline.core.Pipeline`: from an input to batched ``tf.data``.

``adapt_source`` finds the adapter that takes the input and checks the arguments it supports;
``pipeline_from_source`` batches, shuffles, weighs by class and prefetches the source's
batches (or hands them to the tf.data service); ``build_pipeline`` does both, and ``adapt``
is the public entry point (``fitpipe.adapt``). The owners of each concern on the way are
listed in :mod:`fitpipe.pipeline.core`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import (
    Adapter,
    AdaptRequest,
    ArraySource,
    Blocked,
    RowBlocks,
    Shardable,
    Shuffle,
    Source,
    check_supported,
    read_when_asked,
    registry,
    supported,
    unsupported,
)
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, FitpipeWarning, message, warn
from fitpipe.pipeline import service
from fitpipe.pipeline.adapted import adapted_source
from fitpipe.pipeline.arrays import ResidentRows, array_dataset, resolve_batch_size
from fitpipe.pipeline.batch_contract import check_batch_spec, checked_count, checked_make
from fitpipe.pipeline.class_weight_plan import source_class_weight
from fitpipe.pipeline.class_weights import class_weight_table, weighted_dataset, weighted_shard
from fitpipe.pipeline.core import Deferred, Pipeline, Shard
from fitpipe.pipeline.device_rows import array_rows
from fitpipe.pipeline.options import GIVEN_ORDER, INT64_BOUND, PipelineOptions
from fitpipe.pipeline.service import check_address
from fitpipe.pipeline.split import check_splittable
from fitpipe.schemas import as_schema
from fitpipe.seeds import shuffle_seed

__all__ = [
    "adapt",
    "adapt_source",
    "build_pipeline",
    "check_positive_int",
    "check_shuffle",
    "pipeline_from_source",
]


def check_positive_int(value: Any, name: str, caller: str) -> None:
    """Raises the error of an invalid ``name`` unless ``value`` is None or a positive int."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 0 < int(value) < INT64_BOUND
    ):
        raise FitpipeValueError(
            message(
                caller,
                f"got an invalid `{name}`",
                f"`{name}` is a positive integer (below 2**63: TensorFlow counts rows in int64) "
                "or None",
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
    check_positive_int(request.batch_size, "batch_size", request.caller)
    check_positive_int(request.steps, request.steps_name, request.caller)
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
    supports = supported(adapter, request)
    if request.shuffle == "batch" and "shuffle" not in supports:
        raise _no_batch_shuffle(adapter, request)
    if "shuffle" in given and "shuffle" not in supports:
        if warn_ignored:
            warn(
                f"`{request.caller}` ignores `shuffle=True` for {adapter.accepts}: the input "
                "fixes its own order. Shuffle the input itself (e.g. `dataset.shuffle(n)`).",
                FitpipeWarning,
            )
        given = tuple(name for name in given if name != "shuffle")
    check_supported(adapter, request, given, values)
    if request.schema is not None:  # a mapping or a schema file path becomes a Schema
        request = dataclasses.replace(request, schema=as_schema(request.schema, request.caller))
    source: Source = adapted_source(adapter, request)
    try:
        if request.shuffle == "batch" and not isinstance(source, ArraySource):
            raise _no_batch_shuffle(adapter, request)
        check_splittable(adapter.name, source, request, options)
    except BaseException:
        source.close()
        raise
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
        seed: Shuffle seed; when None, drawn from TensorFlow's global seed if the rows are
            shuffled (:func:`fitpipe.seeds.shuffle_seed`), else 0.

    Returns:
        The pipeline.

    """
    plan = source_class_weight(options.class_weight, source, options.caller, options.output_names)
    class_weight = None if plan is None else plan.applied
    batch_size, rows, seek, array_blocks = None, None, None, None
    if isinstance(source, ArraySource):
        batch_size = resolve_batch_size(
            options.batch_size, options.steps, source.num_samples, options.caller
        )
        if seed is None:
            seed = shuffle_seed() if options.shuffle else 0
        make, rows, seek, array_blocks = _array_dataset(source, options, batch_size, seed)
        batches = math.ceil(source.num_samples / batch_size)
        count: Callable[[], int | None] = lambda: batches  # noqa: E731
    else:  # a batch source's answers, checked (see pipeline.batch_contract)
        make = checked_make(source.make_dataset, adapter_name, options.caller)
        count = checked_count(source.count_batches, adapter_name, options.caller)
    finish = _Finish(source, options, class_weight, adapter_name, batch_size, seed)
    spec = _sliced_spec(source, rows, array_blocks, options, class_weight)
    if spec is not None:  # batches the trainer slices itself: the dataset only if asked for
        dataset: tf.data.Dataset | Deferred = Deferred(lambda: finish(make()), spec)
        made, raw_spec = None, spec
        if not isinstance(source, ArraySource):  # (a Blocked source's own element_spec)
            check_batch_spec(spec, adapter_name, options.caller)
    else:
        raw = make()
        raw_spec = raw.element_spec if isinstance(raw, tf.data.Dataset) else None
        dataset, made = finish(raw)
    if options.data_service is not None and not isinstance(source, ArraySource):
        count = lambda: None  # noqa: E731  # workers batch their own splits
    shard: Shard | None = source.shard if isinstance(source, Shardable) else None
    if class_weight is not None:
        shard = None if shard is None else weighted_shard(shard, class_weight)
        if rows is not None:
            rows = dataclasses.replace(rows, class_weights=class_weight_table(class_weight))
    blocks, block_checks = None, None
    if array_blocks is not None and raw_spec is not None:  # arrays too large to hold
        blocks = _blocks(array_blocks.row_blocks, class_weight), raw_spec
        block_checks = array_blocks.check_batches
    elif isinstance(source, Blocked) and options.data_service is None and raw_spec is not None:
        blocks = _blocks(source.row_blocks, class_weight), raw_spec
    pipeline = Pipeline(
        adapter_name, source, dataset, count, batch_size, rows, seek, shard, made, blocks
    )
    pipeline.block_checks = block_checks
    if array_blocks is not None and raw_spec is not None:
        table = None if class_weight is None else class_weight_table(class_weight)
        pipeline.array_rows = functools.partial(array_rows, array_blocks, class_weights=table)
    pipeline.class_weight = plan
    return pipeline


def _array_dataset(
    source: ArraySource, options: PipelineOptions, batch_size: int, seed: int
) -> tuple[Callable[[], tf.data.Dataset], ResidentRows | None, Callable[[int], None] | None, Any]:
    """``array_dataset`` of rows, or (on a tf.data service) rows as graph constants."""
    if options.data_service is not None:  # rows as graph constants, for remote workers
        dataset = service.constant_array_dataset(source, batch_size, options.caller)
        return (lambda: dataset), None, None, None
    return array_dataset(source, batch_size, options.shuffle, seed)


@dataclasses.dataclass(frozen=True)
class _Finish:
    """What a source's dataset goes through: class weights, the tf.data service, prefetch."""

    source: Source
    options: PipelineOptions
    class_weight: Any
    adapter_name: str
    batch_size: int | None
    seed: int | None

    def __call__(self, dataset: Any) -> tuple[Any, tf.data.Dataset | None]:
        """The finished dataset, and it again when it is the source's own, prefetched at most.

        The second is ``Pipeline``'s ``made``: the source's batch checks see the batches
        the trainer takes only then.
        """
        made = dataset if isinstance(dataset, tf.data.Dataset) else None
        read_ahead = self.source.read_ahead
        if self.class_weight is not None:
            dataset = weighted_dataset(dataset, self.class_weight, parallel=read_ahead)
            if not read_ahead:  # nor may tf.data run the weighting ahead (a lost batch)
                dataset = read_when_asked(dataset)
        options = self.options
        if options.data_service is not None:
            name, size = self.adapter_name, self.batch_size
            dataset = _on_service(dataset, self.source, options, name, size, self.seed)
        own = self.source.prefetched and options.data_service is None  # (not the service's)
        if read_ahead and not own:
            unchanged = dataset is made
            dataset = dataset.prefetch(tf.data.AUTOTUNE)
            made = dataset if unchanged else None  # prefetching changes no batch
        return dataset, made


def _sliced_spec(
    source: Source,
    rows: ResidentRows | None,
    array_blocks: Any,
    options: PipelineOptions,
    class_weight: Any,
) -> Any:
    """The spec of batches a trainer may slice itself (rows held, blocks), known unbuilt.

    Then the dataset is built only if a trainer iterates it (see ``BatchSource.element_spec``);
    its batches as the source makes them: no class weights, no ``tf.data`` service. None
    when not known so.
    """
    if class_weight is not None or options.data_service is not None:
        return None
    if rows is not None:
        return rows.dataset_spec()
    if array_blocks is not None:
        return array_blocks.dataset_spec()
    return getattr(source, "element_spec", None) if isinstance(source, Blocked) else None


def _blocks(blocks: Callable[[], RowBlocks], class_weight: Any) -> Callable[[], RowBlocks]:
    """A source's ``row_blocks``, carrying the class weight table the trainer applies (or None)."""
    table = None if class_weight is None else class_weight_table(class_weight)

    def row_blocks() -> RowBlocks:
        return dataclasses.replace(blocks(), class_weights=table)

    return row_blocks


def _on_service(
    dataset: tf.data.Dataset,
    source: Source,
    options: PipelineOptions,
    adapter_name: str,
    batch_size: int | None,
    seed: int | None,
) -> tf.data.Dataset:
    """``dataset`` run on the workers of the tf.data service ``options.data_service``.

    Rows in memory shuffled with ``shuffle=True`` are reshuffled there every epoch (from
    ``seed``); ``shuffle="batch"`` cannot be.
    """
    assert options.data_service is not None
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
    return service.on_service(
        dataset, options.data_service, options.caller, adapter_name, reshuffle
    )


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
        steps: Batches per epoch: each iteration of the pipeline's ``dataset`` gives at most
            its first ``steps`` batches (an input that repeats forever becomes epochs of
            ``steps``); with arrays and no ``batch_size`` it sets the batch size to
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
        targets_optional=True,
    )
    options = PipelineOptions.of(request, class_weight=class_weight, data_service=address)
    pipeline = build_pipeline(request, options)
    if steps is not None:
        pipeline.bound_epochs(steps)
    return pipeline
