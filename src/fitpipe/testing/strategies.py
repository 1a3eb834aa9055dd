"""Hypothesis strategies for fitpipe's data layer, in one place.

Arrays and structures:

* :func:`row_counts`, :func:`float_arrays`, :func:`int_arrays`: small arrays whose first
  dimension is a given row count;
* :func:`array_likes`: the same array as an ndarray, nested lists or tuples, or an object
  with ``__array__`` (:class:`ArrayLike`);
* :func:`nested_structures`, :func:`structured_examples`: nested tuples, lists and dicts of
  arrays sharing a row count;
* :func:`targets`, :func:`sample_weights`: targets and positive per-sample weights;
* :func:`examples`: ``x``, ``y``, ``sample_weight`` and ``batch_size`` with a shared row count;
  :func:`conformance_examples`: the same, ``y`` optional, as the conformance kit draws them.

Input forms:

* :func:`equivalent_forms`: the same data presented as every input form fitpipe takes
  (arrays, dict, list, tensor, generator, ``PyDataset``, ``tf.data``, Arrow table, Parquet
  file), for properties of the form "every form yields the same rows";
  :func:`presented_examples` draws one of them;
* :func:`register_form` is the extension point for more forms: the Arrow table and Parquet
  file forms register there, and so can third-party adapters;
* :func:`arrow_table`, :func:`write_parquet` and :func:`columnar_schema`: the same data as
  an Arrow table or a Parquet file, with the :class:`fitpipe.Schema` that reads it back.

Weights can be made a function of their row's content (:func:`weight_of_rows`) so a test can
check, after shuffling, that each weight still travels with its row.

This module needs ``hypothesis`` (the ``test`` extra: ``pip install fitpipe[test]``).
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fitpipe.schemas import Schema

__all__ = [
    "ARRAY_LIKE_KINDS",
    "FORM_FACTORIES",
    "ArrayLike",
    "ArrayPyDataset",
    "Example",
    "Form",
    "FormFactory",
    "array_likes",
    "arrow_table",
    "as_array_like",
    "batch_sizes",
    "columnar_schema",
    "conformance_examples",
    "equivalent_forms",
    "examples",
    "float_arrays",
    "form_names",
    "int_arrays",
    "iterate_batches",
    "nested_structures",
    "presented_examples",
    "register_form",
    "row_counts",
    "sample_weights",
    "structured_examples",
    "targets",
    "weight_of_rows",
    "write_parquet",
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
        y: Targets, ``(rows,)`` (None only from :func:`conformance_examples`).
        sample_weight: Weights, ``(rows,)``, or None.
        batch_size: Rows per batch.

    """

    x: np.ndarray
    y: np.ndarray | None
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
        schema: The declared schema that reads a columnar form (Arrow, Parquet), or None;
            ``build`` already passes it as the ``schema`` keyword argument.

    """

    name: str
    build: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
    row_addressed: bool
    adapter: str
    schema: Schema | None = None


#: Builds one :class:`Form` of ``(x, y, sample_weight, batch_size)``.
FormFactory = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", int], Form]

#: The registered form factories, in the order :func:`equivalent_forms` presents them.
#: Extend it with :func:`register_form` (the Arrow table and Parquet file forms register
#: here, next to the forms below).
FORM_FACTORIES: dict[str, FormFactory] = {}


def register_form(name: str, factory: FormFactory, *, replace: bool = False) -> FormFactory:
    """Adds an input form to :func:`equivalent_forms` and :func:`presented_examples`.

    This is the extension point for new input forms (the Arrow table and Parquet file forms
    are added here); a third-party adapter may register the form it takes, so property
    tests written against :func:`equivalent_forms` cover it too.

    Args:
        name: The form's label (unique).
        factory: Builds the :class:`Form` for ``(x, y, sample_weight, batch_size)``; its
            ``build`` must return a fresh input every call.
        replace: Replace a form registered under the same name.

    Returns:
        ``factory``, so the function can be used as a decorator's target.

    Raises:
        ValueError: When ``name`` is taken and ``replace`` is False.

    """
    if name in FORM_FACTORIES and not replace:
        raise ValueError(f"an input form named {name!r} is already registered")
    FORM_FACTORIES[name] = factory
    return factory


def _row_form(name: str, adapter: str, convert: Callable[[Any], Any]) -> FormFactory:
    """A factory for a row-addressed form: ``x`` converted, the rest passed as arguments."""

    def factory(
        x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
    ) -> Form:
        def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
            kwargs: dict[str, Any] = {"batch_size": batch_size}
            as_target = tf.constant if name == "tensor" else (lambda value: value)
            if y is not None:
                kwargs["y"] = as_target(y)
            if sample_weight is not None:
                kwargs["sample_weight"] = as_target(sample_weight)
            return (convert(x),), kwargs

        return Form(name, build, True, adapter)

    return factory


def _generator_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (iterate_batches(x, y, sample_weight, batch_size),), {}

    return Form("generator", build, False, "generator")


def _pydataset_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (ArrayPyDataset(x, y, sample_weight, batch_size),), {}

    return Form("pydataset", build, False, "pydataset")


def _tf_data_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        parts = tuple(p for p in (x, y, sample_weight) if p is not None)
        return (tf.data.Dataset.from_tensor_slices(parts).batch(batch_size),), {}

    return Form("tf.data", build, False, "tf.data")


# Columnar forms ---------------------------------------------------------------------------

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
    x: np.ndarray, y: np.ndarray | None = None, sample_weight: np.ndarray | None = None
) -> pa.Table:
    """The data as a ``pyarrow.Table``: one column per feature, then targets and weights.

    Args:
        x: Features, 2-D; column ``j`` becomes the column ``"x{j}"``.
        y: Targets of shape ``(rows,)`` (column ``"y"``), or None.
        sample_weight: Weights of shape ``(rows,)`` (column ``"sample_weight"``), or None.

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


