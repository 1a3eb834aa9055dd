"""Python generators and iterators that yield batches.

A generator is read once: the first epoch starts it and later epochs go on where the last one
stopped (an infinite generator with ``steps_per_epoch`` is the usual pattern).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from fitpipe.adapters.arrays import is_array_like
from fitpipe.adapters.base import AdaptRequest, BatchSource
from fitpipe.adapters.batches import ErrorBox, normalize_batch, python_batch_dataset, signature_of
from fitpipe.errors import DataMismatchError, message

_PEEK = 2
_SOURCE = "generator"


class GeneratorAdapter:
    """Takes a Python generator or iterator yielding ``(x,)``, ``(x, y)`` or ``(x, y, sw)``."""

    name = "generator"
    accepts = "a Python generator or iterator yielding batches"
    supports = frozenset({"class_weight", "steps"})

    def can_adapt(self, x: Any) -> bool:
        """True for generators and iterator objects (not arrays that are iterable)."""
        if isinstance(x, types.GeneratorType):
            return True
        return isinstance(x, Iterator) and not is_array_like(x)

    def adapt(self, request: AdaptRequest) -> BatchSource:
        """Peeks the first batches for the signature and streams the rest.

        Args:
            request: The request.

        Returns:
            The batch source.

        """
        iterator = iter(request.x)
        peeked = []
        for _ in range(_PEEK):
            try:
                peeked.append(normalize_batch(next(iterator), request.caller, _SOURCE))
            except StopIteration:
                break
        if not peeked:
            raise DataMismatchError(
                message(
                    request.caller,
                    "got a generator that yields nothing",
                    "A generator input yields at least one batch",
                    "Check that the generator was not already consumed",
                    x=request.x,
                )
            )
        signature = signature_of(peeked, request.caller, _SOURCE)
        errors = ErrorBox()
        dataset = python_batch_dataset(
            lambda: iterator, peeked, signature, errors, request.caller, _SOURCE
        )
        return BatchSource(
            make_dataset=lambda: dataset,
            count_batches=lambda: None,
            take_error=errors.take,
        )
