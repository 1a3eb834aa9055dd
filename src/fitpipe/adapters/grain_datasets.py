"""Grain inputs: ``grain.MapDataset``, ``grain.IterDataset`` and ``grain.DataLoader``.

Registered lazily for objects of the ``grain`` package, which fitpipe never imports itself.
Each element is one batch (``(x,)``, ``(x, y)``, ``(x, y, sample_weight)`` or ``x``); each
epoch iterates the input again. ``num_batches`` is ``len()`` where the input has one (a
``MapDataset``), else unknown.

The iterator's state (``get_state``) after every batch is kept for the batches the trainer
may still take, so a run resumed with ``keras.callbacks.BackupAndRestore`` restores it with
``set_state`` and continues at the exact element, without reading the batches before it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import ErrorBox, normalize_batch, signature_of
from fitpipe.adapters.python_batches import PythonBatches
from fitpipe.errors import DataMismatchError, message

__all__ = ["GrainAdapter"]

_SOURCE = "Grain dataset"
_KEPT_STATES = 256  # states kept for batches read ahead of the trainer


def _grain_kind(x: Any) -> str | None:
    for klass in type(x).__mro__:
        module = getattr(klass, "__module__", "") or ""
        if module.split(".", 1)[0] == "grain" and klass.__name__ in (
            "MapDataset",
            "IterDataset",
            "DataLoader",
        ):
            return klass.__name__
    return None


#: A length from which a ``MapDataset`` counts as endless: a repeated one's ``len()`` is
#: ``sys.maxsize``, and what is made of it (``.batch(4)``, a slice) divides that.
ENDLESS_LENGTH = 2**40


def _length(x: Any) -> int | None:
    try:
        count = len(x)
    except TypeError:
        return None
    return None if count >= ENDLESS_LENGTH else int(count)


class _States:
    """The iterator of the pass being read and its state after each batch of the pass."""

    def __init__(self, data: Any, placeholder: Any) -> None:
        self.data = data
        self.placeholder = placeholder
        self.pass_index = 0
        self.states: collections.OrderedDict[tuple[int, int], Any] = collections.OrderedDict()
        self.pending: tuple[int, int, Any] | None = None
        self._lock = threading.Lock()

    def seek(self, pass_index: int) -> None:
        self.pass_index = pass_index

    def epoch(self) -> Iterator[Any]:
        """One pass; a pending restored state first stands in ``seen`` placeholder batches.

        The trainer skips the batches of the pass already done (``dataset.skip(seen)``):
        they are placeholders here, and the restored iterator continues after them.
        """
        with self._lock:
            pass_index = self.pass_index
            self.pass_index += 1
            pending, self.pending = self.pending, None
        iterator = iter(self.data)
        start = 0
        if pending is not None and pending[0] == pass_index:
            _, start, state = pending
            iterator.set_state(state)
        for _ in range(start):  # skipped by the trainer: nothing is read for them
            yield self.placeholder
        index = start
        for element in iterator:
            index += 1
            self._keep((pass_index, index), iterator.get_state())
            yield element

    def _keep(self, key: tuple[int, int], state: Any) -> None:
        with self._lock:
            self.states[key] = state
            while len(self.states) > _KEPT_STATES:
                self.states.popitem(last=False)

    def state(self, pass_index: int, seen: int) -> Any:
        """The iterator's state after ``seen`` batches of pass ``pass_index`` (None: unknown)."""
        with self._lock:
            return self.states.get((pass_index, seen))

    def restore(self, pass_index: int, seen: int, state: Any) -> None:
        """Makes pass ``pass_index`` continue from ``state`` after its first ``seen`` batches."""
        with self._lock:
            self.pending = (pass_index, seen, state)


class GrainAdapter:
    """Takes a ``grain.MapDataset``, ``grain.IterDataset`` or ``grain.DataLoader``."""

    name = "grain"
    accepts = "a grain.MapDataset, grain.IterDataset or grain.DataLoader"
    supports = frozenset({"class_weight", "steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for Grain datasets and data loaders."""
        return _grain_kind(x) is not None

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Peeks at the first batches for the signature; each epoch iterates the input again.

        Args:
            request: The request.

        Returns:
            The batch source (with ``input_state``/``restore_state`` for exact resumes).

        """
        data = request.x
        count = _length(data)
        peeked: list[Any] = []
        first: Any = None
        for element in iter(data):
            first = element if first is None else first
            peeked.append(normalize_batch(element, request.caller, _SOURCE))
            if len(peeked) == 2:
                break
        if not peeked:
            raise DataMismatchError(
                message(
                    request.caller,
                    "got a Grain dataset that yields no batch",
                    "A Grain input yields at least one batch",
                    "Check its source and transformations",
                    x=data,
                )
            )
        signature = signature_of(peeked, request.caller, _SOURCE)
        states = _States(data, first)
        errors = ErrorBox()
        batches = PythonBatches(states.epoch, signature, errors, request.caller, _SOURCE)
        endless = _grain_kind(data) == "MapDataset" and count is None
        return BatchSource(
            make_dataset=lambda: batches.dataset,
            count_batches=lambda: count,
            finite=not endless,
            take_error=errors.take,
            seek=states.seek,
            input_state=states.state,
            restore_state=states.restore,
            check_batches=batches.check_batches,
            row_blocks=batches.row_blocks,
            element_spec=batches.element_spec,
        )
