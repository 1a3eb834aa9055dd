"""Arrow C stream exporters (Polars, DuckDB): a column Arrow cannot import is named.

pyarrow imports a stream's schema whole, so a Polars frame with an ``Int128`` column (format
``'_pli128'``) failed with a raw ``ArrowInvalid`` naming no column, even when the schema did
not use it. fitpipe reads the stream's own schema to name such columns and the fix.
"""

from __future__ import annotations

import keras
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import SchemaError

N = 8


def _frame(**wide: pl.Series) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({"a": rng.random(N), "y": np.zeros(N), **wide})


def _int128(offset: int = 0) -> pl.Series:
    return pl.Series([2**70 + i + offset for i in range(N)], dtype=pl.Int128)


def test_an_unused_column_arrow_cannot_import_is_named_with_the_fix():
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    schema = fitpipe.Schema(features="a", targets="y")
    expected = (
        r"`fit` cannot read the Arrow C stream of DataFrame \(column 'row_hash' of format "
        r"'_pli128'\).*`df.drop\('row_hash'\)`.*Received: column='row_hash' \(of type str\)"
    )
    with pytest.raises(SchemaError, match=expected):
        trainer.fit(_frame(row_hash=_int128()), schema=schema, verbose=0)
    trainer.fit(_frame(), schema=schema, verbose=0)  # without it


def test_every_such_column_is_named():
    frame = _frame(b=_int128(), c=_int128(1))
    with pytest.raises(SchemaError, match=r"`adapt` .*\(columns 'b', 'c' of format '_pli128'\)"):
        fitpipe.adapt(frame, schema=fitpipe.Schema("a", "y"))


# C strings end at a NUL: a name holding one cannot cross the C data interface whole; Arrow's
# names are UTF-8, which holds no lone surrogate (pa.table refuses one: UnicodeEncodeError)
NAMES = st.lists(
    st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=5,
    unique=True,
)
TYPES = st.sampled_from([pa.float32(), pa.int64(), pa.string(), pa.list_(pa.int8(), 2)])


@given(names=NAMES, types=st.lists(TYPES, min_size=5, max_size=5))
@settings(max_examples=40, deadline=None)
def test_a_streams_fields_are_its_columns_in_order(names: list[str], types: list[pa.DataType]):
    from fitpipe.adapters.c_streams import stream_fields  # here: new with this fix

    table = pa.table({n: pa.nulls(2, t) for n, t in zip(names, types, strict=False)})
    fields = stream_fields(table)
    assert [name for name, _ in fields] == table.column_names
    assert all(form for _, form in fields)
    assert stream_fields(object()) == []
