"""``torch.utils.data.DataLoader`` inputs, as Keras 3 takes them.

Registered lazily for objects of the ``torch`` package, which fitpipe never imports itself.
Each batch the loader yields is ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``: a list at
the top (what ``default_collate`` makes of tuple samples) is read as that tuple, as Keras
does; anything else (a dict, a single tensor) is ``x``. Its torch tensors, at any depth of
tuples, lists and dicts, become NumPy arrays (detached, on the CPU; see
:mod:`fitpipe.adapters.torch_tensors`), batch by batch; every batch is checked against the
first ones like a generator's (:mod:`fitpipe.adapters.batch_checks`).

Each epoch iterates the loader again, so its own sampler orders the batches (``shuffle`` is
ignored, as in Keras). ``num_batches`` is ``len(loader)``, asked every epoch, where the loader
has a length; a loader over an ``IterableDataset`` without ``__len__`` has none.

A run resumed mid-epoch (``keras.callbacks.BackupAndRestore``) iterates the loader again and
skips the batches already used: the same batches when the loader's order is the same in
every pass (no shuffling, or a sampler seeded per epoch).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import ErrorBox, normalize_batch, signature_of
from fitpipe.adapters.python_batches import PythonBatches
from fitpipe.adapters.torch_tensors import is_torch_tensor, torch_to_numpy
from fitpipe.errors import DataMismatchError, message

__all__ = ["TorchDataLoaderAdapter", "is_torch_loader", "loader_batch"]

_SOURCE = "DataLoader"
_PEEK = 2  # batches read for the signature (Keras reads 2 too)


def is_torch_loader(x: Any) -> bool:
    """Tells, without importing torch, whether ``x`` is a ``torch.utils.data.DataLoader``."""
    return any(
        klass.__name__ == "DataLoader"
        and (getattr(klass, "__module__", "") or "").startswith("torch.utils.data")
        for klass in type(x).__mro__
    )


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an IterableDataset without __len__
        return None


def _leaf(value: Any) -> Any:
    return torch_to_numpy(value) if is_torch_tensor(value) else value


def loader_batch(element: Any) -> Any:
    """One batch of a loader with its torch tensors as NumPy arrays, a top-level list a tuple.

    Args:
        element: What the loader yielded.

    Returns:
        The batch, ready for :func:`fitpipe.adapters.batches.normalize_batch`.

    """
    batch = tf.nest.map_structure(_leaf, element)
    return tuple(batch) if isinstance(batch, list) else batch


class TorchDataLoaderAdapter:
    """Takes a ``torch.utils.data.DataLoader``."""

    name = "torch"
    accepts = "a torch.utils.data.DataLoader"
    supports = frozenset({"class_weight", "steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for ``torch.utils.data.DataLoader`` instances (and subclasses)."""
        return is_torch_loader(x)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Reads the first batches for the signature; each epoch iterates the loader again.

        Args:
            request: The request.

        Returns:
            The batch source.

        Raises:
            DataMismatchError: When the loader yields no batch.

        """
        loader = request.x
        iterator = iter(loader)
        peeked = [
            normalize_batch(loader_batch(element), request.caller, _SOURCE)
            for element in itertools.islice(iterator, _PEEK)
        ]
        del iterator  # a loader's worker processes end with its iterator
        if not peeked:
            raise DataMismatchError(
                message(
                    request.caller,
                    "got a DataLoader that yields no batch",
                    "A DataLoader input yields at least one batch",
                    "Check its dataset (is it empty?) and `drop_last` (a dataset smaller "
                    "than one batch yields none with `drop_last=True`)",
                    x=loader,
                )
            )
        signature = signature_of(peeked, request.caller, _SOURCE)

        def epoch() -> Iterator[Any]:
            return (loader_batch(element) for element in loader)

        errors = ErrorBox()
        batches = PythonBatches(epoch, signature, errors, request.caller, _SOURCE)
        return BatchSource(
            make_dataset=lambda: batches.dataset,
            count_batches=lambda: _length(loader),
            take_error=errors.take,
            check_batches=batches.check_batches,
            row_blocks=batches.row_blocks,
            element_spec=batches.element_spec,
        )
