"""Data fixtures for data-layer tests: batches, PyDatasets, array-likes, Arrow and Parquet.

Plain builders, with no Hypothesis in them (the strategies of
:mod:`fitpipe.testing.strategies` draw the data; these present it):

* :func:`iterate_batches` and :class:`ArrayPyDataset`: arrays as a generator of batches and as
  a ``keras.utils.PyDataset``; :class:`BatchesPyDataset`: given batches as one;
* :func:`weight_of_rows`: weights computed from their row's content, so a test can check,
  after shuffling, that each weight still travels with its row;
* :class:`ArrayLike` and :func:`as_array_like`: an array as nested lists, nested tuples or an
  object with ``__array__``;
* :func:`arrow_table`, :func:`write_parquet` and :func:`columnar_schema`: the same data as an
  Arrow table or a Parquet file, with the :class:`fitpipe.Schema` that reads it back.

Every name is also importable from :mod:`fitpipe.testing.strategies`.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fitpipe.schemas import Schema

__all__ = [
    "ARRAY_LIKE_KINDS",
    "PARQUET_ROW_GROUP_SIZE",
    "ArrayLike",
    "ArrayPyDataset",
    "BatchesPyDataset",
    "arrow_table",
    "as_array_like",
    "columnar_schema",
    "iterate_batches",
    "weight_of_rows",
    "write_parquet",
]


def weight_of_rows(x: np.ndarray) -> np.ndarray:
    """Compute a deterministic per-row weight from the row's content.

    Tests use it to build ``sample_weight`` and then check, after shuffling, that every
    weight still matches its row.

    Args:
        x: A 2-D array of rows.

    Returns:
        float32 weights of shape ``(rows,)``, all >= 1.

    """
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return (1.0 + np.abs(rows).sum(axis=1) % 97.0).astype(np.float32)


def iterate_batches(
    x: Any, y: Any, sample_weight: Any, batch_size: int
) -> Iterator[tuple[Any, ...]]:
    """Yield ``(x, y)`` or ``(x, y, sample_weight)`` slices of ``batch_size`` rows, in order.

    Args:
        x: Features (a NumPy array).
        y: Targets, or None.
        sample_weight: Weights, or None.
        batch_size: Rows per batch; the last batch may be smaller.

    Yields:
        Keras-style batch tuples.

    """
    for start in range(0, len(x), batch_size):
        stop = start + batch_size
        parts = [x[start:stop]]
        if y is not None:
            parts.append(y[start:stop])
        if sample_weight is not None:
            parts.append(sample_weight[start:stop])
        yield tuple(parts)


class ArrayPyDataset(keras.utils.PyDataset):
    """A ``PyDataset`` over in-memory arrays, ``batch_size`` rows per item.

    Args:
        x: Features.
        y: Targets, or None.
        sample_weight: Weights, or None.
        batch_size: Rows per batch.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``.

    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        sample_weight: np.ndarray | None,
        batch_size: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        start = index * self.batch_size
        stop = start + self.batch_size
        parts = [self.x[start:stop]]
        if self.y is not None:
            parts.append(self.y[start:stop])
        if self.sample_weight is not None:
            parts.append(self.sample_weight[start:stop])
        return tuple(parts)