def _arrow_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    schema = columnar_schema(x, y, sample_weight)

    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (arrow_table(x, y, sample_weight),), {"batch_size": batch_size, "schema": schema}

    return Form("arrow", build, True, "arrow", schema)


def _parquet_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    schema = columnar_schema(x, y, sample_weight)

    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = write_parquet(x, y, sample_weight)
        return (path,), {"batch_size": batch_size, "schema": schema}

    return Form("parquet", build, False, "parquet", schema)


register_form("arrays", _row_form("arrays", "numpy", lambda a: a))
register_form("dict", _row_form("dict", "mapping", lambda a: {"a": a}))
register_form("list", _row_form("list", "sequence", lambda a: [a]))
register_form("tensor", _row_form("tensor", "tensor", tf.constant))
register_form("generator", _generator_form)
register_form("pydataset", _pydataset_form)
register_form("tf.data", _tf_data_form)
register_form("arrow", _arrow_form)
register_form("parquet", _parquet_form)


def equivalent_forms(
    x: np.ndarray,
    y: np.ndarray | None,
    sample_weight: np.ndarray | None,
    batch_size: int,
    *,
    names: tuple[str, ...] | None = None,
) -> list[Form]:
    """Present the same data as every input form, each yielding the same rows in order.

    Forms: NumPy arrays, a dict ``{"a": x}`` (one named input), a list ``[x]``, ``tf.Tensor``,
    a generator of batches, a ``PyDataset``, a batched ``tf.data.Dataset``, a
    ``pyarrow.Table`` and a Parquet file (a new file in a temporary directory at every
    ``build``), plus any form added with :func:`register_form`. Row-addressed forms get
    ``batch_size`` as an argument; batch forms are batched by ``batch_size`` themselves,
    except the Parquet file, which gets it as an argument too. The columnar forms carry
    their :class:`fitpipe.Schema` (:attr:`Form.schema`), and their ``build`` passes it as
    ``schema=``, so ``fitpipe.adapt(*args, **kwargs)`` works for every form.

    Args:
        x: Features, 2-D.
        y: Targets, or None.
        sample_weight: Weights, or None (requires ``y``).
        batch_size: Rows per batch.
        names: Only these forms (by label), in this order; all registered forms when None.

    Returns:
        The forms, each able to build a fresh input any number of times.

    Raises:
        KeyError: For a name no form is registered under.

    """
    chosen = tuple(FORM_FACTORIES) if names is None else names
    return [FORM_FACTORIES[name](x, y, sample_weight, batch_size) for name in chosen]


def form_names() -> tuple[str, ...]:
    """The labels of the registered forms, in presentation order."""
    return tuple(FORM_FACTORIES)


