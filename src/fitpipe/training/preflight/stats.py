"""Per-column statistics of a pre-flight scan, gathered a block of rows at a time.

A block is a 2-D NumPy array ``(rows, columns)`` of one role (features, targets or weights)
with a name per column. :class:`BlockStats` counts NaN and infinities and tracks the finite
minimum and maximum of every column in one vectorized pass per block; :class:`TargetStats`
adds what the target checks need (integral values, class counts, row sums, mean and spread).
Both merge blocks as they pass, so a Parquet scan never holds more than one batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["MAX_CLASSES", "BlockStats", "ColumnStats", "TargetStats", "as_block"]

#: Distinct target values counted for the class balance table; more is not a class label.
MAX_CLASSES = 1000

#: A one-hot row sums to 1 within this tolerance (float32 soft labels round).
ROW_SUM_TOLERANCE = 1e-3


@dataclasses.dataclass
class ColumnStats:
    """What the scan found in one column.

    Attributes:
        name: The column (a table column, or a position such as ``x[:, 3]``).
        role: ``"feature"``, ``"target"`` or ``"weight"``.
        rows: Values seen (rows, or rows times the width of a list column).
        nulls: Nulls (Arrow and Parquet data only).
        nan: NaN values.
        posinf: ``+inf`` values.
        neginf: ``-inf`` values.
        low: The smallest finite value (``inf`` when none).
        high: The largest finite value (``-inf`` when none).
        first_bad_row: The first row holding a NaN or an infinity, or None.
        dtype: The dtype of the values scanned (Parquet statistics: of floating columns only).
        exact: False when the figures come from Parquet statistics alone (NaN and
            infinities then unknown: reported as None in JSON).
    """

    name: str
    role: str
    rows: int = 0
    nulls: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    low: float = math.inf
    high: float = -math.inf
    first_bad_row: int | None = None
    dtype: str = ""
    exact: bool = True

    @property
    def non_finite(self) -> int:
        """NaN and infinite values together."""
        return self.nan + self.posinf + self.neginf

    @property
    def constant(self) -> bool:
        """True when every value is the same finite number (over more than one row)."""
        clean = self.non_finite == 0 and self.nulls == 0
        return clean and self.rows > 1 and self.low == self.high

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON values (unknown counts as None)."""
        known = self.exact
        return {
            "name": self.name,
            "role": self.role,
            "rows": self.rows,
            "nulls": self.nulls,
            "nan": self.nan if known else None,
            "posinf": self.posinf if known else None,
            "neginf": self.neginf if known else None,
            "min": self.low if math.isfinite(self.low) else None,
            "max": self.high if math.isfinite(self.high) else None,
            "constant": self.constant,
            "first_bad_row": self.first_bad_row,
        }


def as_block(values: Any) -> np.ndarray:
    """``values`` as a 2-D array ``(rows, columns)``: 1-D becomes one column, more is flattened.

    Args:
        values: An array-like with rows along its first axis.
    """
    array = np.asarray(values)
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array.reshape(array.shape[0], -1)


class BlockStats:
    """Statistics of the columns of one role, merged over blocks of rows.

    Args:
        names: The name of each column, in order.
        role: ``"feature"``, ``"target"`` or ``"weight"``.
    """

    def __init__(self, names: list[str], role: str) -> None:
        self.columns = [ColumnStats(name, role) for name in names]
        self.seen = 0  # rows seen so far, for the first bad row

    def update(
        self, block: np.ndarray, nulls: list[int] | None = None, filled: list[int] | None = None
    ) -> None:
        """Adds one block of rows.

        Args:
            block: The rows ``(rows, columns)``.
            nulls: Nulls per column, counted by the reader (Arrow data).
            filled: Per column, how many of the nulls the reader turned into NaN (not
                counted as NaN).
        """
        counts = block.shape[0]
        lows = highs = np.full(block.shape[1], np.nan)
        if counts:  # min and max pass NaN and infinities on: the mask only when one is there
            lows, highs = block.min(axis=0), block.max(axis=0)
            floats = block.dtype.kind in "fc"
            if floats and not (np.isfinite(lows).all() and np.isfinite(highs).all()):
                finite = np.isfinite(block)
                self._non_finite(block, finite, filled)
                lows, highs = _nan_extremes(np.where(finite, block, np.nan))
        for j, column in enumerate(self.columns):
            column.rows += counts
            column.dtype = block.dtype.name
            if nulls is not None:
                column.nulls += nulls[j]
            if not math.isnan(float(lows[j])):
                column.low = min(column.low, float(lows[j]))
                column.high = max(column.high, float(highs[j]))
        self.seen += counts

    def _non_finite(self, block: np.ndarray, finite: np.ndarray, filled: list[int] | None) -> None:
        bad = ~finite
        nan = np.isnan(block)
        nans = nan.sum(axis=0)
        pos = (bad & ~nan & (block > 0)).sum(axis=0)
        neg = bad.sum(axis=0) - nans - pos
        for j in np.flatnonzero(bad.any(axis=0)):
            column = self.columns[j]
            column.nan += int(nans[j]) - (filled[j] if filled else 0)
            column.posinf += int(pos[j])
            column.neginf += int(neg[j])
            if column.first_bad_row is None:
                column.first_bad_row = self.seen + int(np.argmax(bad[:, j]))


