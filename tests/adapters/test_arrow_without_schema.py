"""An Arrow table, record batch or Polars DataFrame given without a schema: one 2-D input.

Keras 3 takes them (through ``np.asarray``: all columns, in order, as one array) in ``fit``,
``evaluate``, ``predict`` and ``*_on_batch``. Before, fitpipe refused them all: ``fit(table,
y)`` said it "does not support `y` ... with `schema=`" though no schema was given, ``predict``
that it "needs a `schema`", and ``train_on_batch(table)`` advised a ``schema=`` that
``train_on_batch`` then refused as an unknown keyword.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fitpipe
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, UnsupportedArgumentError
from fitpipe.testing import assert_matches_keras

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
DTYPES += ["float16", "float32", "float64", "bool"]
FORMS = ["Table", "RecordBatch", "polars"]


def _column(draw: st.DrawFn, dtype: str, rows: int) -> np.ndarray:
    if dtype == "bool":
        elements: st.SearchStrategy[Any] = st.booleans()
    elif dtype.startswith("float"):
        elements = st.floats(-4, 4, width=16)
    else:
        elements = st.integers(0 if dtype.startswith("u") else -9, 9)
    return draw(hnp.arrays(np.dtype(dtype), rows, elements=elements))


def _form(table: pa.Table, form: str) -> Any:
    if form == "RecordBatch":
        return table.combine_chunks().to_batches()[0]
    return pl.from_arrow(table) if form == "polars" else table


@st.composite
def tables(draw: st.DrawFn) -> tuple[Any, int]:
    """A table of 1-4 columns of numbers and booleans in one of :data:`FORMS`, and its width."""
    form = draw(st.sampled_from(FORMS))
    rows, width = draw(st.integers(4, 12)), draw(st.integers(1, 4))
    kinds = [d for d in DTYPES if not (form == "polars" and d == "float16")]  # none in Polars
    dtypes = draw(st.lists(st.sampled_from(kinds), min_size=width, max_size=width))
    columns = {f"c{i}": _column(draw, dtype, rows) for i, dtype in enumerate(dtypes)}
    chunk = draw(st.integers(1, rows))
    table = pa.Table.from_batches(pa.table(columns).to_batches(max_chunksize=chunk))
    return _form(table, form), width


def _dense(width: int) -> keras.Model:
    return keras.Sequential([keras.Input((width,)), keras.layers.Dense(1)])


@settings(max_examples=8, deadline=None)
@given(
    data=tables(),
    weights=st.sampled_from(["none", "sample_weight", "class_weight"]),
    split=st.sampled_from([0.0, 0.25]),
    batch_size=st.integers(2, 5),
)
def test_a_table_without_schema_trains_and_predicts_as_keras_on_it(
    data: tuple[Any, int], weights: str, split: float, batch_size: int
) -> None:
    # Keras is given the very same table: the same History, weights, evaluate and predict.
    table, width = data
    rows = len(table)
    y = (np.arange(rows) % 2).astype("float32")
    extra: dict[str, Any] = {"batch_size": batch_size, "validation_split": split}
    if weights == "sample_weight":
        extra["sample_weight"] = np.linspace(0.5, 1.5, rows).astype("float32")
    if weights == "class_weight":  # Keras takes no class_weight beside sample_weight
        extra["class_weight"] = {0: 1.0, 1: 2.5}
    assert_matches_keras(lambda: _dense(width), table, y, epochs=2, **extra)


@pytest.mark.parametrize("form", FORMS)
def test_a_table_without_schema_is_the_array_keras_reads(form: str) -> None:
    table = _form(
        pa.table({"a": np.arange(5, dtype="int8"), "b": [0.5] * 5, "c": [True] * 5}), form
    )
    pipeline = fitpipe.adapt(table, np.zeros(5, "float32"), batch_size=5)
    x, _ = next(iter(pipeline.dataset))
    np.testing.assert_array_equal(x.numpy(), np.asarray(table))
    assert x.dtype == np.asarray(table).dtype


@settings(max_examples=10, deadline=None)
@given(data=tables(), batch_size=st.integers(1, 5))
def test_adapt_reads_a_table_without_schema_nor_y_as_its_array(
    data: tuple[Any, int], batch_size: int
) -> None:
    # `adapt` (the data layer, not `fit`) takes the table as it takes `np.asarray(table)`:
    # batches of features only, as `predict` reads it.
    table, _ = data
    ours = fitpipe.adapt(table, batch_size=batch_size)
    theirs = fitpipe.adapt(np.asarray(table), batch_size=batch_size)
    assert ours.element_spec == theirs.element_spec
    got, want = list(ours.dataset), list(theirs.dataset)
    assert len(got) == len(want)
    for (x,), (expected,) in zip(got, want, strict=True):
        np.testing.assert_array_equal(x.numpy(), expected.numpy())


def test_on_batch_methods_take_a_table_with_y_as_keras() -> None:
    table = pa.table({"a": [1.0, 2.0, 3.0], "b": [3, 4, 5]})
    y = np.array([0.0, 1.0, 0.5], "float32")
    model = _dense(2)
    reference = _dense(2)
    reference.set_weights(model.get_weights())
    reference.compile(optimizer="sgd", loss="mse")
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    for name in ("train_on_batch", "test_on_batch"):
        ours, theirs = getattr(trainer, name)(table, y), getattr(reference, name)(table, y)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    ours = trainer.predict_on_batch(pl.from_arrow(table))
    np.testing.assert_allclose(ours, reference.predict_on_batch(table), rtol=1e-6)


def _trainer(width: int = 2) -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    trainer = fitpipe.Trainer(_dense(width))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


TABLE = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.5, 1.5, 1.5]})


@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_a_table_without_schema_nor_y_is_refused_offering_both(call: str) -> None:
    with pytest.raises(
        FitpipeTypeError,
        match=r"needs a `schema` for Table.*or pass its targets beside it \(as `y`",
    ):
        getattr(_trainer(), call)(TABLE, verbose=0)


def test_with_a_schema_y_is_still_refused() -> None:
    schema = fitpipe.Schema(features=["a"], targets="b")
    with pytest.raises(UnsupportedArgumentError, match="names its target and weight columns"):
        _trainer(1).fit(TABLE, np.zeros(4), schema=schema, verbose=0)


def test_a_reader_without_schema_is_still_refused_without_offering_y() -> None:
    reader = pa.RecordBatchReader.from_batches(TABLE.schema, TABLE.to_batches())
    with pytest.raises(FitpipeTypeError, match="needs a `schema` for a RecordBatchReader") as info:
        _trainer().predict(reader, verbose=0)
    assert "`y`" not in str(info.value)


@pytest.mark.parametrize(
    "given_x",
    [TABLE, pa.RecordBatchReader.from_batches(TABLE.schema, TABLE.to_batches()), "parquet"],
    ids=["table", "reader", "parquet"],
)
@pytest.mark.parametrize("call", ["train_on_batch", "test_on_batch"])
def test_no_on_batch_message_advises_a_schema(call: str, given_x: Any, tmp_path: Path) -> None:
    # `*_on_batch` take no schema: the fix offered takes the target column out as `y`.
    if isinstance(given_x, str):
        given_x = str(tmp_path / "t.parquet")
        pq.write_table(TABLE, given_x)
    with pytest.raises(FitpipeTypeError, match=f"`{call}`.*`y=(table|batch)\\[") as info:
        getattr(_trainer(), call)(given_x)
    assert "schema=" not in str(info.value)
    assert "no schema" in str(info.value)


def test_predict_of_a_table_without_schema_writes_the_predictions(tmp_path: Path) -> None:
    trainer = _trainer()
    out = tmp_path / "out.parquet"
    trainer.predict(TABLE, output=out, verbose=0)
    written = pq.read_table(out)
    expected = trainer.predict(np.asarray(TABLE), verbose=0)
    np.testing.assert_allclose(np.stack(written.column(0).to_pylist()).reshape(-1, 1), expected)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("call", ["fit", "train_on_batch"])
def test_a_null_without_schema_is_refused_naming_column_and_row(call: str, form: str) -> None:
    # NumPy (Keras) reads it as NaN, and a column of integers with one as floats.
    table = _form(pa.table({"a": [1, 2, 3, 4], "b": [1, 2, None, 4]}), form)
    kwargs = {"verbose": 0} if call == "fit" else {}
    with pytest.raises(FitpipeValueError, match="its column 'b' holds a null at row 2") as info:
        getattr(_trainer(), call)(table, np.zeros(4), **kwargs)
    text = str(info.value)
    assert "fill_null" in text and "drop the column" in text
    assert ("schema=" in text and "fill=" in text) == (call == "fit"), text


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("values", "fill"), [([True, None, False, True], False), ([1, None, 3, 4], 0)]
)
def test_the_fix_of_a_null_fills_it_with_a_value_of_the_columns_type(
    form: str, values: list[Any], fill: Any
) -> None:
    # Before, a boolean column's nulls were to be filled with `0`, which Arrow and a schema's
    # fill refuse, and Polars takes by making the column integers.
    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": values})
    with pytest.raises(FitpipeValueError, match="its column 'b' holds a null at row 1") as info:
        _trainer().fit(_form(table, form), np.zeros(4), verbose=0)
    text = str(info.value)
    assert f"fill_null(column, {fill!r})" in text and f"df.fill_null({fill!r})" in text, text
    assert f"fill={{'b': {fill!r}}}" in text, text
    schema = fitpipe.Schema(features=["a", "b"], targets=["y"], fill={"b": fill})
    _trainer().fit(table.append_column("y", pa.array([0.0] * 4)), schema=schema, verbose=0)


@pytest.mark.parametrize("form", FORMS)
def test_a_string_column_without_schema_is_refused_naming_it(form: str) -> None:
    table = _form(pa.table({"a": [1.0, 2.0], "s": ["x", "y"], "d": [1, 2]}), form)
    with pytest.raises(
        FitpipeTypeError, match=r"other types than numbers: s \(string(_view)?\), as one"
    ):
        _trainer().fit(table, np.zeros(2), verbose=0)


def test_split_by_names_a_column_of_a_table_without_schema() -> None:
    # As for a DataFrame: the keys' column is read for the split only, not as a feature.
    keys = np.repeat(np.arange(12), 2)
    x = np.linspace(0, 1, 48, dtype="float32").reshape(24, 2)
    y = np.arange(24, dtype="float32")
    table = pa.table({"a": x[:, 0], "k": keys, "b": x[:, 1]})
    given = {"validation_split": 0.4, "epochs": 2, "verbose": 0, "shuffle": False}
    ours = _trainer().fit(table, y, split_by="k", **given).history
    arrays = _trainer().fit(x, y, split_by=keys, **given).history
    assert ours == arrays
