""":class:`Pipeline`: any supported input, adapted, as one batched ``tf.data``.

The pipeline is built (``fitpipe.adapt``, ``build_pipeline``) in :mod:`fitpipe.pipeline.build`.

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
Pipeline            batching, shuffling and resident rows (``pipeline.arrays``), class
                    weights (``pipeline.class_weights``), ``validation_split``
                    (``pipeline.split``), prefetch and the tf.data service
                    (``pipeline.service``), batches distributed over a strategy's
                    replicas (``pipeline.distributed``); it asks the source's
                    capabilities by ``isinstance`` (Seekable, Paced, Resumable, Shardable,
                    Checkable, Blocked); the class here, built in ``pipeline.build``
Trainer             epochs, steps, callbacks, the replicas' step under a strategy
                    (``training.distribute``): only through :class:`Pipeline`
==================  =======================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from fitpipe import limits
from fitpipe.adapters import (
    Check,
    Checkable,
    Ending,
    Paced,
    Resumable,
    RowBlocks,
    Seekable,
    Source,
    Timed,
)
from fitpipe.pipeline.arrays import ResidentRows
from fitpipe.pipeline.class_weight_plan import ClassWeightPlan
from fitpipe.pipeline.device_rows import placed_rows
from fitpipe.pipeline.split import ValidationSplit

__all__ = ["Deferred", "Pipeline", "Shard"]


#: ``shard(index, count, replicas)``: shard ``index`` of ``count`` and the steps of every shard.
Shard = Callable[[int, int, int], tuple[tf.data.Dataset, int]]


@dataclasses.dataclass(frozen=True)
class Deferred:
    """A pipeline's dataset built when first asked for, its element spec known before.

    Attributes:
        make: Builds the dataset (called at most once); returns it and, when it is the
            source's own dataset unchanged (prefetched at most), it again (see
            :attr:`Pipeline.made`), else None.
        element_spec: The ``tf.TypeSpec`` structure of one of its batches.
    """

    make: Callable[[], tuple[tf.data.Dataset, tf.data.Dataset | None]]
    element_spec: Any


class Pipeline:
    """One input, adapted: a ``tf.data.Dataset`` of Keras batches plus what the trainer needs.

    Iterating :attr:`dataset` once is one epoch; iterate it again for the next (or iterate
    the pipeline itself, ``for batch in pipeline``: the same batches, with an error the
    input raised as itself, as ``fit`` raises it). Call :meth:`on_epoch_end` between epochs
    (inputs such as ``PyDataset`` rely on it) and :meth:`close` when done (or use the
    pipeline as a context manager).

    Args:
        adapter: The registered name of the adapter that took the input.
        source: What the adapter made of the input (rows or batches).
        dataset: The batches, one iteration per epoch, or a :class:`Deferred` that builds
            them when :attr:`dataset` is first read (rows held in memory: a trainer slices
            their batches itself).
        count_batches: Returns the batches in the coming epoch, or None when unknown.
        batch_size: Rows per batch, for row-addressed inputs.
        rows: The rows held in memory, when the trainer may slice batches from them.
        seek: ``seek(n)`` makes the next iteration read pass ``n`` (resumed runs).
        shard: How a :class:`~fitpipe.adapters.Shardable` source shards itself over workers
            (class weights applied), or None.
        made: ``dataset`` when it is the source's own dataset unchanged, prefetched at most
            (the source's batch checks then see the batches the trainer takes), else None.
        blocks: ``(row_blocks, block_spec)`` of a source whose blocks a trainer may take
            (see :attr:`row_blocks`), class weights set; None for any other.

    Attributes:
        class_weight: The ``class_weight`` applied, checked and resolved (``"balanced"``
            computed), or None.
        split: How a grouped or stratified ``validation_split`` came out (set by the
            trainer on the training pipeline), or None.
        block_checks: For blocks that are not a ``Checkable`` source's own (NumPy arrays
            too large to hold, ``fitpipe.pipeline.numpy_rows``): sets the check run on the
            batches of the blocks asked for next; None otherwise.
    """

    def __init__(
        self,
        adapter: str,
        source: Source,
        dataset: tf.data.Dataset | Deferred,
        count_batches: Callable[[], int | None],
        batch_size: int | None = None,
        rows: ResidentRows | None = None,
        seek: Callable[[int], None] | None = None,
        shard: Shard | None = None,
        made: tf.data.Dataset | None = None,
        blocks: tuple[Callable[[], RowBlocks], Any] | None = None,
    ) -> None:
        self._adapter = adapter
        self._source = source
        self._deferred = dataset if isinstance(dataset, Deferred) else None
        self._dataset = None if isinstance(dataset, Deferred) else dataset
        self._count_batches = count_batches
        self._batch_size = batch_size
        self._rows = rows
        self._seek = seek
        self._shard = shard
        self.class_weight: ClassWeightPlan | None = None
        self.split: ValidationSplit | None = None
        self.block_checks: Callable[[Check | None], None] | None = None
        #: The source's own dataset, when :attr:`dataset` is that dataset unchanged.
        self.made = made
        self._blocks: Callable[[], RowBlocks] | None = None if blocks is None else blocks[0]
        #: ``device -> rows`` of NumPy arrays too large to hold on the host, copied whole to
        #: an accelerator (``device_rows.array_rows``), or None; see :meth:`rows_on`.
        self.array_rows: Callable[[str], ResidentRows | None] | None = None
        self._placed: dict[str, ResidentRows | None] = {}
        self._epoch_steps: int | None = None  # see bound_epochs
        self._block_spec: Any = None if blocks is None else blocks[1]

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
        """Batches ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; one iteration per epoch.

        The batches keep the input's dtypes (float64 rows stay float64; the trainer's steps
        cast them to the model's input dtypes, as Keras' steps do).

        An error raised while producing a batch (a null or a value of the wrong type in a
        column, a generator's own exception) reaches a loop over the dataset as TensorFlow
        wraps it (an ``InvalidArgumentError`` or ``UnknownError`` quoting it). A loop over
        the pipeline itself (:meth:`__iter__`) raises the error itself; after catching
        TensorFlow's, :meth:`take_error` returns it.
        """
        if self._dataset is None:
            assert self._deferred is not None
            self._dataset, self.made = self._deferred.make()
            self._take_epoch_steps()
        return self._dataset

    def bound_epochs(self, steps: int) -> None:
        """Makes each epoch (each iteration of :attr:`dataset`) at most ``steps`` batches.

        ``fitpipe.adapt(..., steps=)``: an input of more batches (or one that repeats
        forever) gives the first ``steps`` of each iteration, and :attr:`num_batches` says
        so. (``fit``'s ``steps_per_epoch`` instead reads on through the input across
        epochs; the trainer bounds its epochs itself.)

        Args:
            steps: The most batches an epoch gives.
        """
        self._epoch_steps = steps
        self._take_epoch_steps()

    def _take_epoch_steps(self) -> None:
        """Bounds the dataset made so far to :meth:`bound_epochs`' steps, if any."""
        if self._dataset is not None and self._epoch_steps is not None:
            self._dataset, self.made = self._dataset.take(self._epoch_steps), None

    @property
    def element_spec(self) -> Any:
        """The ``tf.TypeSpec`` structure of one batch."""
        if self._dataset is None and self._deferred is not None:
            return self._deferred.element_spec
        return self.dataset.element_spec

    @property
    def num_batches(self) -> int | None:
        """Batches in the coming epoch, or None when unknown; asked again every epoch."""
        counted, bound = self._count_batches(), self._epoch_steps
        if bound is None:
            return counted
        return bound if counted is None else min(counted, bound)

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

    def rows_on(self, device: str | None) -> ResidentRows | None:
        """:attr:`rows` for a step that runs on ``device``: copied there when it is an accelerator.

        ``device`` None (the step runs on the host): :attr:`rows`. Else held rows are copied
        to it (``device_rows.placed_rows``), and NumPy arrays too large to hold on the host
        too (:attr:`array_rows`), so a trainer may get rows here where :attr:`rows` is None.
        Made once per device; the copy lives as long as the pipeline.

        Args:
            device: Where the step runs (``fitpipe.training.placement.step_device``).

        Returns:
            The rows the trainer slices its batches from, or None (the input is streamed).
        """
        if device is None:
            return self._rows
        if device not in self._placed:
            placed = None if self._rows is None else placed_rows(self._rows, device)
            if placed is None and self.array_rows is not None:
                placed = self.array_rows(device)
            self._placed[device] = placed
        return self._placed[device]

    @property
    def row_blocks(self) -> Callable[[], RowBlocks] | None:
        """The source's blocks of converted rows, when a trainer may take them instead.

        A trainer then cuts the batches of each block inside its compiled loop, applying
        the class weights the blocks carry (see :class:`~fitpipe.adapters.Blocked`). Only
        for a :class:`~fitpipe.adapters.Blocked` source not on a ``tf.data`` service nor
        distributed, while :data:`fitpipe.limits.STREAM_IN_BLOCKS` is on; else None.
        """
        if not limits.STREAM_IN_BLOCKS or self._blocks is None:
            return None
        return self._blocks

    @property
    def block_spec(self) -> Any:
        """The spec of one block's batch as the source makes it (before class weights)."""
        return self._block_spec

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

    def ended(self) -> bool:
        """Whether an input read once has no batch left (False for inputs read again)."""
        return isinstance(self._source, Ending) and self._source.ended()

    def check_batches(
        self, check: Callable[[int, tuple[Any, ...]], None] | None, blocks: bool = False
    ) -> bool:
        """Has the source run ``check(index, batch)`` on each batch as it makes it (in Python).

        Only a :class:`~fitpipe.adapters.Checkable` source whose batches reach
        :attr:`dataset` unchanged (no class weights, no ``tf.data`` service) takes it;
        ``index`` counts the batches of each iteration from 0.

        Args:
            check: Raises to stop the iteration at a bad batch; None removes the check.
            blocks: The trainer takes :attr:`row_blocks`, whose batches the source makes
                before any class weight (the check is then always the source's).

        Returns:
            Whether the source runs it (False: the caller checks the batches itself).
        """
        if blocks and self.block_checks is not None:
            self.block_checks(check)
            return True
        if not isinstance(self._source, Checkable):
            return False
        taken = check is None or blocks or (self.made is not None and self._dataset is self.made)
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

    def on_epoch_begin(self) -> None:
        """Tells the input an epoch begins (``PyDataset.on_epoch_begin``)."""
        self._source.on_epoch_begin()

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
        """Returns (and forgets) the exception raised while producing batches, if any."""
        return self._source.take_error()

    def __iter__(self) -> Iterator[Any]:
        """One epoch of :attr:`dataset`'s batches; an error producing one raised as itself.

        As ``fit``, ``evaluate`` and ``predict`` raise it (fitpipe's ``SchemaError`` for a
        null in a column, a generator's own ``ValueError``...), not as TensorFlow's error
        wrapping it. An error of TensorFlow's own (a missing file read by a ``tf.data``
        dataset) comes as it is.
        """
        self.take_error()  # one left by an earlier loop over the dataset: reported there
        iterator = iter(self.dataset)
        while True:
            failure: BaseException | None = None
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError:
                failure = self.take_error()
                if failure is None:
                    raise
            if failure is not None:  # raised outside the `except`: no chained context
                raise failure.with_traceback(failure.__traceback__)
            yield batch

    def close(self) -> None:
        """Stops workers and releases files held for the input."""
        self._source.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pipeline(adapter={self._adapter!r}, num_batches={self.num_batches})"
