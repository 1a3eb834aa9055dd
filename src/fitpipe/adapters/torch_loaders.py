"""``torch.utils.data.DataLoader`` inputs, as Keras 3 takes them.

Registered lazily for objects of the ``torch`` package, which fitpipe never imports itself.
Each batch the loader yields is ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``: a list at
the top (what ``default_collate`` makes of tuple samples) is read as that tuple, as Keras
does; anything else (a dict, a single tensor) is ``x``. Its torch tensors, at any depth of
tuples, lists and dicts, become NumPy arrays (detached, on the CPU; see
:mod:`fitpipe.adapters.torch_tensors`), batch by batch; every batch is checked against the
first ones like a generator's (:mod:`fitpipe.adapters.batch_checks`).

Each epoch iterates the loader again, so its own sampler orders the batches (``shuffle`` is
ignored, as in Keras). A loader over a map-style dataset is iterated once more for the first
batches read for the signature, as Keras does (a seeded sampler gives Keras' orders); a loader
over an ``IterableDataset`` is not: its first epoch goes on with the iteration the first
batches came from, so a dataset that can be iterated only once (a stream, a generator) loses
none of its batches. ``num_batches`` is ``len(loader)``, asked every epoch, where the loader
has a length; a loader over an ``IterableDataset`` without ``__len__`` has none. A pass that
ends before ``len(loader)`` batches warns that the input ran out of data, as Keras does.

Torch tensors NumPy cannot hold (sparse, nested, on the ``meta`` device, float8) are refused
with an error naming the batch and the part of it (``y``, ``x['a']``).

A run resumed mid-epoch (``keras.callbacks.BackupAndRestore``) iterates the loader again and
skips the batches already used: the same batches when the loader's order is the same in
every pass (no shuffling, or a sampler seeded per epoch).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import ErrorBox, normalize_batch, signature_of
from fitpipe.adapters.nested import map_leaves
from fitpipe.adapters.python_batches import PythonBatches
from fitpipe.adapters.torch_tensors import is_torch_tensor, torch_to_numpy
from fitpipe.errors import DataMismatchError, message
from fitpipe.schemas import is_namedtuple

__all__ = ["TorchDataLoaderAdapter", "is_torch_loader", "loader_batch"]

_SOURCE = "DataLoader"
_PEEK = 2  # batches read for the signature (Keras reads 2 too)
_FIX_IN = "in the dataset or the DataLoader's `collate_fn`"


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


def _over_iterable(loader: Any) -> bool:
    """Whether the loader reads an ``IterableDataset`` (maybe a stream read only once)."""
    return any(
        klass.__name__ == "IterableDataset"
        and (getattr(klass, "__module__", "") or "").startswith("torch.utils.data")
        for klass in type(getattr(loader, "dataset", None)).__mro__
    )


def _converted(value: Any, path: str, where: Callable[[str], str], caller: str) -> Any:
    def leaf(value: Any, path: str) -> Any:
        if is_torch_tensor(value):
            return torch_to_numpy(value, caller, where(path), _FIX_IN)
        return value

    return map_leaves(value, path, leaf, mappings=dict, keep_types=True)


def loader_batch(element: Any, caller: str, index: int) -> Any:
    """One batch of a loader with its torch tensors as NumPy arrays, a top-level list a tuple.

    Args:
        element: What the loader yielded.
        caller: The public method being run.
        index: The batch's position in its pass, for error messages.

    Returns:
        The batch, ready for :func:`fitpipe.adapters.batches.normalize_batch`.

    Raises:
        FitpipeTypeError: For a torch tensor NumPy cannot hold, naming the batch and the part.

    """
    batch = tuple(element) if isinstance(element, list) else element

    def where(path: str) -> str:
        return f"`{path}` of batch {index} from the {_SOURCE}"

    if isinstance(batch, tuple) and not is_namedtuple(batch) and 1 <= len(batch) <= 3:
        roles = ("x", "y", "sample_weight")
        return tuple(_converted(p, r, where, caller) for r, p in zip(roles, batch, strict=False))
    return _converted(batch, "x", where, caller)


class _Passes:
    """The loader's passes: the first goes on from the batches read for the signature.

    Only for a loader over an ``IterableDataset``; one over a map-style dataset is iterated
    afresh every pass (and once for the signature), as Keras does.
    """

    def __init__(self, loader: Any, caller: str, first: tuple[Any, list[Any]] | None) -> None:
        self._loader, self._caller = loader, caller
        self._first = first  # (the iterator, its batches read): the first pass goes on

    def __call__(self) -> Iterator[Any]:
        first, self._first = self._first, None
        if first is None:
            return self._pass(iter(self._loader), 0)
        iterator, peeked = first
        return itertools.chain(peeked, self._pass(iterator, len(peeked)))

    def _pass(self, iterator: Iterator[Any], start: int) -> Iterator[Any]:
        for index, element in enumerate(iterator, start):
            yield loader_batch(element, self._caller, index)


class TorchDataLoaderAdapter:
    """Takes a ``torch.utils.data.DataLoader``."""

    name = "torch"
    accepts = "a torch.utils.data.DataLoader"
    supports = frozenset({"class_weight", "steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for ``torch.utils.data.DataLoader`` instances (and subclasses)."""
        return is_torch_loader(x)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Reads the first batches for the signature; each pass iterates the loader.

        Args:
            request: The request.

        Returns:
            The batch source.

        Raises:
            DataMismatchError: When the loader yields no batch.

        """
        loader, caller = request.x, request.caller
        iterator = iter(loader)
        elements = [
            loader_batch(element, caller, index)
            for index, element in enumerate(itertools.islice(iterator, _PEEK))
        ]
        peeked = [normalize_batch(element, caller, _SOURCE) for element in elements]
        if not peeked:
            raise DataMismatchError(
                message(
                    caller,
                    "got a DataLoader that yields no batch",
                    "A DataLoader input yields at least one batch",
                    "Check its dataset (is it empty?) and `drop_last` (a dataset smaller "
                    "than one batch yields none with `drop_last=True`)",
                    x=loader,
                )
            )
        signature = signature_of(peeked, caller, _SOURCE)
        # A map-style loader's first pass iterates it again, as Keras does; one over an
        # IterableDataset (maybe read only once) goes on after the batches read.
        first = (iterator, elements) if _over_iterable(loader) else None
        del iterator  # (else) a loader's worker processes end with its iterator
        epoch = _Passes(loader, caller, first)

        errors = ErrorBox()
        batches = PythonBatches(epoch, signature, errors, caller, _SOURCE)
        return BatchSource(
            make_dataset=lambda: batches.dataset,
            count_batches=lambda: _length(loader),
            take_error=errors.take,
            check_batches=batches.check_batches,
            row_blocks=batches.row_blocks,
            element_spec=batches.element_spec,
        )
