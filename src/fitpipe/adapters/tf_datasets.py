"""``tf.data.Dataset`` inputs, unpacked by the documented rule with a graph-side ``map``.

A run resumed mid-epoch reads the interrupted pass's order again (:class:`PassReplay`): a
dataset reshuffled each iteration draws each pass's order from how many iterators of it were
made before.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import no_autograph, tuplify
from fitpipe.schemas import reject_namedtuple


def _is_batch_tuple(spec: Any) -> bool:
    return isinstance(spec, tuple) and not hasattr(type(spec), "_fields") and 1 <= len(spec) <= 3


def unpack_dataset(dataset: tf.data.Dataset, caller: str) -> tf.data.Dataset:
    """Maps a dataset's elements to ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

    Args:
        dataset: Batches in any documented form.
        caller: The public method being run.

    Returns:
        The unpacked dataset (the same object when nothing needs to change).

    """
    spec = dataset.element_spec
    reject_namedtuple(spec, caller, "tf.data.Dataset")
    if _is_batch_tuple(spec):
        if tuplify(spec) == spec:
            return dataset
        return dataset.map(no_autograph(lambda *parts: tuplify(parts)))
    if tuplify(spec) == spec:  # x alone, wrapped with no function to trace and call
        return tf.data.Dataset.zip((dataset,))  # (a map: 7% of a predict's CPU at batch 256)
    if isinstance(spec, tuple):
        return dataset.map(no_autograph(lambda *parts: (tuplify(parts),)))
    return dataset.map(no_autograph(lambda element: (tuplify(element),)))


def count_dataset(dataset: tf.data.Dataset) -> tuple[int | None, bool]:
    """Returns the batches per pass (None when unknown) and whether the dataset is finite."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return None, False
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        return None, True
    return cardinality, True


class PassReplay:
    """Makes a ``tf.data`` dataset's next iteration read a later pass (a resumed run).

    A dataset that reshuffles each iteration (``shuffle(n, seed=...)``, reshuffling by
    default) draws each iterator's order from its seed and from how many iterators of it
    were made before: pass ``n`` of a fresh dataset is read by its ``n + 1``-th iterator.
    :meth:`seek` makes (and drops, unread) the iterators of the passes before, which costs
    no batch. Forward only: an iteration already made cannot be made again, and a pass
    already read is not read again. A dataset whose order is the same every iteration is
    not changed by the iterators made.

    Args:
        dataset: The dataset the trainer iterates once per pass (or one wrapping it: the
            iterators of either advance the same shuffle).
    """

    def __init__(self, dataset: tf.data.Dataset) -> None:
        self._dataset = dataset
        self._next = 0  # the pass the dataset's next iterator reads

    def seek(self, pass_index: int) -> None:
        """Makes the next iteration read pass ``pass_index``, when it is not behind it."""
        for _ in range(self._next, pass_index):
            iter(self._dataset)  # draws that pass's order; no element is read
        self._next = max(self._next, pass_index) + 1


class TFDatasetAdapter:
    """Takes a batched ``tf.data.Dataset``."""

    name = "tf.data"
    accepts = "a batched tf.data.Dataset"
    supports = frozenset({"class_weight", "steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for ``tf.data.Dataset`` instances."""
        return isinstance(x, tf.data.Dataset)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Unpacks the dataset's elements; its cardinality gives the batches per epoch.

        Args:
            request: The request.

        Returns:
            The batch source.

        """
        dataset = unpack_dataset(request.x, request.caller)
        count, finite = count_dataset(dataset)
        return BatchSource(
            make_dataset=lambda: dataset,
            count_batches=lambda: count,
            finite=finite,
            prefetched=True,
            seek=PassReplay(dataset).seek,
        )
