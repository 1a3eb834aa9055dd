"""Hypothesis strategies of small arrays: row counts, batch sizes, features, targets, weights.

:func:`row_counts`, :func:`batch_sizes`, :func:`float_arrays`, :func:`int_arrays`,
:func:`targets`, :func:`class_labels`, :func:`sample_weights`, :func:`split_keys` and
:func:`sparse_entries` draw arrays sharing a given row count; :func:`parquet_layouts` draws
files and row groups of a Parquet folder; :func:`passthrough_arrays`, Arrow columns of the
types a passthrough column (an id) may have. The strategies built on them (examples,
structures, input forms) are in :mod:`fitpipe.testing.strategies`, which re-exports every
name here.

This module needs ``hypothesis`` (the ``test`` extra: ``pip install fitpipe[test]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np
import pyarrow as pa
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "NARROW_DTYPES",
    "NUMERIC_DTYPES",
    "PASSTHROUGH_TYPE_NAMES",
    "batch_sizes",
    "class_labels",
    "float_arrays",
    "int_arrays",
    "narrow_number_dtypes",
    "numeric_dtypes",
    "numpy_text",
    "parquet_layouts",
    "passthrough_arrays",
    "row_counts",
    "sample_weights",
    "sparse_entries",
    "split_keys",
    "targets",
]


def numpy_text(min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[str]:
    """Text a NumPy ``str`` array holds as it is: without NUL characters.

    NumPy drops trailing NULs from a ``str`` array's elements (``"a"`` followed by a NUL is
    stored as ``"a"``): distinct keys would collide, and ``hypothesis.extra.numpy`` refuses
    such text for a ``str`` dtype.

    Args:
        min_size: The fewest characters.
        max_size: The most characters.

    Returns:
        A strategy of strings.
    """
    characters = st.characters(codec="utf-8", exclude_characters="\x00")  # as st.text()
    return st.text(characters, min_size=min_size, max_size=max_size)


#: Float elements that survive float32 and comparisons exactly (no NaN, no infinities).
_FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


#: Every dtype of numbers a feature or label can have: NumPy's booleans, integers and floats,
#: and the ``ml_dtypes`` float TensorFlow batches and computes with (bfloat16).
_NUMPY_NUMBERS = ("bool", *(f"{s}int{b}" for b in (8, 16, 32, 64) for s in ("", "u")))
NUMERIC_DTYPES: tuple[np.dtype, ...] = (
    *(np.dtype(name) for name in (*_NUMPY_NUMBERS, "float16", "float32", "float64")),
    np.dtype(ml_dtypes.bfloat16),
)


def numeric_dtypes(kinds: str = "biuf") -> st.SearchStrategy[np.dtype]:
    """One of :data:`NUMERIC_DTYPES` whose kind is in ``kinds`` (``ml_dtypes`` floats: ``f``)."""

    def kind(dtype: np.dtype) -> str:
        return "f" if dtype.kind == "V" else dtype.kind

    return st.sampled_from([d for d in NUMERIC_DTYPES if kind(d) in kinds])


#: The ``ml_dtypes`` numbers TensorFlow holds in tensors but cannot batch and cast to floats
#: (no ``Switch`` kernel, no cast): refused in every input form.
NARROW_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(getattr(ml_dtypes, name))
    for name in (
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e4m3b11fnuz",
        "float8_e5m2fnuz",
        "int4",
        "uint4",
    )
)


def narrow_number_dtypes() -> st.SearchStrategy[np.dtype]:
    """One of :data:`NARROW_DTYPES`: float8 and int4 numbers, which no input may hold."""
    return st.sampled_from(NARROW_DTYPES)


def row_counts(min_rows: int = 1, max_rows: int = 24) -> st.SearchStrategy[int]:
    """Numbers of rows (samples) for generated arrays.

    Args:
        min_rows: Fewest rows.
        max_rows: Most rows.

    Returns:
        A strategy of ints.

    """
    return st.integers(min_rows, max_rows)


def parquet_layouts(
    max_files: int = 6, max_groups: int = 4, max_rows: int = 3, min_rows: int = 1
) -> st.SearchStrategy[list[list[int]]]:
    """Layouts of a Parquet folder: for each file, the rows of each of its row groups.

    A file may have no row group (written with its schema only).

    Args:
        max_files: Most files (at least one).
        max_groups: Most row groups per file.
        max_rows: Most rows per row group (at least one).
        min_rows: Fewest rows per row group: 0 draws row groups of no rows too (what
            pyarrow writes for an empty table: an empty part file is one such group).

    Returns:
        A strategy of lists (files) of lists (row groups) of row counts.

    """
    groups = st.lists(st.integers(min_rows, max_rows), max_size=max_groups)
    return st.lists(groups, min_size=1, max_size=max_files)


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


@st.composite
def split_keys(
    draw: st.DrawFn, rows: int, max_keys: int | None = None, kind: str | None = None
) -> np.ndarray:
    """One key per row, as ``split_by`` takes them: rows of a key need not be adjacent.

    Args:
        draw: Supplied by Hypothesis.
        rows: Rows (keys drawn).
        max_keys: Most distinct keys (default: ``rows``).
        kind: ``"int"`` (int64, negative ones too), ``"str"`` (text, non-ASCII too) or
            None for either.

    Returns:
        An int64 or str array of ``rows`` keys.
    """
    kind = kind or draw(st.sampled_from(["int", "str"]))
    count = draw(st.integers(1, max(1, min(rows, max_keys or rows))))
    if kind == "int":
        element: st.SearchStrategy[Any] = st.integers(-(2**63), 2**63 - 1)
    else:
        element = numpy_text(max_size=12)
    distinct = draw(st.lists(element, min_size=count, max_size=count, unique=True))
    picks = draw(st.lists(st.integers(0, count - 1), min_size=rows, max_size=rows))
    values = [distinct[i] for i in picks]
    return np.array(values, dtype=np.int64) if kind == "int" else np.array(values, dtype=str)


def class_labels(rows: int, num_classes: int = 5) -> st.SearchStrategy[np.ndarray]:
    """int64 class labels of shape ``(rows,)`` from ``[0, num_classes)`` (classification only).

    Args:
        rows: The first dimension.
        num_classes: The number of classes.

    Returns:
        A strategy of arrays.
    """
    return hnp.arrays(np.int64, (rows,), elements=st.integers(0, num_classes - 1))


def sample_weights(rows: int) -> st.SearchStrategy[np.ndarray]:
    """Positive float32 per-sample weights of shape ``(rows,)``.

    Args:
        rows: The first dimension.

    Returns:
        A strategy of arrays.

    """
    return hnp.arrays(np.float32, (rows,), elements=st.floats(0.0, 10.0, allow_nan=False, width=32))


@st.composite
def sparse_entries(
    draw: st.DrawFn, rows: int, max_width: int = 5, max_rank: int = 3
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The entries of a sparse tensor of ``rows`` rows, in any order (as ``tf.SparseTensor``).

    Rows may have no entry, and so may the whole tensor; no position is given twice.

    Args:
        draw: Hypothesis' draw function.
        rows: The first dimension.
        max_width: The largest size of each further dimension (at least 1).
        max_rank: The largest rank (at least 2).

    Returns:
        ``(indices, values, dense_shape)``: int64 ``[entries, rank]``, float32 ``[entries]``
        and the shape.
    """
    rank = draw(st.integers(2, max_rank))
    shape = (rows, *draw(st.lists(st.integers(1, max_width), min_size=rank - 1, max_size=rank - 1)))
    present = draw(hnp.arrays(np.bool_, shape))
    indices = np.argwhere(present).astype(np.int64).reshape(-1, rank)
    order = draw(st.permutations(range(len(indices))))
    values = draw(hnp.arrays(np.float32, len(indices), elements=_FLOATS))
    return indices[list(order)], values, shape


