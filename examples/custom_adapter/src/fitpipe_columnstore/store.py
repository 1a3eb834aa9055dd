"""``ColumnStore``: a tiny column-oriented table, the input type of this example."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class ColumnStore:
    """Named columns of equal length; one may be the target and one the sample weight.

    The store is deliberately *not* a mapping, array-like or iterator, so no built-in fitpipe
    adapter takes it: only the ``columnstore`` adapter does.

    Args:
        columns: Column name to values (anything ``np.asarray`` takes; 1-D or 2-D).
        target: The name of the target column, if any.
        weight: The name of the sample-weight column, if any (needs ``target``).

    Raises:
        ValueError: When columns differ in length, or a role names a missing column.

    """

    def __init__(
        self,
        columns: Mapping[str, Any],
        *,
        target: str | None = None,
        weight: str | None = None,
    ) -> None:
        self._columns = {name: np.asarray(values) for name, values in columns.items()}
        lengths = {name: len(values) for name, values in self._columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns differ in length: {lengths}")
        for role, name in (("target", target), ("weight", weight)):
            if name is not None and name not in self._columns:
                raise ValueError(f"{role} column {name!r} is not among {sorted(self._columns)}")
        if weight is not None and target is None:
            raise ValueError("a weight column needs a target column")
        self.target = target
        self.weight = weight

    @property
    def feature_names(self) -> list[str]:
        """The columns that are neither the target nor the weight, in insertion order."""
        return [name for name in self._columns if name not in (self.target, self.weight)]

    def column(self, name: str) -> np.ndarray:
        """Returns one column."""
        return self._columns[name]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def __repr__(self) -> str:
        return (
            f"ColumnStore(rows={len(self)}, features={self.feature_names}, "
            f"target={self.target!r}, weight={self.weight!r})"
        )
