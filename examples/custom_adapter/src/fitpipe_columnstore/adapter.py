"""The fitpipe adapter for :class:`~fitpipe_columnstore.store.ColumnStore`."""

from __future__ import annotations

from typing import Any

import numpy as np

from fitpipe.adapters import AdaptRequest, ArraySource
from fitpipe_columnstore.store import ColumnStore


class ColumnStoreAdapter:
    """Turns a ``ColumnStore`` into rows: features as a dict of columns, plus target and weight.

    The store is addressed by row, so the adapter returns an :class:`ArraySource` and the
    fitpipe pipeline batches, shuffles, splits and weights it. Targets and weights come from
    the store's own columns, so ``y`` and ``sample_weight`` are not in :attr:`supports`:
    fitpipe rejects them with its shared "does not support" error before :meth:`adapt` runs.
    """

    name = "columnstore"
    accepts = "a fitpipe_columnstore.ColumnStore"
    supports = frozenset({"batch_size", "shuffle", "class_weight", "steps", "validation_split"})
    #: Read by fitpipe when it loads the entry point (higher is asked first).
    priority = 60

    def can_adapt(self, x: Any) -> bool:
        """Takes ``ColumnStore`` instances only (cheap, no side effects)."""
        return isinstance(x, ColumnStore)

    def adapt(self, request: AdaptRequest) -> ArraySource:
        """Reads the store's columns.

        Args:
            request: What the user asked; only ``request.x`` is read here (batching,
                shuffling and class weights are done by the pipeline).

        Returns:
            The rows: ``x`` a dict of feature columns, ``y`` and ``sample_weight`` the
            target and weight columns (or None).

        Raises:
            ValueError: For a store with no rows or no feature column.

        """
        store: ColumnStore = request.x
        if len(store) == 0 or not store.feature_names:
            raise ValueError(f"`{request.caller}` needs a ColumnStore with rows and features")
        x = {name: store.column(name) for name in store.feature_names}
        y = store.column(store.target) if store.target else None
        weight = store.column(store.weight) if store.weight else None
        if weight is not None:
            weight = np.asarray(weight, dtype=np.float32)
        return ArraySource(x=x, y=y, sample_weight=weight, num_samples=len(store))
