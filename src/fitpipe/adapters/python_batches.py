"""Batches made in Python a pass at a time (``PyDataset``, Grain, torch ``DataLoader``).

Each pass runs the input's ``epoch()`` and normalizes and checks every batch it yields. The
batches reach the trainer one of two ways:

- crossing into ``tf.data`` one at a time (:attr:`PythonBatches.dataset`): inputs read by
  index measured slower with groups there, as their workers already overlap with the crossing;
- or, for batches of dense numbers, joined in blocks (:meth:`PythonBatches.row_blocks`,
  ``RowBlocks.batched``): the trainer's reading thread runs the pass, joins each run of
  consecutive batches of equal shapes into one block, and the trainer slices the same batches
  again inside its compiled loop. Crossing into ``tf.data`` cost about 250 us of CPU a batch
  (640,000 rows of 32 features, batch 256; an MLP's whole step costs 330 us), joining a few
  microseconds. The first block of a pass is one batch and blocks grow to ``BLOCK_BATCHES``
  batches, so the first step of an epoch waits for one batch, not for a block.

Either way a batch is the one the input made (short and empty batches included), checked by
the trainer's value check when it is given (:meth:`PythonBatches.check_batches`).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import tensorflow as tf

from fitpipe.adapters.batches import (
    BatchSpec,
    Check,
    ErrorBox,
    crossing,
    keeping_errors,
    normalize_batch,
    reporting,
    same_shapes,
    stackable,
)
from fitpipe.adapters.capabilities import RowBlocks
from fitpipe.adapters.row_blocks import concat_rows
from fitpipe.adapters.stages import StageClock

__all__ = ["BLOCK_BATCHES", "GROUP_BYTES", "PythonBatches", "dense_numbers", "nbytes"]

#: Most bytes of a block of joined batches (it stops growing past them).
GROUP_BYTES = 32 << 20

#: Most batches joined into one block. The trainer runs a block's batches in compiled calls
#: of at most that many steps, and each call costs beyond its steps: a generator at 640,000
#: x 32, batch 256, in blocks of 11 batches on average -> 62 took 12% less CPU and 18% less
#: wall time a 2-epoch ``fit`` (128: no further gain).
BLOCK_BATCHES = 64


def nbytes(batch: Any) -> int:
    """The bytes of a batch's dense leaves: arrays and TensorFlow tensors alike."""
    return sum(_leaf_bytes(leaf) for leaf in tf.nest.flatten(batch))


def _leaf_bytes(leaf: Any) -> int:
    if isinstance(leaf, tf.Tensor) and leaf.shape.is_fully_defined():  # no `nbytes` of its own
        return int(leaf.shape.num_elements() or 0) * leaf.dtype.size
    return int(getattr(leaf, "nbytes", 0))


def dense_numbers(signature: Any) -> bool:
    """Whether batches of ``signature`` can be joined into blocks: dense numbers only."""
    flat = tf.nest.flatten(signature)
    return stackable(signature) and all(s.dtype != tf.string for s in flat)


def _joined(batches: Iterator[Any]) -> Iterator[tuple[Any, int]]:
    """``(block, count)``: runs of consecutive batches of equal shapes, joined.

    The first block is one batch; each full block doubles the next one's batches, up to
    ``BLOCK_BATCHES`` (or ``GROUP_BYTES``). When ``batches`` raises, the batches before go first.
    """
    group: list[Any] = []
    most, size = 1, 0
    try:
        for batch in batches:
            if group and not same_shapes(batch, group[0]):
                yield concat_rows(group), len(group)
                group, size = [], 0
            group.append(batch)
            size += nbytes(batch)
            if len(group) >= most or size >= GROUP_BYTES:
                yield concat_rows(group), len(group)
                group, size, most = [], 0, min(BLOCK_BATCHES, 2 * most)
    except GeneratorExit:
        raise
    except BaseException:
        if group:
            yield concat_rows(group), len(group)
        raise
    if group:
        yield concat_rows(group), len(group)


class PythonBatches:
    """The batches of an input made in Python, a pass at a time, as ``tf.data`` and in blocks.

    Args:
        epoch: Returns an iterable of raw elements for one pass (called once per pass).
        signature: The element signature.
        errors: Receives any exception the user code raises.
        caller: The public method being run.
        source: What yields the batches.
        label: The index an error names for the batch read at a position of the pass (a
            ``PyDataset``'s own index, when its batches are read shuffled); the position
            itself by default.
        clock: Times the normalizing and checking of each batch (stage ``convert``).

    Attributes:
        dataset: The ``tf.data.Dataset`` whose every iteration runs one pass.
        element_spec: Its element spec when :attr:`row_blocks` exist, else None.
        row_blocks: The blocks of the coming pass (see
            :class:`~fitpipe.adapters.Blocked`), or None when the batches hold strings,
            ragged, sparse or optional leaves.
    """

    def __init__(
        self,
        epoch: Callable[[], Iterable[Any]],
        signature: Any,
        errors: ErrorBox,
        caller: str,
        source: str,
        label: Callable[[int], int] | None = None,
        clock: StageClock | None = None,
    ) -> None:
        self._epoch, self._errors, self._label, self._clock = epoch, errors, label, clock
        self._spec = BatchSpec(signature, caller, source)
        self._check: Check | None = None
        self._signature = signature
        dense = dense_numbers(signature)
        self.row_blocks = self._row_blocks if dense else None
        #: The dataset's element spec, known unbuilt when the batches may go in blocks.
        self.element_spec = signature if dense else None

    @functools.cached_property
    def dataset(self) -> tf.data.Dataset:
        """Built when first asked for: not at all when a trainer takes the blocks."""
        return crossing(_passes_of(weakref.ref(self)), self._signature, grouped=False)

    def check_batches(self, check: Check | None) -> None:
        """Makes every later pass run ``check(position, batch)`` on each batch (None: none)."""
        self._check = check

    def _batches(
        self, check: Check | None, stopped: threading.Event | None = None
    ) -> Iterator[Any]:
        """One pass's batches, normalized and checked; no more once ``stopped`` is set."""
        clock, spec, label = self._clock, self._spec, self._label
        for index, element in enumerate(self._epoch()):
            if stopped is not None and stopped.is_set():
                return  # (the trainer takes no more: the input is asked for none)
            start = time.perf_counter() if clock is not None else 0.0
            batch = normalize_batch(element, spec.caller, spec.source)
            spec.check(batch, index if label is None else label(index))
            if clock is not None:
                clock.add("convert", time.perf_counter() - start)
            if check is not None:
                check(index, batch)
            yield batch

    def _generate(self) -> Iterator[Any]:
        with keeping_errors(self._errors):
            yield from self._batches(self._check)

    def _row_blocks(self) -> RowBlocks:
        stopped = threading.Event()  # set when the trainer takes no more of this pass
        blocks = reporting(_joined(self._batches(self._check, stopped)), self._errors)
        return RowBlocks(0, blocks, batched=True, stop=stopped.set)


def _passes_of(held: weakref.ref[PythonBatches]) -> Callable[[], Iterator[Any]]:
    """A pass's batches, for ``tf.data``, which keeps the function for the process' life.

    It holds the batches (and through them the user's input and its worker threads) only
    while a pass runs: a pipeline dropped unclosed lets its workers go.
    """

    def generate() -> Iterator[Any]:
        batches = held()
        if batches is None:  # (never: a dataset iterated keeps its pipeline's source)
            raise RuntimeError("the input's pipeline was dropped")
        yield from batches._generate()

    return generate
