"""The adapter contract: what an adapter is asked, and what it hands to the pipeline.

An adapter turns one form of user input into a :data:`Source`:

* :class:`ArraySource` for data addressed by row (arrays, tensors, frames): the pipeline
  batches, shuffles, splits and weights it;
* a batch source for data that already comes in batches (generators, ``tf.data``,
  ``PyDataset``): the pipeline only weights and prefetches it. :class:`BatchSource` takes
  the source's functions as keywords; a subclass of
  :class:`~fitpipe.adapters.capabilities.BatchSourceBase` defines them as methods. What a
  source can do beyond batches (split, seek, shard, ...) are the capabilities of
  :mod:`fitpipe.adapters.capabilities`.

Each adapter declares which ``fit`` arguments it supports; :func:`check_supported` words the
"not supported for this input" errors for all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import tensorflow as tf

from fitpipe.adapters.capabilities import BatchSourceBase, RowBlocks, SourceBase
from fitpipe.errors import UnsupportedArgumentError, message
from fitpipe.schemas import Mode, Schema

__all__ = [
    "ADAPT_ARGUMENTS",
    "CHUNK_ROWS",
    "DEFAULT_BATCH_SIZE",
    "AdaptRequest",
    "Adapter",
    "ArraySource",
    "BatchSource",
    "Mode",
    "Share",
    "Shuffle",
    "Source",
    "batch_size_or_default",
    "check_supported",
    "supported",
    "unsupported",
]

#: ``shuffle``: False, True (every row), or "batch" (in batch-sized chunks, as documented for
#: tf.keras 2; row-addressed inputs only).
Shuffle = bool | Literal["batch"]

#: ``share(make)``: ``make()``'s bytes, made by one process of a multi-worker run (the
#: chief) and given to every process; an error ``make`` raises there is raised on every one.
Share = Callable[[Callable[[], bytes]], bytes]

#: Rows per batch when none is given (as in Keras).
DEFAULT_BATCH_SIZE = 32


def batch_size_or_default(batch_size: int | None) -> int:
    """The given batch size, else :data:`DEFAULT_BATCH_SIZE` (the one place it is applied)."""
    return batch_size or DEFAULT_BATCH_SIZE


#: Rows per chunk of a :class:`~fitpipe.adapters.Chunked` source.
CHUNK_ROWS = 65536

#: The arguments of ``fitpipe.adapt`` (and of ``fit``) an adapter may or may not support.
ADAPT_ARGUMENTS = (
    "y",
    "sample_weight",
    "batch_size",
    "shuffle",
    "class_weight",
    "schema",
    "steps",
    "validation_split",
    "split_by",
)

_WHY_UNSUPPORTED = {
    "y": "targets come from the input itself (an input of batches: the second element of "
    "each batch)",
    "sample_weight": "weights come from the input itself, or there are none (an input of "
    "batches: the third element of each batch)",
    "batch_size": "the input already yields batches",
    "validation_split": "rows cannot be set apart from an input that is read once in batches",
    "split_by": "rows are set apart by key only from rows in memory, Arrow tables and Parquet",
    "schema": "a schema selects columns of Arrow or Parquet data and pandas DataFrames",
    "class_weight": "this input cannot be weighted by class",
    "steps": "this input has a fixed number of rows",
    "shuffle": "the input fixes its own order",
}

_HOW_TO_FIX = {
    "y": "Drop the `y` argument and put the targets in the input (an input of batches: "
    "yield `(x, y)` or `(x, y, sample_weight)` tuples)",
    "sample_weight": "Drop the `sample_weight` argument and put the weights in the input (an "
    "input of batches: yield `(x, y, sample_weight)` tuples)",
    "batch_size": "Drop `batch_size`, or batch the input yourself",
    "validation_split": "Pass `validation_data` instead",
    "split_by": "Split the data by key yourself and pass `validation_data`",
    "schema": "Drop `schema`, or pass columnar data: a pandas DataFrame (a Series: "
    "`x.to_frame()`), an Arrow table, a Parquet path or an Arrow stream",
}


@dataclasses.dataclass(frozen=True)
class AdaptRequest:
    """What an adapter reads of one input, as given to :meth:`Adapter.adapt`.

    The pipeline's own options (class weights, the tf.data service, ``validation_split``)
    are not here: they are :class:`fitpipe.pipeline.PipelineOptions`, which adapters never
    see.

    Attributes:
        x: The input.
        y: Targets, when given separately.
        sample_weight: Per-sample weights, when given separately.
        batch_size: Rows per batch (None: the default 32); adapters that batch rows
            themselves (streamed Arrow and Parquet data) read it.
        shuffle: Whether to reshuffle rows every epoch; ``"batch"`` shuffles in batch-sized
            chunks (row-addressed inputs only). Adapters whose sources order their own
            batches (Parquet row groups, ``PyDataset`` indices) read it.
        schema: A declared schema for columnar inputs: a ``Schema``, a mapping of its keys
            or the path of a schema file (turned into a ``Schema`` once the adapter that
            takes ``x`` is known to support ``schema``).
        steps: Batches per epoch requested by the caller, if any.
        caller: The public method being run, for error messages only.
        mode: What the call does with the input (train, evaluate or predict): decides the
            roles read (prediction reads features and passthrough columns only) and whether
            a source may be sharded. A string (``"predict"``) is read as a :class:`Mode`.
        chunks: Asks for a :class:`~fitpipe.adapters.Chunked` source, read in row order a
            chunk at a time with the schema's passthrough columns (``predict(output=...)``):
            adapters of columnar data honour it; rows in memory are always chunked.
        hold_in_memory: Let adapters read small sources that they would stream (Parquet
            data) whole into rows held in memory; False keeps them streamed (to shard them
            at the source).
        split_by: The key of each row for a grouped ``validation_split``: a column name
            (columnar data, a dict's entry, a DataFrame's column), or the keys themselves
            (an array with one per row, for rows in memory). Adapters that support it read
            the keys into :attr:`ArraySource.keys`, or give a
            :class:`~fitpipe.adapters.capabilities.GroupSplittable` source.
        share: Under a multi-worker strategy, what plans a source once for every worker
            (see :data:`Share`; every worker calls it at the same point): Parquet sources
            are planned by the chief alone, their plan shared as bytes, so the other
            workers read no footer. None: each process plans its own input.
        one_batch: The input is one batch (the ``*_on_batch`` methods): under
            ``Mode.PREDICT`` it may hold no rows (none are predicted, as in Keras).
        steps_name: The caller's name of ``steps`` (``fit``'s ``steps_per_epoch`` or
            ``validation_steps``), for error messages only.
        targets_optional: The caller takes an input without targets as it is (the data
            layer's ``fitpipe.adapt``): an Arrow table without a schema or ``y`` is then one
            2-D input, as an array is. False (``fit``, ``evaluate``): such a table is
            refused, its targets most likely among its columns.
        resolved_schema: ``schema`` already resolved against the source's columns, reading
            at least ``mode``'s roles (``fitpipe inspect`` resolves it to check it first):
            a Parquet plan takes it rather than resolving ``schema`` again, and still
            checks ``schema``'s own selectors against every file. None: resolved when
            planned.

    """

    x: Any
    y: Any = None
    sample_weight: Any = None
    batch_size: int | None = None
    shuffle: Shuffle = False
    schema: Any = None
    steps: int | None = None
    caller: str = "adapt"
    hold_in_memory: bool = True
    mode: Mode = Mode.TRAIN
    chunks: bool = False
    split_by: Any = None
    share: Share | None = None
    one_batch: bool = False
    steps_name: str = "steps"
    targets_optional: bool = False
    resolved_schema: Schema | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, Mode):
            object.__setattr__(self, "mode", Mode(self.mode))

    def given(self) -> tuple[str, ...]:
        """Names the optional arguments that were given (not left at their defaults)."""
        names = [
            name
            for name in ("y", "sample_weight", "batch_size", "schema", "steps")
            if getattr(self, name) is not None
        ]
        if self.shuffle:
            names.append("shuffle")
        if self.split_by is not None:
            names.append("split_by")
        return tuple(names)


@dataclasses.dataclass(frozen=True)
class ArraySource(SourceBase):
    """Row-addressed data: nested structures whose leaves share their first dimension.

    Leaves are ``np.ndarray``, ``tf.Tensor``, ``tf.RaggedTensor`` or ``tf.SparseTensor``.

    Attributes:
        x: Features.
        y: Targets, or None.
        sample_weight: Weights, or None.
        num_samples: The shared first dimension.
        shard_rows: True when the rows may be sharded over workers at the source, by
            blocks of rows (see :mod:`fitpipe.pipeline.sharding`); False leaves them to the
            strategy's own auto-sharding, as Keras does for arrays.
        keys: Each row's key for a grouped ``validation_split`` (``split_by``), as an Arrow
            array from :func:`fitpipe.columnar.key_array`; None when not asked.

    """

    x: Any
    y: Any
    sample_weight: Any
    num_samples: int
    shard_rows: bool = False
    keys: Any = None

    def chunks(self) -> Iterator[tuple[Any, None]]:
        """Yields the features in row order, :data:`CHUNK_ROWS` rows at a time (Chunked)."""
        for start in range(0, self.num_samples, CHUNK_ROWS):
            yield _row_slice(self.x, start, start + CHUNK_ROWS), None


def _row_slice(structure: Any, start: int, stop: int) -> Any:
    def cut(leaf: Any) -> Any:
        if isinstance(leaf, tf.SparseTensor):
            size = [min(stop, int(leaf.dense_shape[0])) - start, *leaf.dense_shape[1:]]
            return tf.sparse.slice(leaf, [start] + [0] * (leaf.shape.rank - 1), size)
        return leaf[start:stop]

    return tf.nest.map_structure(cut, structure)


@dataclasses.dataclass(frozen=True)
class BatchSource(BatchSourceBase):
    """Data that comes in batches, already unpacked into ``(x,)``, ``(x, y)`` or ``(x, y, sw)``.

    The source's functions are given as keywords; an optional one left at None is a
    capability the source does not have (see :mod:`fitpipe.adapters.capabilities`).

    Attributes:
        make_dataset: Builds the ``tf.data.Dataset`` of one pass; called once per pipeline.
            Iterating the dataset again starts the next epoch.
        count_batches: Returns the batches of the coming epoch (an int; a NumPy integer
            is taken), or None when unknown; asked again every epoch (a ``PyDataset`` may
            change its length). The pipeline checks both answers, naming the adapter
            (``fitpipe.pipeline.batch_contract``).
        on_epoch_begin: Called by the trainer as every epoch begins.
        on_epoch_end: Called by the trainer after every epoch.
        close: Releases workers and files; called when the pipeline is closed.
        finite: False when the input is known to never end.
        take_error: Returns (and forgets) the exception user code raised while producing
            batches, so the caller can re-raise the original instead of TensorFlow's copy.
        read_ahead: False when batches read ahead by ``tf.data`` would be lost between
            epochs (a generator read once); the pipeline then adds no read-ahead of its own.
        prefetched: The dataset reads ahead on its own (a user's ``tf.data.Dataset``: its
            ``prefetch``, or the one ``tf.data`` injects after a last synchronous stage);
            the pipeline adds none (a second one cost a few percent of the CPU at batch 32),
            but to the batches a ``tf.data`` service's workers send.
        rows: The rows of one epoch, when known from metadata.
        split: For sources that support ``validation_split``: ``split(first_val_row,
            validation_batch_size)`` returns the training and validation sources.
        seek: For sources shuffled per pass: ``seek(n)`` makes the next pass read pass
            ``n``'s order (to resume a run mid-epoch).
        expect: ``expect(n)`` tells the source that the trainer takes ``n`` more batches
            from the current iteration (None: until it ends), so what it hands over ahead
            never goes past what is used.
        ended: For inputs read once: ``ended()`` tells whether no batch is left, waiting
            for the next batch to be read (and keeping it); asked before each epoch after
            the first, so an input used up at an epoch's end begins no epoch it cannot run.
        shard: For sources that shard themselves over workers (see
            :mod:`fitpipe.adapters.sharding`): ``shard(index, count, replicas)`` returns the
            dataset of shard ``index`` of ``count`` (per-replica batches for its
            ``replicas`` replicas, zero-weight padded) and the steps every shard runs.
        input_state: ``input_state(pass, seen)``: the input's own iterator state after
            ``seen`` batches of pass ``pass`` (JSON-serializable, or bytes), or None when
            unknown; saved with the resume position.
        restore_state: ``restore_state(pass, seen, state)``: makes pass ``pass`` continue
            from a saved state after its first ``seen`` batches (which it then yields as
            placeholders, for the trainer skips them).
        distributed: An input already distributed by a ``tf.distribute`` strategy: the
            trainer iterates it as it is (``make_dataset`` gives a stand-in with one
            replica's element spec).
        converted: True when fitpipe converted the batches from columns itself (Arrow,
            Parquet): their floats are cast to ``floatx``, as Keras casts arrays.
        count_classes: Counts the rows of each class of each target in one pass (for
            ``class_weight="balanced"``): ``{target key: {class: rows}}``, the key None for
            a single target (see :mod:`fitpipe.pipeline.class_weights`).
        split_groups: For sources that split by key (``split_by``):
            ``split_groups(validation_split, validation_batch_size)`` returns the training
            and validation sources and their :class:`~fitpipe.columnar.SplitCounts`.
        stage_seconds: Seconds spent so far in each input stage (see
            :mod:`fitpipe.adapters.stages`), for the input-bound report of ``fit``.
        check_batches: For batches made in Python: ``check_batches(check)`` makes every
            iteration run ``check(index, batch)`` on each batch before it enters ``tf.data``
            (see :class:`~fitpipe.adapters.capabilities.Checkable`); None removes it.
        row_blocks: For sources that convert rows in blocks: the blocks of the coming
            iteration (see :class:`~fitpipe.adapters.capabilities.Blocked`).
        element_spec: The ``element_spec`` of ``make_dataset()``'s batches when known
            without building it, else None. A source with ``row_blocks`` that gives it is
            not asked for its dataset unless the trainer iterates one (building a
            ``from_generator`` pipeline costs 20-65 ms a call, for nothing when the
            trainer takes the blocks).
    """

    make_dataset: Callable[[], tf.data.Dataset]
    count_batches: Callable[[], int | None]
    on_epoch_begin: Callable[[], None] = lambda: None
    on_epoch_end: Callable[[], None] = lambda: None
    close: Callable[[], None] = lambda: None
    finite: bool = True
    take_error: Callable[[], BaseException | None] = lambda: None
    read_ahead: bool = True
    prefetched: bool = False
    rows: int | None = None
    split: Callable[[int, int | None], tuple[BatchSource, BatchSource]] | None = None
    seek: Callable[[int], None] | None = None
    expect: Callable[[int | None], None] | None = None
    ended: Callable[[], bool] | None = None
    shard: Callable[[int, int, int], tuple[tf.data.Dataset, int]] | None = None
    input_state: Callable[[int, int], Any] | None = None
    restore_state: Callable[[int, int, Any], None] | None = None
    distributed: Any = None
    converted: bool = False
    count_classes: Callable[[], dict[Any, dict[int, int]]] | None = None
    split_groups: Callable[[float, int | None], tuple[Any, Any, Any]] | None = None
    stage_seconds: Callable[[], dict[str, float]] | None = None
    check_batches: Callable[[Callable[[int, tuple[Any, ...]], None] | None], None] | None = None
    row_blocks: Callable[[], RowBlocks] | None = None
    element_spec: Any = None


Source = ArraySource | BatchSourceBase


@runtime_checkable
class Adapter(Protocol):
    """What a registered adapter provides.

    Attributes:
        name: The registered name (unique in the registry).
        accepts: What the adapter takes, in words, for the "no adapter" error.
        supports: The optional arguments of ``adapt``/``fit`` the adapter honours,
            among :data:`ADAPT_ARGUMENTS`. An adapter whose arguments depend on the request
            (a pandas DataFrame read by ``schema`` names its targets there, so refuses
            ``y``) also defines ``supports_for(request)``, which :func:`supported` asks;
            ``supports`` is then every argument it may honour.

    """

    name: str
    accepts: str
    supports: frozenset[str]

    def can_adapt(self, x: Any) -> bool:
        """Tells, cheaply and without side effects, whether this adapter takes ``x``."""
        ...

    def adapt(self, request: AdaptRequest) -> SourceBase:
        """Turns the request's input into a :data:`Source` for the pipeline.

        With ``request.chunks``, an adapter of columnar data returns a
        :class:`~fitpipe.adapters.Chunked` source instead.
        """
        ...


def unsupported(
    adapter: Adapter,
    request: AdaptRequest,
    name: str,
    why: str,
    fix: str,
    shown: str = "",
    value: Any = None,
) -> UnsupportedArgumentError:
    """The shared "not supported for this input" error.

    Args:
        adapter: The adapter chosen for the input.
        request: The request.
        name: The argument.
        why: Why the input cannot use it.
        fix: How to fix the call.
        shown: How the argument is shown (default: its name), e.g. ``shuffle="batch"``.
        value: The argument's value when it is not the request's (a pipeline option).

    Returns:
        The error, to raise.

    """
    given = getattr(request, name, None) if value is None else value
    called = argument_name(request, name)
    received = {called: given, "x": request.x}
    return UnsupportedArgumentError(
        message(
            request.caller,
            f"does not support `{shown or called}` when `x` is {adapter.accepts} "
            f"(adapter {adapter.name!r})",
            f"`{shown or called}` is only used with inputs that support it: {why}",
            fix,
            **received,
        )
    )


def argument_name(request: AdaptRequest, name: str) -> str:
    """The caller's name of the request's argument ``name`` (``steps``: ``steps_per_epoch``)."""
    return request.steps_name if name == "steps" else name


def supported(adapter: Adapter, request: AdaptRequest) -> frozenset[str]:
    """The arguments ``adapter`` honours for ``request``.

    ``adapter.supports_for(request)`` when the adapter defines it (what it honours depends
    on the request, e.g. on whether a schema is given), else ``adapter.supports``.
    """
    supports_for = getattr(adapter, "supports_for", None)
    if supports_for is None:
        return adapter.supports
    found: frozenset[str] = supports_for(request)
    return found


def check_supported(
    adapter: Adapter,
    request: AdaptRequest,
    names: tuple[str, ...],
    values: Mapping[str, Any] | None = None,
) -> None:
    """Raises the shared error when an argument is given that ``adapter`` does not support.

    Args:
        adapter: The adapter chosen for the input.
        request: The request.
        names: The arguments the caller gave.
        values: The values of given arguments that are not the request's (the pipeline's
            options: ``class_weight``, ``validation_split``).

    Raises:
        UnsupportedArgumentError: For the first unsupported argument given.

    """
    supports = supported(adapter, request)
    for name in names:
        if name in supports:
            continue
        why = _WHY_UNSUPPORTED.get(name, "this input does not use it")
        fix = _HOW_TO_FIX.get(name, f"Drop the `{argument_name(request, name)}` argument")
        if name in ("y", "sample_weight") and "schema" in supports:
            role = "targets" if name == "y" else "sample_weight"
            why = "columnar data names its target and weight columns in the schema"
            fix = f"Name the column in the schema, e.g. `fitpipe.Schema(..., {role}=...)`"
        value = None if values is None else values.get(name)
        raise unsupported(adapter, request, name, why, fix, value=value)
