"""Every nested column type the schema check passes converts; any other is refused first.

``fixed_size_list<list<double>>`` passed the check (it recursed into the fixed-size list and
took a list of numbers) and then failed inside TensorFlow's conversion with an error naming
no column, while ``list<list<double>>`` was refused with a SchemaError. The property, over
types nested from lists, large lists, fixed-size lists and structs of scalars and strings:
either ``adapt`` refuses the column before the first batch ("cannot convert column 'c'"), or
the batch of its rows is made.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import SchemaError

SCALARS = [pa.float64(), pa.int32(), pa.bool_(), pa.string(), pa.timestamp("ms")]


WRAPPERS: dict[str, Any] = {
    "list": pa.list_,
    "large_list": pa.large_list,
    "fixed_size_list[1]": lambda t: pa.list_(t, 1),
    "fixed_size_list[2]": lambda t: pa.list_(t, 2),
    "struct": lambda t: pa.struct([("f", t)]),
}


@st.composite
def nested_types(draw: Any) -> pa.DataType:
    """A scalar type wrapped in up to three containers, innermost first."""
    arrow_type = draw(st.sampled_from(SCALARS))
    for name in draw(st.lists(st.sampled_from(list(WRAPPERS)), max_size=3)):
        arrow_type = WRAPPERS[name](arrow_type)
    return arrow_type


def _values(arrow_type: pa.DataType, rng: np.random.Generator) -> Any:
    """One row's value of ``arrow_type`` as Python objects."""
    if pa.types.is_struct(arrow_type):
        return {"f": _values(arrow_type.field(0).type, rng)}
    if pa.types.is_fixed_size_list(arrow_type):
        return [_values(arrow_type.value_type, rng) for _ in range(arrow_type.list_size)]
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return [_values(arrow_type.value_type, rng) for _ in range(int(rng.integers(0, 3)))]
    if pa.types.is_string(arrow_type):
        return str(rng.integers(9))
    if pa.types.is_boolean(arrow_type):
        return bool(rng.integers(2))
    return int(rng.integers(9))


@given(arrow_type=nested_types(), rows=st.integers(1, 4), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
@example(arrow_type=pa.list_(pa.list_(pa.float64()), 2), rows=2, seed=0)
def test_a_column_type_is_refused_before_the_first_batch_or_converts(
    arrow_type: pa.DataType, rows: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    column = pa.array([_values(arrow_type, rng) for _ in range(rows)], arrow_type)
    table = pa.table({"c": column, "y": np.zeros(rows, "float32")})
    try:
        pipeline = fitpipe.adapt(table, schema=fitpipe.Schema("c", "y"), batch_size=rows)
    except SchemaError as err:
        assert "cannot convert column 'c'" in str(err)
        return
    with pipeline:
        (batch,) = list(pipeline.dataset)
    assert batch[0].shape[0] == rows


@pytest.mark.parametrize(
    "arrow_type",
    [
        pa.list_(pa.list_(pa.float64()), 2),
        pa.list_(pa.large_list(pa.int32()), 1),
        pa.list_(pa.list_(pa.list_(pa.float64()), 2), 2),
        pa.list_(pa.dictionary(pa.int32(), pa.list_(pa.float64())), 2),
    ],
    ids=str,
)
def test_a_fixed_size_list_of_variable_lists_is_refused(arrow_type: pa.DataType) -> None:
    table = pa.table({"c": pa.nulls(2, arrow_type), "y": [0.0, 1.0]})
    with pytest.raises(SchemaError, match=r"cannot convert column 'c' of type fixed_size_list"):
        fitpipe.adapt(table, schema=fitpipe.Schema("c", "y"))
