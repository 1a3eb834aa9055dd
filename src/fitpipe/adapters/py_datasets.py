"""``keras.utils.PyDataset`` inputs, honouring its workers, processes and queue size.

The length is asked again at the start of every epoch, so a ``PyDataset`` whose
``on_epoch_end`` changes its batch size runs exactly ``len()`` batches of that epoch.

With ``shuffle=True`` (``fit``'s default) the batches of a finite ``PyDataset`` are read in a
new order every epoch, as Keras does; each pass's order is drawn from a seed (taken from
NumPy's generator, so ``keras.utils.set_random_seed`` makes it reproducible) and the pass
index, so a run resumed mid-epoch reads the order of the pass it stopped in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import ErrorBox, normalize_batch, signature_of
from fitpipe.adapters.py_workers import Workers
from fitpipe.adapters.python_batches import PythonBatches
from fitpipe.adapters.stages import StageClock, timing
from fitpipe.errors import DataMismatchError, message
from fitpipe.seeds import shuffle_seed

_SOURCE = "PyDataset"


def _count(dataset: Any) -> int | None:
    count = dataset.num_batches
    return None if count is None else int(count)


def _indices(dataset: Any) -> Iterator[int]:
    count = _count(dataset)
    index = 0
    while count is None or index < count:
        yield index
        index += 1


def _peeked_signature(dataset: Any, count: int | None, caller: str) -> Any:
    """The element signature of a ``PyDataset``, from its first two batches (one if it has one).

    Args:
        dataset: The ``PyDataset``.
        count: Its number of batches (None: endless).
        caller: The public method being run.

    Returns:
        The ``tf.data`` element signature.

    Raises:
        DataMismatchError: When the dataset has no batches.

    """
    if count == 0:
        raise DataMismatchError(
            message(
                caller,
                "got a PyDataset of length 0",
                "A PyDataset input has at least one batch",
                "Check its `__len__`",
                x=dataset,
            )
        )
    peek = 1 if count == 1 else 2
    peeked = [normalize_batch(dataset[i], caller, _SOURCE) for i in range(peek)]
    return signature_of(peeked, caller, _SOURCE)


class _PassOrder:
    """The batch indices of each pass: in order, or a permutation keyed by (seed, pass).

    Args:
        shuffle: Shuffle the batches of a finite dataset every pass.

    """

    def __init__(self, shuffle: bool) -> None:
        self.seed = shuffle_seed() if shuffle else None
        self.next_pass = 0

    def seek(self, pass_index: int) -> None:
        """Makes the next pass read the order of pass ``pass_index``."""
        self.next_pass = pass_index

    def indices(self, dataset: Any) -> Iterator[int] | list[int]:
        """The indices of the pass starting now (the length is read now).

        A list when shuffled, else an iterator in order (which may never end).
        """
        pass_index, self.next_pass = self.next_pass, self.next_pass + 1
        seed = self.seed
        count = _count(dataset) if seed is not None else None
        if seed is None or count is None:  # in order (endless: never shuffled, as in Keras)
            return _indices(dataset)
        order = np.random.default_rng([seed, pass_index]).permutation(count)
        return list(order.tolist())


class _EpochHooks:
    """Calls the dataset's ``on_epoch_begin`` as each epoch begins and ``on_epoch_end`` as it ends.

    The trainer says when an epoch begins (:meth:`begin`), also when a pass goes on into it
    (``steps_per_epoch``): the dataset's ``on_epoch_begin`` runs once per epoch, as in Keras.
    A pass begun without it (a pipeline iterated by hand) calls it too, once an epoch.

    Args:
        dataset: The ``PyDataset``.
        workers: Its workers: processes are restarted after ``on_epoch_end``.
    """

    def __init__(self, dataset: Any, workers: Workers) -> None:
        self._dataset, self._workers = dataset, workers
        self._begun = False
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Calls ``on_epoch_begin`` unless it was called since the last ``on_epoch_end``."""
        with self._lock:
            begun, self._begun = self._begun, True
        if not begun:
            self._dataset.on_epoch_begin()

    def end(self) -> None:
        """Calls ``on_epoch_end``; worker processes are restarted to see what it changed."""
        with self._lock:
            self._begun = False
        self._dataset.on_epoch_end()
        if self._workers.processes:
            # Processes hold a copy made when they started: new ones for the next epoch (a
            # pass that goes on into it fetches its next items there).
            self._workers.restart()


class PyDatasetAdapter:
    """Takes a ``keras.utils.PyDataset``."""

    name = "pydataset"
    accepts = "a keras.utils.PyDataset"
    supports = frozenset({"class_weight", "steps", "shuffle"})

    def can_adapt(self, x: Any) -> bool:
        """True for ``keras.utils.PyDataset`` instances."""
        return isinstance(x, keras.utils.PyDataset)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Reads the first batches for the signature; each epoch re-measures ``len()``.

        Args:
            request: The request.

        Returns:
            The batch source.

        """
        dataset = request.x
        count = _count(dataset)
        signature = _peeked_signature(dataset, count, request.caller)
        clock = StageClock() if timing() else None
        workers = Workers(dataset, request.caller, clock)
        hooks = _EpochHooks(dataset, workers)
        errors = ErrorBox()
        order = _PassOrder(bool(request.shuffle))
        read: list[int] = []  # this pass's indices in reading order, for error messages

        def epoch() -> Iterator[Any]:
            hooks.begin()
            indices = order.indices(dataset)
            # A shuffled pass is finite (a list); one in order needs no record.
            read[:] = indices if isinstance(indices, list) else []
            yield from workers.fetch(iter(read) if read else iter(indices))

        batches = PythonBatches(
            epoch,
            signature,
            errors,
            request.caller,
            _SOURCE,
            label=lambda at: read[at] if read else at,
            clock=clock,
        )
        return BatchSource(
            make_dataset=lambda: batches.dataset,
            count_batches=lambda: _count(dataset),
            on_epoch_begin=hooks.begin,
            on_epoch_end=hooks.end,
            close=workers.close,
            finite=count is not None,
            take_error=errors.take,
            seek=order.seek,
            stage_seconds=None if clock is None else clock.seconds,
            check_batches=batches.check_batches,
            # In blocks only when every epoch is one whole pass: a pass that goes on into the
            # next epoch must see what `on_epoch_end` changes, and blocks read passes ahead.
            row_blocks=batches.row_blocks if request.steps is None else None,
            element_spec=batches.element_spec,
        )
