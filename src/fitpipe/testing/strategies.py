"""Hypothesis strategies for fitpipe's data layer, in one place.

Arrays and structures:

* :func:`parquet_layouts`: files and row groups of a Parquet folder, for planning;
* :func:`row_counts`, :func:`float_arrays`, :func:`int_arrays`: small arrays whose first
  dimension is a given row count; :func:`narrow_number_dtypes`: the float8 and int4 dtypes
  no input may hold;
* :func:`array_likes`: the same array as an ndarray, nested lists or tuples, or an object
  with ``__array__`` (:class:`ArrayLike`);
* :func:`nested_structures`, :func:`structured_examples`: nested tuples, lists and dicts of
  arrays sharing a row count;
* :func:`targets`, :func:`sample_weights`: targets and positive per-sample weights;
  :func:`class_labels`: classification targets only;
* :func:`split_keys`: a key per row (integers or strings, some rows sharing a key), for
  grouped validation splits (``split_by``);
* :func:`sparse_entries`: a sparse tensor's entries in any order, rows without any included;
* :func:`numpy_text`: text a NumPy ``str`` array holds as it is (no NUL characters);
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

Tuners:

* :func:`call_timings`: the seconds of compiled calls, some of which traced (and compiled),
  for properties of the tuners of steps per call and of XLA (``fitpipe.training.tuning``).

Trainers:

* :func:`optimizer_settings`: an optimizer class with a rate or a schedule, clipping, moving
  averages of the weights, accumulated gradients and weight decay (:class:`OptimizerSetting`),
  for properties of the form "the optimizer's state trains as in Keras".

Weights can be made a function of their row's content (:func:`weight_of_rows`) so a test can
check, after shuffling, that each weight still travels with its row.

The input forms live in :mod:`fitpipe.testing.forms`, the builders that need no
Hypothesis (batches, ``PyDataset``, array-likes, Arrow tables, Parquet files) in
:mod:`fitpipe.testing.fixtures` and the strategies of plain arrays (row counts, batch sizes,
features, targets, weights, split keys, Parquet layouts) in
:mod:`fitpipe.testing.array_strategies`, optimizer settings in
:mod:`fitpipe.testing.optimizer_strategies`; all are re-exported here, so every name above
imports from this module.

This module needs ``hypothesis`` (the ``test`` extra: ``pip install fitpipe[test]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fitpipe.testing.array_strategies import (
    NARROW_DTYPES,
    NUMERIC_DTYPES,
    PASSTHROUGH_TYPE_NAMES,
    batch_sizes,
    class_labels,
    float_arrays,
    int_arrays,
    narrow_number_dtypes,
    numeric_dtypes,
    numpy_text,
    parquet_layouts,
    passthrough_arrays,
    row_counts,
    sample_weights,
    sparse_entries,
    split_keys,
    targets,
)
from fitpipe.testing.fixtures import (
    ARRAY_LIKE_KINDS,
    PARQUET_ROW_GROUP_SIZE,
    ArrayLike,
    ArrayPyDataset,
    arrow_table,
    as_array_like,
    columnar_schema,
    iterate_batches,
    weight_of_rows,
    write_parquet,
)
from fitpipe.testing.forms import (
    FORM_FACTORIES,
    Form,
    FormFactory,
    equivalent_forms,
    form_names,
    register_form,
)
from fitpipe.testing.optimizer_strategies import (
    OPTIMIZER_NAMES,
    OptimizerSetting,
    optimizer_settings,
)

__all__ = [
    "ARRAY_LIKE_KINDS",
    "FORM_FACTORIES",
    "NARROW_DTYPES",
    "NUMERIC_DTYPES",
    "OPTIMIZER_NAMES",
    "PARQUET_ROW_GROUP_SIZE",
    "PASSTHROUGH_TYPE_NAMES",
    "ArrayLike",
    "ArrayPyDataset",
    "BadBatch",
    "Example",
    "Form",
    "FormFactory",
    "OptimizerSetting",
    "array_likes",
    "arrow_table",
    "as_array_like",
    "bad_batches",
    "batch_sizes",
    "call_timings",
    "class_labels",
    "columnar_schema",
    "conformance_examples",
    "equivalent_forms",
    "examples",
    "float_arrays",
    "form_names",
    "in_place_edits",
    "int_arrays",
    "iterate_batches",
    "narrow_number_dtypes",
    "nested_structures",
    "non_finite",
    "numeric_dtypes",
    "numpy_text",
    "optimizer_settings",
    "parquet_layouts",
    "passthrough_arrays",
    "presented_examples",
    "register_form",
    "row_counts",
    "sample_weights",
    "sparse_entries",
    "split_keys",
    "structured_examples",
    "targets",
    "weight_of_rows",
    "write_parquet",
]


def call_timings(max_calls: int = 40) -> st.SearchStrategy[list[tuple[float, bool]]]:
    """Timings of compiled calls as a tuner sees them: ``(seconds, traced)`` per call.

    Calls that traced take any time (tracing and compiling take from milliseconds to
    seconds); the others a time from 10 us to 1 s, sometimes repeated exactly (a stable
    machine), sometimes not (a loaded one).

    Args:
        max_calls: The most calls.

    Returns:
        A strategy of lists of ``(seconds, traced)``.

    """
    seconds = st.floats(1e-5, 1.0, allow_nan=False, allow_infinity=False)
    call = st.one_of(
        st.tuples(seconds, st.just(False)),
        st.tuples(st.floats(0.0, 30.0, allow_nan=False), st.just(True)),
    )
    repeated = st.tuples(seconds, st.just(False)).map(lambda c: [c, c])
    return st.lists(st.one_of(call.map(lambda c: [c]), repeated), max_size=max_calls).map(
        lambda groups: [c for group in groups for c in group]
    )


def non_finite() -> st.SearchStrategy[float]:
    """NaN, infinity or minus infinity: the values the data checks look for."""
    return st.sampled_from([float("nan"), float("inf"), float("-inf")])


@dataclasses.dataclass(frozen=True)
class BadBatch:
    """Where a non-finite value sits in a stream of batches.

    Attributes:
        batch: The index of the first bad batch.
        part: 0 for the features, 1 for the targets.
        row: The row of the batch that holds it.
        value: NaN, infinity or minus infinity.
        again: The index of a later bad batch, or None.
    """

    batch: int
    part: int
    row: int
    value: float
    again: int | None


@st.composite
def bad_batches(draw: st.DrawFn, num_batches: int, rows: int) -> BadBatch:
    """A non-finite value placed in one batch (sometimes a later one too).

    Args:
        draw: Hypothesis' draw function.
        num_batches: The batches in the stream.
        rows: The rows of each batch.

    Returns:
        Where the value goes.
    """
    batch = draw(st.integers(0, num_batches - 1))
    later = st.none() | st.integers(batch + 1, num_batches - 1) if batch + 1 < num_batches else None
    return BadBatch(
        batch=batch,
        part=draw(st.integers(0, 1)),
        row=draw(st.integers(0, rows - 1)),
        value=draw(non_finite()),
        again=draw(later) if later is not None else None,
    )


@st.composite
def in_place_edits(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...], Any]:
    """A numeric array, a position in it and a value whose bits differ from the one there.

    Returns:
        ``(array, index, value)``; the array has at least one row and is row-major or
        column-major (as a pandas frame's values are).
    """
    dtype = draw(st.sampled_from(["float32", "float64", "float16", "int8", "int32", "int64"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    array = draw(hnp.arrays(dtype, shape))
    if draw(st.booleans()):
        array = np.asfortranarray(array)
    index = tuple(draw(st.integers(0, side - 1)) for side in shape)
    value = draw(hnp.from_dtype(np.dtype(dtype)))
    old = np.array(array[index], dtype=dtype)
    new = np.array(value, dtype=dtype)
    if old.tobytes() == new.tobytes():  # the same bits: no edit at all
        value = np.frombuffer(bytes(b ^ 1 for b in old.tobytes()), dtype=dtype)[0]
    return array, index, value


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


def edge_examples(
    max_batch_size: int = 8,
    targets_given: bool | None = None,
    feature_dtypes: tuple[str, ...] = ("float32",),
) -> list[Example]:
    """Examples at the edges a random draw may miss, run first by the conformance kit.

    One row with a batch divisible by 2 and 3 (so a sharded source leaves shards empty and
    a batch is never full) and one row more than a batch (a last batch of one row), each
    with two features (of ``feature_dtypes[0]``, and of its second for more rows: a narrowing
    of it shows every run), with targets and weights unless ``targets_given`` is False.

    Args:
        max_batch_size: Largest batch size.
        targets_given: True: ``y`` given; False: left out; None: both kinds.
        feature_dtypes: The dtypes of the features.

    Returns:
        The :class:`Example` list.
    """
    size = 6 if max_batch_size >= 6 else max(1, max_batch_size)
    out = []
    for index, rows in enumerate((1, size + 1)):
        dtype = feature_dtypes[index % len(feature_dtypes)]
        x = np.arange(rows * 2, dtype=dtype).reshape(rows, 2)
        y = np.arange(rows, dtype=np.int64) % 2
        if targets_given is not False:
            out.append(Example(x, y, weight_of_rows(x), size))
        if targets_given is not True:
            out.append(Example(x, None, None, size))
    return out


@st.composite
def conformance_examples(
    draw: st.DrawFn,
    max_rows: int = 24,
    max_batch_size: int = 8,
    targets_given: bool | None = None,
    feature_dtypes: tuple[str, ...] = ("float32",),
) -> Example:
    """Data for :class:`fitpipe.testing.AdapterConformanceTests`.

    ``x`` is ``(rows, 1..4)`` of one of ``feature_dtypes`` (integer features hold small
    values); ``y`` is drawn as int64 class labels or float32
    values, or left out (inference data) unless ``targets_given``; weights, when drawn, are
    :func:`weight_of_rows` of ``x`` so they identify their row after shuffling.

    Args:
        draw: Supplied by Hypothesis.
        max_rows: Most rows.
        max_batch_size: Largest batch size.
        targets_given: True: always draw ``y``; False: never; None: either.
        feature_dtypes: The NumPy dtypes ``x`` is drawn as (float and integer kinds).

    Returns:
        An :class:`Example` (``y`` and ``sample_weight`` may be None).

    """
    weights = draw(st.sampled_from(["none", "of_rows"]))
    example = draw(examples(max_rows, max_batch_size, weights))
    dtype = np.dtype(draw(st.sampled_from(feature_dtypes)))
    if dtype != example.x.dtype:
        x = draw(int_arrays(example.rows)) if dtype.kind in "iu" else example.x
        weight = None if example.sample_weight is None else weight_of_rows(x.astype(dtype))
        example = dataclasses.replace(example, x=x.astype(dtype), sample_weight=weight)
    keep = draw(st.booleans()) if targets_given is None else targets_given
    if keep:
        return example
    return dataclasses.replace(example, y=None, sample_weight=None)
