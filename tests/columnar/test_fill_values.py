"""A declared fill reaches the model as the value declared, or is refused before any step.

Fill values are in converted units: numbers as they are, temporal columns' in microseconds
(days for dates). An int fill was checked to be exact; a float fill of a temporal column was
read in the column's own unit and truncated, and a float fill beyond a float type's range
became an infinity. The property, for every column type: a fill that is a value of the
column's type (a whole count of a temporal column's unit and of microseconds, within a float
type's range, an int exactly) comes back as itself (a float fill of a float column rounded
to its precision); any other is refused with the error naming the column and the fill.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import SchemaError

INTS = [pa.int8(), pa.int32(), pa.int64(), pa.uint8(), pa.uint64()]
FLOATS = [pa.float16(), pa.float32(), pa.float64()]
#: Temporal types and the count of converted units (us; days for dates) in one of theirs.
TEMPORAL = {
    pa.timestamp("s"): Fraction(10**6),
    pa.timestamp("ms", "UTC"): Fraction(10**3),
    pa.timestamp("us"): Fraction(1),
    pa.timestamp("ns"): Fraction(1, 1000),
    pa.duration("ms"): Fraction(10**3),
    pa.duration("ns"): Fraction(1, 1000),
    pa.date32(): Fraction(1),
    pa.date64(): Fraction(1, 86_400_000),
}
#: Storage range of each temporal type's counts.
STORAGE = {pa.date32(): 2**31}

FILLS = st.one_of(
    st.integers(-(2**62), 2**62),
    st.integers(-(10**7), 10**7),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e7, 1e7).map(lambda f: round(f, 3)),
    st.sampled_from([70000.0, 65504.0, 1e40, 3.4e38, 1.5, 2500.0, 1.6e15, 2.7]),
)


def _filled(arrow_type: pa.DataType, fill: Any) -> Any:
    """The value fitpipe gives a null of ``arrow_type`` filled with ``fill``."""
    table = pa.table({"c": pa.array([None, None], arrow_type), "y": [0.0, 0.0]})
    schema = fitpipe.Schema("c", "y", fill={"c": fill})
    with fitpipe.adapt(table, schema=schema, batch_size=2) as pipeline:
        return next(iter(pipeline.dataset))[0].numpy()[0]


def _int_ok(arrow_type: pa.DataType, fill: Any) -> bool:
    info = np.iinfo(arrow_type.to_pandas_dtype())
    return float(fill).is_integer() and info.min <= fill <= info.max


def _as_float(arrow_type: pa.DataType, fill: Any) -> Any:
    with np.errstate(over="ignore"):
        return np.dtype(arrow_type.to_pandas_dtype()).type(fill)


def _float_ok(arrow_type: pa.DataType, fill: Any) -> bool:
    """Finite, and exact for an int fill (a float fill is rounded)."""
    value = _as_float(arrow_type, fill)
    if not np.isfinite(value):
        return False
    return not isinstance(fill, int) or Fraction(float(value)) == fill


def _temporal_ok(arrow_type: pa.DataType, fill: Any) -> bool:
    """A whole number of microseconds (days) that is a whole count of the type's unit."""
    if not float(fill).is_integer():
        return False
    count = Fraction(int(fill)) / TEMPORAL[arrow_type]
    return count.denominator == 1 and abs(count) < STORAGE.get(arrow_type, 2**63)


TYPES = st.sampled_from([*INTS, *FLOATS, *TEMPORAL])


@given(arrow_type=TYPES, fill=FILLS)
@settings(max_examples=120, deadline=None)
@example(arrow_type=pa.float32(), fill=1e40)
def test_a_fill_comes_back_as_itself_or_is_refused(arrow_type: pa.DataType, fill: Any) -> None:
    if arrow_type in TEMPORAL:
        ok = _temporal_ok(arrow_type, fill)
    elif arrow_type in FLOATS:
        ok = _float_ok(arrow_type, fill)
    else:
        ok = _int_ok(arrow_type, fill)
    if not ok:
        with pytest.raises(SchemaError, match=r"cannot fill the nulls of column 'c' of type"):
            _filled(arrow_type, fill)
        return
    got = _filled(arrow_type, fill)
    if arrow_type in FLOATS:
        assert got == _as_float(arrow_type, fill)
        assert math.isfinite(got)
    elif arrow_type in TEMPORAL:
        assert int(got) == fill
    else:
        assert got == fill


@pytest.mark.parametrize(
    ("arrow_type", "fill", "expected"),
    [
        (pa.timestamp("s"), 1.6e15, 1_600_000_000_000_000),
        (pa.timestamp("ns"), 1.6e15, 1_600_000_000_000_000),
        (pa.date32(), 3.0, 3),
        (pa.float32(), 2**25, 2.0**25),  # an int fill exact in the float type
    ],
)
def test_a_whole_fill_comes_back_in_converted_units(arrow_type, fill, expected):
    assert _filled(arrow_type, fill) == expected


@pytest.mark.parametrize(
    ("arrow_type", "fill"),
    [
        (pa.timestamp("s"), 1.5),
        (pa.timestamp("ns"), 1.5),  # 1,500 ns, but the column becomes whole microseconds
        (pa.float16(), 2049),  # rounded to 2048
        (pa.duration("ms"), 2500.0),
        (pa.date32(), 2.7),
        (pa.float16(), 70000.0),
        (pa.float32(), 1e40),
    ],
)
def test_a_fill_the_column_cannot_hold_is_refused(arrow_type, fill):
    expected = rf"cannot fill the nulls of column 'c' .* with {re.escape(repr(fill))}\."
    with pytest.raises(SchemaError, match=expected):
        _filled(arrow_type, fill)


@pytest.mark.parametrize("fill", [math.inf, -math.inf, math.nan])
def test_a_non_finite_fill_of_a_float_column_is_kept(fill):
    got = _filled(pa.float16(), fill)
    assert np.isnan(got) if math.isnan(fill) else got == fill


@pytest.mark.parametrize(
    ("arrow_type", "wrong", "offered"),
    [(pa.bool_(), 0, False), (pa.string(), 0, ""), (pa.int64(), "x", 0)],
)
def test_the_fill_a_refusal_offers_is_one_the_column_takes(arrow_type, wrong, offered):
    # Before, a refused fill of a boolean column offered `0`, refused the same way.
    with pytest.raises(SchemaError, match="cannot fill the nulls of column 'c'") as info:
        _filled(arrow_type, wrong)
    assert f"Pass e.g. `fill={{'c': {offered!r}}}`" in str(info.value)
    _filled(arrow_type, offered)
