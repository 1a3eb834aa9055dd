"""Hypothesis strategies for fitpipe's data layer, in one place.

* :func:`row_counts`, :func:`float_arrays`, :func:`int_arrays`: small arrays whose first
  dimension is a given row count;
* :func:`targets`, :func:`sample_weights`: targets and positive per-sample weights;
* :func:`examples`: ``x``, ``y``, ``sample_weight`` and ``batch_size`` with a shared row count;
* :func:`equivalent_forms`: the same data presented as every input form fitpipe takes
  (arrays, dict, list, tensor, generator, ``PyDataset``, ``tf.data``), for properties of the
  form "every form yields the same rows".

Weights can be made a function of their row's content (:func:`weight_of_rows`) so a test can
check, after shuffling, that each weight still travels with its row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "ArrayPyDataset",
    "Example",
    "Form",
    "batch_sizes",
    "equivalent_forms",
    "examples",
    "float_arrays",
    "int_arrays",
    "iterate_batches",
    "row_counts",
    "sample_weights",
    "targets",
    "weight_of_rows",
]

#: Float elements that survive float32 and comparisons exactly (no NaN, no infinities).
_FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


def row_counts(min_rows: int = 1, max_rows: int = 24) -> st.SearchStrategy[int]:
    """Numbers of rows (samples) for generated arrays.

    Args:
        min_rows: Fewest rows.
        max_rows: Most rows.

    Returns:
        A strategy of ints.

    """
    return st.integers(min_rows, max_rows)


def batch_sizes(max_batch_size: int = 8) -> st.SearchStrategy[int]:
    """Batch sizes from 1 to ``max_batch_size``.

    Args:
        max_batch_size: The largest batch size.

    Returns:
        A strategy of ints.

    """
    return st.integers(1, max_batch_size)


def float_arrays(rows: int, max_features: int = 4) -> st.SearchStrategy[np.ndarray]:
    """2-D float32 arrays of shape ``(rows, features)``.

    Args:
        rows: The first dimension.
        max_features: The largest second dimension (at least 1).

    Returns:
        A strategy of arrays.

    """
    return st.integers(1, max_features).flatmap(
        lambda features: hnp.arrays(np.float32, (rows, features), elements=_FLOATS)
    )


def int_arrays(
    rows: int, max_features: int = 4, low: int = -100, high: int = 100
) -> st.SearchStrategy[np.ndarray]:
    """2-D int64 arrays of shape ``(rows, features)`` with elements in ``[low, high]``.

    Args:
        rows: The first dimension.
        max_features: The largest second dimension (at least 1).
        low: Smallest element.
        high: Largest element.

    Returns:
        A strategy of arrays.

    """
    return st.integers(1, max_features).flatmap(
        lambda features: hnp.arrays(np.int64, (rows, features), elements=st.integers(low, high))
    )


def targets(rows: int, num_classes: int = 5) -> st.SearchStrategy[np.ndarray]:
    """Targets of shape ``(rows,)``: int64 class labels or float32 regression values.

    Args:
        rows: The first dimension.
        num_classes: Labels are drawn from ``[0, num_classes)``.

    Returns:
        A strategy of arrays.

    """
    labels = hnp.arrays(np.int64, (rows,), elements=st.integers(0, num_classes - 1))
    values = hnp.arrays(np.float32, (rows,), elements=_FLOATS)
    return st.one_of(labels, values)


def sample_weights(rows: int) -> st.SearchStrategy[np.ndarray]:
    """Positive float32 per-sample weights of shape ``(rows,)``.

    Args:
        rows: The first dimension.

    Returns:
        A strategy of arrays.

    """
    return hnp.arrays(np.float32, (rows,), elements=st.floats(0.0, 10.0, allow_nan=False, width=32))


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


@dataclasses.dataclass(frozen=True)
class Example:
    """One generated data set.

    Attributes:
        x: Features, ``(rows, features)``.
        y: Targets, ``(rows,)``.
        sample_weight: Weights, ``(rows,)``, or None.
        batch_size: Rows per batch.

    """

    x: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None
    batch_size: int

    @property
    def rows(self) -> int:
        """The shared first dimension."""
        return int(self.x.shape[0])


@st.composite
def examples(
    draw: st.DrawFn,
    max_rows: int = 24,
    max_batch_size: int = 8,
    weights: str = "any",
) -> Example:
    """``x``, ``y``, ``sample_weight`` and ``batch_size`` sharing one row count.

    Args:
        draw: Supplied by Hypothesis.
        max_rows: Most rows.
        max_batch_size: Largest batch size.
        weights: ``"any"`` (random weights or None), ``"none"``, ``"random"``, or
            ``"of_rows"`` (weights from :func:`weight_of_rows`, so they identify their row).

    Returns:
        An :class:`Example`.

    """
    rows = draw(row_counts(1, max_rows))
    x = draw(st.one_of(float_arrays(rows), int_arrays(rows).map(lambda a: a.astype(np.float32))))
    y = draw(targets(rows))
    if weights == "any":
        weights = draw(st.sampled_from(["none", "random"]))
    if weights == "none":
        sample_weight = None
    elif weights == "random":
        sample_weight = draw(sample_weights(rows))
    elif weights == "of_rows":
        sample_weight = weight_of_rows(x)
    else:
        raise ValueError(f"unknown weights option {weights!r}")
    return Example(x, y, sample_weight, draw(batch_sizes(max_batch_size)))


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


@dataclasses.dataclass(frozen=True)
class Form:
    """One presentation of a data set as input to ``fitpipe.adapt``.

    Attributes:
        name: A short label (``"arrays"``, ``"generator"``, ...).
        build: Returns fresh ``(args, kwargs)`` for ``fitpipe.adapt`` (generators are single
            use, so build every time).
        row_addressed: True for forms the pipeline batches and may shuffle itself.
        adapter: The registered adapter expected to take the input.

    """

    name: str
    build: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
    row_addressed: bool
    adapter: str


def equivalent_forms(
    x: np.ndarray,
    y: np.ndarray | None,
    sample_weight: np.ndarray | None,
    batch_size: int,
) -> list[Form]:
    """Present the same data as every input form, each yielding the same rows in order.

    Forms: NumPy arrays, a dict ``{"a": x}`` (one named input), a list ``[x]``, ``tf.Tensor``,
    a generator of batches, a ``PyDataset`` and a batched ``tf.data.Dataset``. Row-addressed
    forms get ``batch_size`` as an argument; batch forms are batched by ``batch_size``
    themselves.

    Args:
        x: Features, 2-D.
        y: Targets, or None.
        sample_weight: Weights, or None (requires ``y``).
        batch_size: Rows per batch.

    Returns:
        The forms, each able to build a fresh input any number of times.

    """

    def row_form(name: str, adapter: str, convert: Callable[[Any], Any]) -> Form:
        def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
            kwargs: dict[str, Any] = {"batch_size": batch_size}
            if y is not None:
                kwargs["y"] = convert_target(y) if name == "tensor" else y
            if sample_weight is not None:
                kwargs["sample_weight"] = (
                    convert_target(sample_weight) if name == "tensor" else sample_weight
                )
            return (convert(x),), kwargs

        return Form(name, build, True, adapter)

    def convert_target(value: np.ndarray) -> tf.Tensor:
        return tf.constant(value)

    def generator_form() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (iterate_batches(x, y, sample_weight, batch_size),), {}

    def pydataset_form() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (ArrayPyDataset(x, y, sample_weight, batch_size),), {}

    def tf_data_form() -> tuple[tuple[Any, ...], dict[str, Any]]:
        parts = tuple(p for p in (x, y, sample_weight) if p is not None)
        return (tf.data.Dataset.from_tensor_slices(parts).batch(batch_size),), {}

    return [
        row_form("arrays", "numpy", lambda a: a),
        row_form("dict", "mapping", lambda a: {"a": a}),
        row_form("list", "sequence", lambda a: [a]),
        row_form("tensor", "tensor", tf.constant),
        Form("generator", generator_form, False, "generator"),
        Form("pydataset", pydataset_form, False, "pydataset"),
        Form("tf.data", tf_data_form, False, "tf.data"),
    ]
