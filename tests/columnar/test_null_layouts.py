"""A null is found, or filled, in every layout Arrow can hold it in.

A null may sit in a column's validity bitmap, in a dictionary's indices or in the
dictionary itself (``dictionary_encode(null_encoding="encode")``), in a run of a run-end
encoded column, in a list's values, or at any level of a nested ``fixed_size_list``.
Dictionary columns were checked by their indices' nulls only (nulls in the dictionary were
fed as NaN, or failed inside TensorFlow), and nested fixed-size lists were flattened past
a null inner list (a raw NumPy reshape error). The property: whatever the layout, the column
gives the null error naming the first row that holds a null, or, with a fill, the values of
the same rows with each null replaced (a null fixed-size list by ``fill`` repeated to its
shape, a null variable-length list by an empty one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import column_array
from fitpipe.errors import SchemaError

CTX = ("the table", 0, "fit")
KINDS = {"float": (pa.float64(), -1.5), "int": (pa.int64(), 7), "string": (pa.string(), "z")}
LAYOUTS = [
    "plain",
    "dictionary",
    "dictionary of nulls",
    "run ends",
    "chunks",
    "fixed",
    "nested fixed",
    "list",
    "list of dictionary of nulls",
    "fixed of dictionary of nulls",
]


def _value(kind: str, i: int) -> Any:
    return {"float": i + 0.5, "int": i, "string": f"s{i % 3}"}[kind]


@st.composite
def _flat(draw: Any, kind: str, size: int) -> pa.Array:
    """``size`` values of ``kind`` (repeats, so dictionaries share entries), some null."""
    nulls = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    values = [None if null else _value(kind, i % 4) for i, null in enumerate(nulls)]
    return pa.array(values, KINDS[kind][0])


def _mask(draw: Any, size: int) -> pa.Array | None:
    nulls = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    return pa.array(nulls) if any(nulls) else None


def _encoded(values: pa.Array) -> pa.Array:
    return pc.dictionary_encode(values, null_encoding="encode")


@st.composite
def null_columns(draw: Any) -> tuple[str, str, Any]:
    """``(kind, layout, column)``: a column holding nulls (or none) in one of :data:`LAYOUTS`."""
    kind = draw(st.sampled_from(list(KINDS)))
    layout = draw(st.sampled_from(LAYOUTS))
    rows = draw(st.integers(1, 8))
    if layout in ("fixed", "fixed of dictionary of nulls"):
        values = draw(_flat(kind, rows * 2))
        values = _encoded(values) if "dictionary" in layout else values
        column = pa.FixedSizeListArray.from_arrays(values, 2, mask=_mask(draw, rows))
    elif layout == "nested fixed":
        inner = pa.FixedSizeListArray.from_arrays(
            draw(_flat(kind, rows * 4)), 2, mask=_mask(draw, rows * 2)
        )
        column = pa.FixedSizeListArray.from_arrays(inner, 2, mask=_mask(draw, rows))
    elif layout.startswith("list"):
        lengths = draw(st.lists(st.integers(0, 3), min_size=rows, max_size=rows))
        values = draw(_flat(kind, sum(lengths)))
        values = _encoded(values) if "dictionary" in layout else values
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
        column = pa.ListArray.from_arrays(offsets, values, mask=_mask(draw, rows))
    else:
        values = draw(_flat(kind, rows))
        column = {
            "plain": lambda: values,
            "dictionary": lambda: values.dictionary_encode(),
            "dictionary of nulls": lambda: _encoded(values),
            "run ends": lambda: pc.run_end_encode(values),
            "chunks": lambda: pa.chunked_array([values[: rows // 2], values[rows // 2 :]]),
        }[layout]()
    start = draw(st.integers(0, rows - 1))
    return kind, layout, column.slice(start, draw(st.integers(1, rows - start)))


def _has_null(value: Any) -> bool:
    return value is None or (isinstance(value, list) and any(_has_null(v) for v in value))


def _filled(value: Any, fill: Any, shape: Any) -> Any:
    """``value`` with its nulls replaced, as fitpipe fills them.

    ``shape``: None for a scalar, ``"list"`` for a variable-length list (a null one is
    empty), a tuple of dimensions for a fixed-size list (a null one is ``fill`` repeated).
    """
    if value is None:
        if shape is None:
            return fill
        return [] if shape == "list" else np.full(shape, fill, dtype=object).tolist()
    if isinstance(value, list):
        inner = None if shape == "list" else (shape[1:] or None)
        return [_filled(v, fill, inner) for v in value]
    return value


def _shape(layout: str) -> Any:
    """The shape of a row of ``layout`` (see :func:`_filled`)."""
    if layout.startswith("list"):
        return "list"
    return {"fixed": (2,), "nested fixed": (2, 2), "fixed of dictionary of nulls": (2,)}.get(layout)


def _as_lists(converted: Any) -> list[Any]:
    listed = converted.to_list() if hasattr(converted, "to_list") else converted.tolist()
    return _decoded(listed)


def _decoded(value: Any) -> Any:
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def _innermost(converted: Any) -> np.dtype:
    flat = converted.flat_values if hasattr(converted, "flat_values") else converted
    return np.asarray(flat).dtype


@given(case=null_columns(), fill_it=st.booleans())
@settings(max_examples=150, deadline=None)
@example(case=("float", "dictionary of nulls", _encoded(pa.array([1.5, None]))), fill_it=False)
def test_a_null_in_any_layout_is_reported_or_filled(case: tuple[str, str, Any], fill_it: bool):
    kind, layout, column = case
    rows = column.to_pylist()
    fill = KINDS[kind][1]
    schema = fitpipe.Schema("c", fill={"c": fill} if fill_it else None)
    holding = [i for i, row in enumerate(rows) if _has_null(row)]
    if holding and not fill_it:
        # a row holding a null (a list's null row is seen before nulls inside other rows)
        with pytest.raises(SchemaError, match=r"found a null in column 'c' at row (\d+) of") as e:
            column_array(column, "c", schema, CTX)
        assert int(e.value.args[0].split(" at row ")[1].split()[0]) in holding
        return
    converted = column_array(column, "c", schema, CTX)
    assert _as_lists(converted) == [_filled(row, fill, _shape(layout)) for row in rows]
    if kind == "int":
        assert _innermost(converted).kind == "i"  # not float64 with NaN


@pytest.mark.parametrize(
    ("values", "fill", "expected"),
    [
        ([1.5, None], -1.0, [1.5, -1.0]),
        ([3, None], 0, [3, 0]),
        (["x", None], "z", [b"x", b"z"]),
    ],
    ids=["float", "int", "string"],
)
def test_nulls_in_a_dictionary_are_reported_and_filled_through_adapt(values, fill, expected):
    table = pa.table({"a": _encoded(pa.array(values * 2)), "y": [0.0] * 4})
    with pytest.raises(SchemaError, match=r"found a null in column 'a' at row 1 of Table"):
        fitpipe.adapt(table, schema=fitpipe.Schema("a", "y"), batch_size=4)
    schema = fitpipe.Schema("a", "y", fill={"a": fill})
    with fitpipe.adapt(table, schema=schema, batch_size=4) as pipeline:
        x = next(iter(pipeline.dataset))[0].numpy()
    assert x.tolist() == expected * 2


def test_a_null_inner_fixed_list_is_reported_and_filled():
    inner = pa.FixedSizeListArray.from_arrays(
        pa.array(np.arange(8.0)), 2, mask=pa.array([False, True, False, False])
    )
    column = pa.FixedSizeListArray.from_arrays(inner, 2)
    with pytest.raises(SchemaError, match=r"found a null in column 'a' at row 0 of"):
        column_array(column, "a", fitpipe.Schema("a"), CTX)
    filled = column_array(column, "a", fitpipe.Schema("a", fill={"a": -1.0}), CTX)
    assert filled.tolist() == [[[0.0, 1.0], [-1.0, -1.0]], [[4.0, 5.0], [6.0, 7.0]]]
