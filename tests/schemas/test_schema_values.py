"""Every schema the constructor accepts is saved and read back to an equal schema.

``Schema`` took bytes, Decimal and complex fills that ``to_json`` could not write, a NaN fill
read back unequal (NaN != NaN), ``passthrough=[1]`` became ``'1'``, ``Schema("")`` was
accepted, and ``from_dict`` of a hand-written dict (no ``features``, ``passthrough: None``)
raised Python's own TypeErrors. These tests hold the class: whatever is drawn, the
constructor and ``from_dict`` either refuse it with a fitpipe error or give a schema that
round-trips through ``to_json``/``from_json`` and ``to_dict``/``from_dict`` to an equal
schema with an equal hash; and the fills it keeps fill their columns.
"""

from __future__ import annotations

import decimal
import fractions
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import column_array
from fitpipe.errors import FitpipeError, SchemaError

NAMES = st.one_of(st.text(max_size=4), st.integers(0, 3), st.none())
VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.text(max_size=4),
    st.binary(max_size=4),
    st.decimals(allow_nan=False),
    st.complex_numbers(max_magnitude=5),
    st.fractions(max_denominator=5),
    st.sampled_from([np.float32(1.5), np.int64(-3), np.bool_(True), np.float64("nan")]),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
ACCEPTED_FILLS = (bool, int, float, str, bytes, np.generic)


def _round_trips(schema: fitpipe.Schema) -> None:
    for again in (
        fitpipe.Schema.from_json(schema.to_json()),
        fitpipe.Schema.from_dict(schema.to_dict()),
        fitpipe.Schema.from_dict(json.loads(json.dumps(schema.to_dict()))),
    ):
        assert again == schema
        assert hash(again) == hash(schema)
        assert again.to_json() == schema.to_json()


@settings(max_examples=300, deadline=None)
@given(
    passthrough=st.lists(NAMES, max_size=3),
    fill=st.dictionaries(NAMES, VALUES, max_size=3),
    lengths=st.dictionaries(NAMES, st.integers(-1, 9), max_size=2),
    weight=NAMES,
)
def test_an_accepted_schema_round_trips_to_an_equal_one(
    passthrough: list[Any], fill: dict[Any, Any], lengths: dict[Any, Any], weight: Any
) -> None:
    try:
        schema = fitpipe.Schema("a", "y", weight, passthrough, fill, lengths)
    except FitpipeError:
        return
    names = [*passthrough, *fill, *lengths, *([weight] if weight is not None else [])]
    assert all(isinstance(n, str) and n for n in names)
    assert all(isinstance(v, ACCEPTED_FILLS) for v in fill.values())
    _round_trips(schema)


@pytest.mark.parametrize(
    "fill", [b"?", b"\xff\x00", float("nan"), float("-inf"), 2**80, "", True, np.float32(0.5)]
)
def test_every_kind_of_fill_round_trips(fill: Any) -> None:
    _round_trips(fitpipe.Schema("a", fill={"a": fill}))


@pytest.mark.parametrize("fill", [decimal.Decimal("0.5"), 1 + 2j, fractions.Fraction(1, 3)])
def test_fills_json_cannot_hold_are_refused(fill: Any) -> None:
    with pytest.raises(TypeError, match="not a bool, int, float, str or bytes") as info:
        fitpipe.Schema("a", fill={"a": fill})
    assert isinstance(info.value, FitpipeError)


def test_nan_fills_are_equal_and_hash_equal() -> None:
    one = fitpipe.Schema("a", fill={"a": float("nan")})
    two = fitpipe.Schema("a", fill={"a": np.float64("nan")})
    assert one == two and hash(one) == hash(two)
    assert one != fitpipe.Schema("a", fill={"a": 0.0})


KEYS = st.sampled_from(["features", "targets", "sample_weight", "passthrough", "fill", "lengths"])
LOOSE = st.recursive(
    st.one_of(st.none(), st.integers(-1, 3), st.text(max_size=2), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, LOOSE, max_size=6))
def test_from_dict_gives_a_schema_or_a_fitpipe_error(data: dict[str, Any]) -> None:
    try:
        schema = fitpipe.Schema.from_dict(data)
    except FitpipeError:
        return
    _round_trips(schema)


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        ({"targets": "y"}, TypeError, "needs `features`"),
        ({"features": ""}, SchemaError, "empty column name for features"),
        ({"features": "a", "passthrough": [1]}, TypeError, "passthrough that is not a str"),
        ({"features": "a", "passthrough": [""]}, SchemaError, "empty column name"),
        ({"features": "a", "fill": [1]}, TypeError, "`fill` that is not a dict"),
        ({"features": "a", "fill": {1: 0}}, TypeError, "fill key that is not a str"),
        ({"features": "a", "fill": {"a": {"bytes": "!"}}}, SchemaError, "invalid bytes fill"),
        (["features"], TypeError, "not a dict"),
    ],
)
def test_invalid_dicts_are_fitpipe_errors(data: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words) as info:
        fitpipe.Schema.from_dict(data)
    assert isinstance(info.value, FitpipeError)


def test_none_is_a_key_left_out() -> None:
    given = {"features": "a", "targets": None, "passthrough": None, "fill": None}
    assert fitpipe.Schema.from_dict(given) == fitpipe.Schema("a")


CTX = ("the table", 0, "fit")


def test_a_saved_bytes_fill_fills_a_binary_column() -> None:
    schema = fitpipe.Schema.from_json(fitpipe.Schema("b", fill={"b": b"\xff?"}).to_json())
    filled = column_array(pa.array([None, b"x"], pa.binary()), "b", schema, CTX)
    assert filled.tolist() == [b"\xff?", b"x"]


@pytest.mark.parametrize("fill", [0.5, "0.5", 1])
def test_a_decimal_column_takes_a_float_str_or_int_fill(fill: Any) -> None:
    column = pa.array([None, decimal.Decimal("1.25")], pa.decimal128(9, 2))
    filled = column_array(column, "d", fitpipe.Schema("d", fill={"d": fill}), CTX)
    assert filled.tolist() == [float(fill), 1.25]
    assert not math.isnan(filled[0])