@st.composite
def presented_examples(
    draw: st.DrawFn,
    max_rows: int = 24,
    max_batch_size: int = 8,
    weights: str = "any",
    names: tuple[str, ...] | None = None,
) -> tuple[Example, Form]:
    """An :class:`Example` and one form presenting it (drawn among the registered forms).

    Args:
        draw: Supplied by Hypothesis.
        max_rows: Most rows.
        max_batch_size: Largest batch size.
        weights: As for :func:`examples`.
        names: Draw only among these forms; all registered forms when None.

    Returns:
        ``(example, form)``; ``form.build()`` gives the arguments of ``fitpipe.adapt``.

    """
    example = draw(examples(max_rows, max_batch_size, weights))
    name = draw(st.sampled_from(tuple(FORM_FACTORIES) if names is None else names))
    (form,) = equivalent_forms(
        example.x, example.y, example.sample_weight, example.batch_size, names=(name,)
    )
    return example, form


# Array-likes and nested structures ------------------------------------------------------


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


def array_likes(
    rows: int, max_features: int = 4, kinds: tuple[str, ...] = ARRAY_LIKE_KINDS
) -> st.SearchStrategy[tuple[Any, np.ndarray]]:
    """Array-likes of ``rows`` rows, each with the array it stands for.

    Nested lists and tuples hold Python floats, so the array they stand for is float64
    (as ``np.asarray`` reads them); the other kinds keep float32.

    Args:
        rows: The first dimension.
        max_features: The largest second dimension.
        kinds: The kinds to draw from (see :func:`as_array_like`).

    Returns:
        A strategy of ``(array_like, np.asarray(array_like))`` pairs.

    """

    def present(pair: tuple[np.ndarray, str]) -> tuple[Any, np.ndarray]:
        array, kind = pair
        value = as_array_like(array, kind)
        return value, np.asarray(value)

    return st.tuples(float_arrays(rows, max_features), st.sampled_from(kinds)).map(present)


_KEYS = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=4)


def nested_structures(
    leaves: st.SearchStrategy[Any],
    max_depth: int = 2,
    max_width: int = 3,
) -> st.SearchStrategy[Any]:
    """Nested tuples, lists and dicts (non-empty, string keys) of leaves.

    Args:
        leaves: The strategy of leaves, e.g. ``float_arrays(rows)`` so every leaf shares the
            row count.
        max_depth: The deepest nesting (0: a single leaf).
        max_width: The most children of one tuple, list or dict.

    Returns:
        A strategy of structures; flatten them with ``tf.nest.flatten``.

    """

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, min_size=1, max_size=max_width).map(tuple),
            st.lists(children, min_size=1, max_size=max_width),
            st.dictionaries(_KEYS, children, min_size=1, max_size=max_width),
        )

    if max_depth <= 0:
        return leaves
    return st.recursive(leaves, extend, max_leaves=max_width**max_depth)


@st.composite
def structured_examples(
    draw: st.DrawFn, max_rows: int = 16, max_depth: int = 2, max_width: int = 3
) -> tuple[Any, int]:
    """A nested structure of float32 arrays sharing one drawn row count.

    Args:
        draw: Supplied by Hypothesis.
        max_rows: Most rows.
        max_depth: As for :func:`nested_structures`.
        max_width: As for :func:`nested_structures`.

    Returns:
        ``(structure, rows)``.

    """
    rows = draw(row_counts(1, max_rows))
    structure = draw(nested_structures(float_arrays(rows), max_depth, max_width))
    return structure, rows


@st.composite
def conformance_examples(
    draw: st.DrawFn,
    max_rows: int = 24,
    max_batch_size: int = 8,
    targets_given: bool | None = None,
) -> Example:
    """Data for :class:`fitpipe.testing.AdapterConformanceTests`.

    ``x`` is float32 ``(rows, 1..4)``; ``y`` is drawn as int64 class labels or float32
    values, or left out (inference data) unless ``targets_given``; weights, when drawn, are
    :func:`weight_of_rows` of ``x`` so they identify their row after shuffling.

    Args:
        draw: Supplied by Hypothesis.
        max_rows: Most rows.
        max_batch_size: Largest batch size.
        targets_given: True: always draw ``y``; False: never; None: either.

    Returns:
        An :class:`Example` (``y`` and ``sample_weight`` may be None).

    """
    weights = draw(st.sampled_from(["none", "of_rows"]))
    example = draw(examples(max_rows, max_batch_size, weights))
    keep = draw(st.booleans()) if targets_given is None else targets_given
    if keep:
        return example
    return dataclasses.replace(example, y=None, sample_weight=None)