_INT64 = st.integers(-(2**63), 2**63 - 1)
_FLOAT64 = st.floats(allow_nan=False, width=64)
#: Types a passthrough column may have: the name shown, the type and its values.
_PASSTHROUGH_TYPES: tuple[tuple[str, pa.DataType, st.SearchStrategy[Any]], ...] = (
    ("int32", pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    ("int64", pa.int64(), _INT64),
    ("uint64", pa.uint64(), st.integers(0, 2**64 - 1)),
    ("float32", pa.float32(), st.floats(allow_nan=False, width=32)),
    ("float64", pa.float64(), _FLOAT64),
    ("bool", pa.bool_(), st.booleans()),
    ("string", pa.string(), st.text(max_size=4)),
    ("large_string", pa.large_string(), st.text(max_size=4)),
    ("null", pa.null(), st.none()),
    ("list<int64>", pa.list_(pa.int64()), st.lists(_INT64, max_size=3)),
    ("list<float64>", pa.list_(pa.float64()), st.lists(_FLOAT64, max_size=3)),
    ("struct<u: int64>", pa.struct([("u", pa.int64())]), st.fixed_dictionaries({"u": _INT64})),
    (
        "struct<u: float64>",
        pa.struct([("u", pa.float64())]),
        st.fixed_dictionaries({"u": _FLOAT64}),
    ),
    (
        "struct<u: int64, v: string>",
        pa.struct([("u", pa.int64()), ("v", pa.string())]),
        st.fixed_dictionaries({"u": _INT64, "v": st.text(max_size=4)}),
    ),
    ("date32", pa.date32(), st.dates()),
    ("timestamp[ms]", pa.timestamp("ms"), st.datetimes().map(lambda t: t.replace(microsecond=0))),
    ("dictionary<string>", pa.dictionary(pa.int32(), pa.string()), st.text(max_size=4)),
    (
        "dictionary<string, ordered>",
        pa.dictionary(pa.int8(), pa.string(), ordered=True),
        st.text(max_size=4),
    ),
    (
        "dictionary<int64, ordered>",
        pa.dictionary(pa.int16(), pa.int64(), ordered=True),
        _INT64,
    ),
    ("dictionary<string_view>", pa.dictionary(pa.int32(), pa.string_view()), st.text(max_size=4)),
    (  # a Polars Enum, as Polars hands it over
        "dictionary<string_view, ordered>",
        pa.dictionary(pa.uint8(), pa.string_view(), ordered=True),
        st.text(max_size=4),
    ),
)


#: The names of the types :func:`passthrough_arrays` draws from, for picking some.
PASSTHROUGH_TYPE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _PASSTHROUGH_TYPES)


