"""What a source can do beyond yielding batches: small protocols, tested by ``isinstance``.

Every source has the lifecycle of :class:`SourceBase` (no-op defaults: finite, read ahead,
nothing to close or report). A batch source (:class:`BatchSourceBase`) makes the
``tf.data.Dataset`` of one pass and counts its batches. Anything more is a capability the
source opts into by defining one method; the pipeline and the trainer test for it with
``isinstance`` (as Grain does with its dataset protocols), never by the adapter's name:

=================  ========================================================================
Capability          Used for
=================  ========================================================================
:class:`Splittable`  ``validation_split`` of rows planned from metadata, without reading them
:class:`GroupSplittable`  ``split_by``: rows set apart by a hash of their key as they are read
:class:`Seekable`    resuming a shuffled input mid-epoch: pass ``n``'s order again
:class:`Shardable`   multi-worker training: each worker reads only its own rows
:class:`Resumable`   saving and restoring the input's own iterator state (Grain)
:class:`Paced`       never reading ahead what the trainer will not take (generators)
:class:`Checkable`   value checks of batches made in Python, run as they are read (generators)
:class:`Blocked`     batches cut inside the compiled loop from blocks of converted rows (Parquet)
:class:`Chunked`     ``predict(output=...)``: features and passthrough columns by chunk
:class:`ClassCountable`  ``class_weight="balanced"``: rows per class, counted in one pass
=================  ========================================================================

A method set to None is no capability (``typing``'s runtime protocols treat a None member
as absent), so :class:`~fitpipe.adapters.BatchSource`'s optional keywords keep working:
``BatchSource(..., seek=None)`` is not :class:`Seekable`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from fitpipe.adapters.batch_checks import string_targets_error
from fitpipe.errors import FitpipeValueError, message, raw

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "BatchSourceBase",
    "Blocked",
    "Checkable",
    "Chunked",
    "ClassCountable",
    "Ending",
    "GroupSplittable",
    "Paced",
    "Resumable",
    "RowBlocks",
    "Seekable",
    "Shardable",
    "SourceBase",
    "Splittable",
    "class_counts",
]


class SourceBase:
    """The lifecycle every source has, with no-op defaults.

    Attributes:
        finite: False when the input is known to never end.
        read_ahead: False when batches read ahead by ``tf.data`` would be lost between
            epochs (a generator read once); the pipeline then adds no read-ahead of its own.
        prefetched: The dataset reads ahead on its own; the pipeline adds no read-ahead.
        distributed: An input already distributed by a ``tf.distribute`` strategy (the
            trainer iterates it as it is), else None.
        converted: True when fitpipe converted the data from columns itself (Arrow,
            Parquet): its floats are then cast to ``floatx``, as Keras casts arrays.
    """

    finite: bool = True
    read_ahead: bool = True
    prefetched: bool = False
    distributed: Any = None
    converted: bool = False

    def on_epoch_begin(self) -> None:
        """Called by the trainer as every epoch begins (``PyDataset.on_epoch_begin``)."""

    def on_epoch_end(self) -> None:
        """Called by the trainer after every epoch (``PyDataset.on_epoch_end``)."""

    def close(self) -> None:
        """Releases workers and files; called when the pipeline is closed."""

    def take_error(self) -> BaseException | None:
        """Returns (and forgets) the exception user code raised while producing batches."""
        return None


class BatchSourceBase(SourceBase):
    """A source of batches ``(x,)``, ``(x, y)`` or ``(x, y, sw)``; subclass it to write one.

    Define :meth:`make_dataset` and :meth:`count_batches`, and the methods of any
    capability the source has (:class:`Seekable`, :class:`Splittable`, ...).

    Attributes:
        rows: The rows of one epoch, when known from metadata (None: unknown).
    """

    rows: int | None = None

    def make_dataset(self) -> tf.data.Dataset:
        """Builds the ``tf.data.Dataset`` of one pass; called once per pipeline."""
        raise NotImplementedError

    def count_batches(self) -> int | None:
        """The batches of the coming epoch, or None when unknown; asked every epoch."""
        return None


@runtime_checkable
class Splittable(Protocol):
    """Splits its rows for ``validation_split`` (its ``rows`` must be known)."""

    def split(self, first_val_row: int, validation_batch_size: int | None) -> tuple[Any, Any]:
        """Returns the training source (rows before ``first_val_row``) and the validation one.

        Args:
            first_val_row: The first row of the validation part.
            validation_batch_size: Batch size of the validation part (None: the source's).
        """
        ...


@runtime_checkable
class GroupSplittable(Protocol):
    """Splits its rows by key for a grouped ``validation_split`` (``split_by``).

    Every row whose key hashes below ``validation_split * 2**64`` is a validation row (see
    :mod:`fitpipe.columnar.keys`); both sides read the same data and keep their own rows.
    """

    def split_groups(
        self, validation_split: float, validation_batch_size: int | None
    ) -> tuple[Any, Any, Any]:
        """Returns the training source, the validation source and their ``SplitCounts``.

        Args:
            validation_split: The fraction of the keys set apart.
            validation_batch_size: Batch size of the validation part (None: the source's).
        """
        ...


@runtime_checkable
class Seekable(Protocol):
    """Reads any pass's order again (sources shuffled per pass), to resume mid-epoch."""

    def seek(self, pass_index: int) -> None:
        """Makes the next pass read pass ``pass_index``'s order (0-based)."""
        ...


@runtime_checkable
class Shardable(Protocol):
    """Shards itself over workers (see :mod:`fitpipe.adapters.sharding`)."""

    def shard(self, index: int, count: int, replicas: int) -> tuple[tf.data.Dataset, int]:
        """Shard ``index`` of ``count``, as per-replica batches for ``replicas`` replicas.

        Returns:
            The shard's dataset (zero-weight padded) and the steps every shard runs.
        """
        ...


@runtime_checkable
class Resumable(Protocol):
    """Keeps its own iterator state, saved with the resume position."""

    def input_state(self, pass_index: int, seen: int) -> Any:
        """The state after ``seen`` batches of pass ``pass_index`` (JSON-able or bytes)."""
        ...

    def restore_state(self, pass_index: int, seen: int, state: Any) -> None:
        """Makes pass ``pass_index`` continue from ``state``, after its first ``seen``."""
        ...


@runtime_checkable
class Paced(Protocol):
    """Wants to know how many batches will be taken, so nothing read ahead is lost."""

    def expect(self, batches: int | None) -> None:
        """The trainer takes ``batches`` more batches from this iteration (None: all)."""
        ...


@runtime_checkable
class Ending(Protocol):
    """Read once: tells, before an epoch begins, that the input has no batch left."""

    def ended(self) -> bool:
        """True when no batch is left (waits for the next one to be read, and keeps it)."""
        ...


@runtime_checkable
class Checkable(Protocol):
    """Runs the trainer's value checks on each batch in Python, before it enters ``tf.data``.

    For batches made in Python (generators, Parquet streamed from disk), where a ``tf.data``
    stage per batch would cost more than the check. The check gets NumPy arrays or eager
    tensors, as normalized. The trainer's check also has ``clean(rows) -> bool`` (no rule
    broken, nothing noted or raised): a source that converts blocks of many batches may ask
    it once per block and check batch by batch only the blocks it refuses (see
    ``fitpipe.adapters.parquet.checked_chunks``).
    """

    def check_batches(self, check: Callable[[int, tuple[Any, ...]], None] | None) -> None:
        """Runs ``check(index, batch)`` on every batch of each iteration of the dataset.

        ``index`` counts the batches of that iteration from 0, skipped ones included; the
        check raises to stop the iteration at that batch (the batches before it are
        delivered first). None removes the check.
        """
        ...


@dataclasses.dataclass(frozen=True)
class RowBlocks:
    """One iteration of a :class:`Blocked` source: its blocks and the rows of a batch.

    Attributes:
        batch_size: Rows per batch. Batches are the blocks' rows, in order, cut every
            ``batch_size`` rows across block boundaries (the last batch may be shorter).
        blocks: Tuples of NumPy arrays nested as a batch, ``(x,)``, ``(x, y)`` or
            ``(x, y, sw)``, any number of rows each, or such a tuple with the order its
            rows are taken in (``fitpipe.adapters.Reordered``: a shuffle buffer's mix, not
            gathered); closed (``close()``) when the trainer stops early.
        class_weights: Set by the pipeline, not the source: the class weight table the
            trainer applies to each batch (``fitpipe.pipeline.class_weights``), or None.
        batched: The blocks are batches as the source made them (a generator's, a
            ``PyDataset``'s), joined: ``blocks`` yields ``(block, batches)``, a block of
            ``batches`` batches of equal rows each (a block of 0 rows: that many empty
            batches), and ``batch_size`` is not used. Batches never span blocks. No pass
            of such a source is read ahead: what a pass reads is decided when it starts
            (a generator goes on where the last pass ended; a ``PyDataset``'s
            ``on_epoch_end`` runs between passes).
        stop: Called (from another thread) when the trainer takes no more blocks, to end a
            wait inside the source for a batch no step will take (a generator waiting for
            the trainer to want one): ``blocks`` then ends. None: nothing waits that way.
        used: Called (from the trainer's thread) with the number of batches of ``blocks``
            that steps have just run (or passed over), so a source reading ahead can count
            what it handed out and no step used yet against one budget. None: not told.
    """

    batch_size: int
    blocks: Iterator[Any]
    class_weights: Any = None
    batched: bool = False
    stop: Callable[[], None] | None = None
    used: Callable[[int], None] | None = None


@runtime_checkable
class Blocked(Protocol):
    """Converts its rows in Python a block of many batches at a time (Parquet row groups).

    The trainer may take the blocks instead of iterating the dataset: it holds one block at
    a time as tensors and cuts its batches inside the compiled loop, as it does for rows in
    memory, while the next block is read on a thread. The batches must be those of the
    dataset (its value checks, ``check_batches``, included), and every leaf dense.
    """

    def row_blocks(self) -> RowBlocks:
        """The blocks of the coming iteration (read lazily; the same pass as the dataset's)."""
        ...


@runtime_checkable
class Chunked(Protocol):
    """Yields its features and passthrough columns in row order, a chunk at a time."""

    def chunks(self) -> Iterator[tuple[Any, Any]]:
        """Yields ``(features, passthrough)``: passthrough an Arrow table or None."""
        ...


@runtime_checkable
class ClassCountable(Protocol):
    """Counts the classes of its targets in one pass, before training (streamed sources)."""

    def count_classes(self) -> dict[Any, dict[int, int]]:
        """``{target key: {class: rows}}``: the key None for one target, else dict keys."""
        ...


def class_counts(y: Any, caller: str = "fit", first: int = 0) -> dict[int, int]:
    """Rows (time steps for temporal targets) per class of one target's values.

    Targets of rank 1, or with a final dimension of 1, are sparse labels (floats rounded);
    wider final dimensions are one-hot (the class is the ``argmax``), as for
    ``class_weight``.

    Args:
        y: One target's values: an array or a dense tensor.
        caller: The public method, for messages.
        first: The row number of ``y``'s first row, for messages.

    Returns:
        ``{class: count}`` for every class present, in class order.

    Raises:
        FitpipeTypeError: The targets are strings (class labels not yet encoded).
        FitpipeValueError: A target is NaN (no class).
    """
    values = np.asarray(y)
    if values.dtype.kind in "OUST":  # strings (objects: Arrow strings, a string tensor)
        raise string_targets_error(caller)
    if values.ndim == 0:
        return _chunk_counts(values, caller, first)
    # A chunk of rows at a time: the labels' int64 copy (and a float's NaN mask) is a chunk's,
    # not the target's (3e9 uint8 labels, a view of no memory of its own, took 24 GB at once).
    step = max(1, COUNT_CHUNK_BYTES // (8 * max(1, values[:1].size)))  # (int64 bytes)
    counts: collections.Counter[int] = collections.Counter()
    for start in range(0, len(values), step):
        counts.update(_chunk_counts(values[start : start + step], caller, first + start))
    return dict(sorted(counts.items()))


#: Bytes of targets (as int64) :func:`class_counts` converts at a time.
COUNT_CHUNK_BYTES = 16 * 2**20


def _chunk_counts(values: np.ndarray, caller: str, first: int) -> dict[int, int]:
    """:func:`class_counts` of rows ``first`` on, held in ``values``."""
    if values.dtype.kind == "f":
        _check_no_nan(values, caller, first)
    if values.ndim >= 2:
        values = values[..., 0] if values.shape[-1] == 1 else values.argmax(axis=-1)
    if values.dtype.kind == "f":
        _check_whole(values, caller, first)
    classes, counts = np.unique(values.astype(np.int64).ravel(), return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts, strict=True)}


def _check_no_nan(values: np.ndarray, caller: str, first: int) -> None:
    """Refuses NaN targets, which no class is (cast to int64, NaN became a made-up class)."""
    nan = np.isnan(values)
    if not nan.any():
        return
    row = first + int(np.argwhere(nan)[0][0])
    raise FitpipeValueError(
        message(
            caller,
            f'cannot count the classes for `class_weight="balanced"`: the target at row '
            f"{row} is NaN",
            "Balanced weights count the rows of each class; a NaN target is no class",
            "Drop or fill the rows whose target is NaN, e.g. `keep = ~np.isnan(y)` and pass "
            "`x[keep], y[keep]`",
            y=raw(f"{int(nan.sum())} NaN target(s), the first at row {row}"),
        )
    )


def _check_whole(values: np.ndarray, caller: str, first: int) -> None:
    """Refuses float labels with a fractional part: continuous targets, which have no class."""
    fractional = values != np.round(values)
    if not fractional.any():
        return
    row = first + int(np.argwhere(fractional)[0][0])
    value = values.reshape(len(values), -1)[row - first].ravel()[0] if values.ndim else values
    raise FitpipeValueError(
        message(
            caller,
            f'cannot count the classes for `class_weight="balanced"`: the target at row '
            f"{row} is {float(value)!r}, not a class index",
            "Balanced weights count the rows of each class; sparse labels are whole numbers "
            "(0., 1., ...) and continuous targets (a regression) have no classes",
            "Leave `class_weight` out for continuous targets (weigh rows with `sample_weight`), "
            "or pass integer class labels, e.g. `y.astype('int64')` if they are classes",
            y=raw(
                f"{int(fractional.sum())} target(s) with a fractional part, the first "
                f"{float(value)!r} at row {row} (of type {type(values).__name__})"
            ),
        )
    )