class BatchesPyDataset(keras.utils.PyDataset):
    """A ``PyDataset`` whose items are the given batches, as they are (any structure).

    Args:
        batches: The batches, item ``i`` being ``batches[i]``.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``.

    """

    def __init__(self, batches: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Any:
        return self.batches[index]


class ArrayLike:
    """A minimal array-like: an object that is not an array but converts to one.

    fitpipe takes any object with ``__array__`` (as NumPy does); this class stands for the
    array-likes of other libraries in tests.

    Args:
        array: The wrapped array.

    """

    def __init__(self, array: np.ndarray) -> None:
        self._array = np.asarray(array)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """Returns the wrapped array (converted to ``dtype`` when given)."""
        return self._array if dtype is None else self._array.astype(dtype)

    def __len__(self) -> int:
        return len(self._array)

    def __repr__(self) -> str:
        return f"ArrayLike(shape={self._array.shape}, dtype={self._array.dtype})"


#: How :func:`array_likes` may present an array.
ARRAY_LIKE_KINDS = ("ndarray", "list", "tuple", "array_like")


def as_array_like(array: np.ndarray, kind: str) -> Any:
    """Presents ``array`` as one kind of array-like.

    Args:
        array: The array.
        kind: One of :data:`ARRAY_LIKE_KINDS`: the array itself, nested lists, nested tuples
            (of Python scalars), or an :class:`ArrayLike`.

    Returns:
        The array-like; ``np.asarray`` of it equals ``array``.

    Raises:
        ValueError: For an unknown kind.

    """
    if kind == "ndarray":
        return array
    if kind == "list":
        return array.tolist()
    if kind == "tuple":

        def to_tuple(value: Any) -> Any:
            return tuple(to_tuple(v) for v in value) if isinstance(value, list) else value

        return to_tuple(array.tolist())
    if kind == "array_like":
        return ArrayLike(array)
    raise ValueError(f"unknown array-like kind {kind!r}; expected one of {ARRAY_LIKE_KINDS}")


# Arrow and Parquet ------------------------------------------------------------------------------

#: The target and weight columns of :func:`arrow_table` (features are ``x0``, ``x1``, ...).
_TARGET_COLUMN = "y"
_WEIGHT_COLUMN = "sample_weight"

#: Rows per Parquet row group written by :func:`write_parquet` (small, so that row groups
#: and batches rarely line up).
PARQUET_ROW_GROUP_SIZE = 5

_session_dir: str | None = None


def _feature_columns(x: np.ndarray) -> list[str]:
    return [f"x{i}" for i in range(x.shape[1])]


def arrow_table(
    x: np.ndarray,
    y: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    keyed: bool = False,
) -> pa.Table:
    """The data as a ``pyarrow.Table``: one column per feature, then targets and weights.

    Args:
        x: Features, 2-D; column ``j`` becomes the column ``"x{j}"``.
        y: Targets of shape ``(rows,)`` (column ``"y"``), or None.
        sample_weight: Weights of shape ``(rows,)`` (column ``"sample_weight"``), or None.
        keyed: Add a column ``"key"``: ``x[:, 0]`` as int64 (the rows' keys for the
            conformance kit's ``split_by`` check: return ``"key"`` from ``split_by_for``).

    Returns:
        The table; :func:`columnar_schema` gives the schema that reads it back.

    """
    columns: dict[str, Any] = {
        name: np.ascontiguousarray(x[:, i]) for i, name in enumerate(_feature_columns(x))
    }
    if y is not None:
        columns[_TARGET_COLUMN] = np.asarray(y)
    if sample_weight is not None:
        columns[_WEIGHT_COLUMN] = np.asarray(sample_weight)
    if keyed:
        with np.errstate(invalid="ignore"):  # generated features may be NaN or huge
            key = np.nan_to_num(x[:, 0], posinf=0.0, neginf=0.0).clip(-(2**60), 2**60)
        columns["key"] = key.astype(np.int64)
    return pa.table(columns)


def columnar_schema(
    x: np.ndarray, y: np.ndarray | None = None, sample_weight: np.ndarray | None = None
) -> Schema:
    """The schema that reads :func:`arrow_table` (or :func:`write_parquet`) data back.

    The feature columns are listed, so they are stacked into one ``(rows, features)``
    tensor equal to ``x``; the target and weight columns are single names, so they come out
    as ``(rows,)`` tensors equal to ``y`` and ``sample_weight``.

    Args:
        x: Features, 2-D.
        y: Targets, or None (no target column).
        sample_weight: Weights, or None (no weight column).

    Returns:
        The schema.

    """
    return Schema(
        features=_feature_columns(x),
        targets=_TARGET_COLUMN if y is not None else None,
        sample_weight=_WEIGHT_COLUMN if sample_weight is not None else None,
    )


def _parquet_session_dir() -> str:
    """One temporary directory per process for every written file, removed at exit."""
    global _session_dir
    if _session_dir is None or not os.path.isdir(_session_dir):
        _session_dir = tempfile.mkdtemp(prefix="fitpipe-forms-")
        atexit.register(shutil.rmtree, _session_dir, True)
    return _session_dir


def write_parquet(
    x: np.ndarray,
    y: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    *,
    row_group_size: int = PARQUET_ROW_GROUP_SIZE,
) -> str:
    """Writes :func:`arrow_table` of the data to a new Parquet file and returns its path.

    Every call writes a new file in a new directory under one temporary directory per
    process, which is removed when the process exits.

    Args:
        x: Features, 2-D.
        y: Targets, or None.
        sample_weight: Weights, or None.
        row_group_size: Rows per row group.

    Returns:
        The path of the file; :func:`columnar_schema` gives the schema that reads it.

    """
    directory = tempfile.mkdtemp(dir=_parquet_session_dir())
    path = os.path.join(directory, "data.parquet")
    pq.write_table(arrow_table(x, y, sample_weight), path, row_group_size=row_group_size)
    return path