def _arrow_column(items: list[Any], kind: pa.DataType) -> pa.Array:
    """``items`` as an Arrow array of type ``kind``.

    pyarrow builds no dictionary of view values from Python values (pyarrow 26): such a
    column is encoded from plain strings, its dictionary then cast to the view type.
    """
    if not pa.types.is_dictionary(kind):
        return pa.array(items, kind)
    values = kind.value_type
    plain = pa.string() if pa.types.is_string_view(values) else values
    encoded = pa.array(items, plain).dictionary_encode()
    return pa.DictionaryArray.from_arrays(
        encoded.indices.cast(kind.index_type),
        encoded.dictionary.cast(values),
        ordered=kind.ordered,
    )


@st.composite
def passthrough_arrays(
    draw: st.DrawFn, rows: int, types: Sequence[str] | None = None
) -> tuple[str, pa.Array]:
    """An Arrow column of ``rows`` values of a type a passthrough column (an id) may have.

    Integers of 32 and 64 bits (signed and not), floats, bools, strings (and large ones),
    nulls only, lists of integers or floats, structs, dates, timestamps, and dictionaries
    (ordered or not) of strings, string views (a Polars Enum) and integers; any value may
    be null. Two draws give the column of two files, whose types may differ (Parquet holds
    no dictionary of string views: such a column is one of an in-memory table).

    Args:
        draw: Hypothesis' draw function.
        rows: The column's length.
        types: The names (of :data:`PASSTHROUGH_TYPE_NAMES`) of the types to draw from;
            None: every type.

    Returns:
        ``(type name, array)``.
    """
    kinds = [t for t in _PASSTHROUGH_TYPES if types is None or t[0] in types]
    name, kind, values = draw(st.sampled_from(kinds))
    items = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
    return name, _arrow_column(items, kind)