def _nan_extremes(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column minima and maxima ignoring NaN (NaN where a column has no finite value)."""
    with np.errstate(all="ignore"):
        empty = np.isnan(block).all(axis=0)
        filled = np.where(np.isnan(block), np.inf, block)
        lows = filled.min(axis=0).astype(np.float64)
        filled = np.where(np.isnan(block), -np.inf, block)
        highs = filled.max(axis=0).astype(np.float64)
    lows[empty] = np.nan
    highs[empty] = np.nan
    return lows, highs


@dataclasses.dataclass
class TargetStats:
    """What the target checks need of one target (one leaf, one model output).

    Attributes:
        name: The target, in words (a column, or a group of columns).
        leaf: Its position among the flattened target leaves (the model output it trains).
        width: Columns per row (1 for labels, the class count for one-hot rows).
        rows: Rows seen.
        integral: False once a finite value with a fraction is seen.
        counts: Rows per class (label value, or the column of the row's largest value);
            None once there are more than :data:`MAX_CLASSES` distinct values.
        rows_off_one: Rows whose values do not sum to 1 (``width > 1`` only).
        first_row_off_one: The first of them.
        total: The sum of the finite values.
        total_squares: The sum of their squares.
        finite: How many finite values were summed.
    """

    name: str
    leaf: int
    width: int = 1
    rows: int = 0
    integral: bool = True
    counts: dict[float, int] | None = dataclasses.field(default_factory=dict)
    rows_off_one: int = 0
    first_row_off_one: int | None = None
    total: float = 0.0
    total_squares: float = 0.0
    finite: int = 0

    def update(self, block: np.ndarray) -> None:
        """Adds one block of target rows ``(rows, width)``."""
        self.width = block.shape[1]
        values = block[np.isfinite(block)] if block.dtype.kind in "fc" else block.ravel()
        values64 = values.astype(np.float64, copy=False)
        if self.integral and values.dtype.kind in "fc":
            self.integral = bool(np.all(np.floor(values) == values))
        self.total += float(values64.sum())
        self.total_squares += float(np.square(values64).sum())
        self.finite += values.size
        if self.width > 1 and block.shape[0]:
            self._row_sums(block)
        self._count(block)
        self.rows += block.shape[0]

    def _row_sums(self, block: np.ndarray) -> None:
        with np.errstate(all="ignore"):
            off = np.abs(block.sum(axis=1, dtype=np.float64) - 1.0) > ROW_SUM_TOLERANCE
        found = int(off.sum())
        if found and self.first_row_off_one is None:
            self.first_row_off_one = self.rows + int(np.argmax(off))
        self.rows_off_one += found

    def _count(self, block: np.ndarray) -> None:
        if self.counts is None or not block.shape[0]:
            return
        if self.width > 1:
            keys = np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)
        else:
            keys = block[:, 0]
            if keys.dtype.kind in "fc":
                keys = keys[np.isfinite(keys)]
        found, numbers = np.unique(keys, return_counts=True)
        if len(found) > MAX_CLASSES:  # too many already: not counted one by one
            self.counts = None
            return
        for key, number in zip(found.tolist(), numbers.tolist(), strict=True):
            self.counts[key] = self.counts.get(key, 0) + number
        if len(self.counts) > MAX_CLASSES:
            self.counts = None

    @property
    def mean(self) -> float:
        """The mean of the finite values (0 when none)."""
        return self.total / self.finite if self.finite else 0.0

    @property
    def std(self) -> float:
        """The standard deviation of the finite values (0 when none)."""
        if not self.finite:
            return 0.0
        return math.sqrt(max(0.0, self.total_squares / self.finite - self.mean**2))
