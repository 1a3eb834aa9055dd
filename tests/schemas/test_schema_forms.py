"""``schema=`` forms (Schema, mapping, file path) and column selectors (glob, ``re:``, OTHER).

Selectors are resolved against the data's columns in file order for every columnar input
(Arrow table, Parquet, pandas, Polars, RecordBatchReader) and in ``fit``/``evaluate``/
``predict``/``adapt``; unknown columns are reported with the closest match.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeError, SchemaError
from fitpipe.schemas import OTHER_COLUMNS, Role, as_schema
from fitpipe.schemas.columns import column_listing
from fitpipe.testing import epoch_batches

ROWS = 24
PIXELS = [f"px{i}" for i in range(64)]
DIGITS_SCHEMA = {"features": "px*", "targets": "label", "passthrough": ["id"]}


def digits_table(rows: int = ROWS) -> pa.Table:
    """Like scikit-learn's digits as a table: an id, 64 pixel columns, a string and a label."""
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {"id": np.arange(rows, dtype="int64")}
    columns.update({name: rng.random(rows).astype("float32") for name in PIXELS})
    columns["name"] = [f"digit-{i}" for i in range(rows)]
    columns["label"] = rng.integers(0, 10, rows)
    return pa.table(columns)


def pixels(table: pa.Table) -> np.ndarray:
    return np.stack([table.column(c).to_numpy() for c in PIXELS], axis=1)


def first_x(pipeline: Any) -> np.ndarray:
    return np.concatenate([np.asarray(b[0]) for b in epoch_batches(pipeline)])


# ----------------------------------------------------------------------- schema= forms
@pytest.fixture
def schema_files(tmp_path: Path) -> dict[str, Any]:
    as_json = tmp_path / "schema.json"
    as_json.write_text(json.dumps(DIGITS_SCHEMA))
    as_toml = tmp_path / "schema.toml"
    as_toml.write_text('features = "px*"\ntargets = "label"\npassthrough = ["id"]\n')
    return {"json-str": str(as_json), "json-path": as_json, "toml": str(as_toml)}


@pytest.mark.parametrize("form", ["schema", "dict", "json-str", "json-path", "toml"])
def test_schema_given_as_schema_mapping_or_file_reads_the_same(form, schema_files):
    given = {
        "schema": fitpipe.Schema(**DIGITS_SCHEMA),
        "dict": dict(DIGITS_SCHEMA),
        **schema_files,
    }[form]
    table = digits_table()
    pipeline = fitpipe.adapt(table, schema=given, batch_size=8)
    np.testing.assert_array_equal(first_x(pipeline), pixels(table))
    assert as_schema(given, "fit") == fitpipe.Schema(**DIGITS_SCHEMA)


def test_fit_evaluate_predict_take_a_dict_and_a_path(tmp_path, schema_files):
    keras.utils.set_random_seed(0)
    model = fitpipe.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    table = digits_table()
    data = tmp_path / "digits.parquet"
    pq.write_table(table, data)
    history = model.fit(str(data), schema=dict(DIGITS_SCHEMA), epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert np.isfinite(model.evaluate(table, schema=schema_files["json-path"], verbose=0))
    predicted = model.predict(table.to_pandas(), schema=dict(DIGITS_SCHEMA), verbose=0)
    assert predicted.shape == (ROWS, 10)
    out = tmp_path / "predictions.parquet"
    model.predict(str(data), schema=schema_files["json-str"], output=str(out), verbose=0)
    assert pq.read_table(out).column("id").to_pylist() == list(range(ROWS))


def test_schema_of_another_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"`fit` got a `schema` of type int.*Schema.from_dict"):
        as_schema(3, "fit")


def test_missing_schema_file_names_it(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(SchemaError, match=r"`adapt` cannot read the schema file .*nope\.json"):
        fitpipe.adapt(digits_table(), schema=str(missing))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("[1, 2]", "holds a list"), ('{"features": "a", "colour": 1}', "unknown keys"), ("{", "")],
    ids=["not-a-table", "unknown-key", "bad-json"],
)
def test_bad_schema_file_is_a_schema_error(tmp_path, text, pattern):
    path = tmp_path / "schema.json"
    path.write_text(text)
    with pytest.raises(SchemaError, match=f"cannot (read|use) the schema file.*{pattern}"):
        as_schema(path, "fit")


# --------------------------------------------------------------------------- selectors
def _parquet(table: pa.Table, folder: Path) -> str:
    folder.mkdir(exist_ok=True)
    pq.write_table(table.slice(0, 10), folder / "a.parquet")
    pq.write_table(table.slice(10), folder / "b.parquet")
    return str(folder)


SOURCES = {
    "arrow": lambda table, tmp: table,
    "parquet": lambda table, tmp: _parquet(table, tmp / "data"),
    "pandas": lambda table, tmp: table.to_pandas(),
    "polars": lambda table, tmp: pl.from_arrow(table),
    "stream": lambda table, tmp: pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches(max_chunksize=7)
    ),
}


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize(
    "features", ["px*", r"re:px\d+", OTHER_COLUMNS], ids=["glob", "regex", "other"]
)
def test_selectors_read_the_pixels_in_file_order_from_every_columnar_source(
    source, features, tmp_path
):
    table = digits_table()
    x = SOURCES[source](table, tmp_path)
    passthrough = ["id", "name"]  # OTHER_COLUMNS leaves out every column another role uses
    schema = fitpipe.Schema(features, targets="label", passthrough=passthrough)
    np.testing.assert_array_equal(first_x(fitpipe.adapt(x, schema=schema)), pixels(table))


def test_selectors_resolve_in_file_order_not_alphabetical():
    schema = fitpipe.Schema(["re:b.*", "a"], targets=OTHER_COLUMNS, passthrough="id*")
    resolved = schema.resolve(["id", "b2", "y", "a", "b10", "b1", "id_2"])
    assert resolved.features == ("b2", "b10", "b1", "a")
    assert resolved.targets == ("y",)
    assert resolved.passthrough == ("id", "id_2")


def test_dicts_of_inputs_fill_and_lengths_take_selectors():
    schema = fitpipe.Schema(
        {"pixels": "px*", "meta": ["age", "re:h\\d"]}, "label", fill={"px*": 0.0, "age": 1}
    )
    resolved = schema.resolve(["px1", "h1", "px0", "age", "label", "hx"])
    assert resolved.to_dict()["features"] == {"pixels": ["px1", "px0"], "meta": ["age", "h1"]}
    assert dict(resolved.fill) == {"px1": 0.0, "px0": 0.0, "age": 1}


def test_a_column_whose_name_looks_like_a_glob_is_that_column():
    schema = fitpipe.Schema("a[0]", targets="y")
    assert schema.resolve(["a[0]", "a0", "y"]).features == "a[0]"
    assert schema.resolve(["a0", "y"]).features == ("a0",)  # a glob when no such column


@given(st.permutations([*"abcdefgh", "label", "id"]))
def test_other_columns_are_the_unused_ones_in_file_order(names):
    schema = fitpipe.Schema(OTHER_COLUMNS, targets="label", passthrough=["id"])
    resolved = schema.resolve(names)
    assert list(resolved.features) == [n for n in names if n not in ("label", "id")]
    assert resolved.resolve(names) == resolved  # a resolved schema is plain


@pytest.mark.parametrize("pattern", ["pz*", "re:pixel\\d+", "PX*"])
def test_selector_matching_nothing_names_it_and_shows_the_columns(pattern):
    with pytest.raises(SchemaError) as info:
        fitpipe.adapt(digits_table(), schema=fitpipe.Schema(pattern, "label"))
    text = str(info.value)
    assert f"found no column matching {pattern!r} in Table" in text
    assert "['id', 'px0', 'px1'" in text and "... and 55 more] (67 columns)" in text


def test_prediction_drops_target_selectors_that_match_nothing():
    schema = fitpipe.Schema("px*", targets="re:label.*", passthrough="id")
    table = digits_table().drop(["label"])
    resolved = schema.resolve(table.schema.names, roles=(Role.FEATURE, Role.PASSTHROUGH))
    assert resolved.targets is None
    with pytest.raises(SchemaError, match="no column matching 're:label"):
        schema.resolve(table.schema.names)


@pytest.mark.parametrize("what", ["fill", "lengths"])
def test_a_fill_or_lengths_selector_matching_nothing_is_an_error_where_every_role_is_read(
    what: str,
) -> None:
    """It was dropped silently; prediction data (no targets) may lack what it selects."""
    value = 0.0 if what == "fill" else 3
    schema = fitpipe.Schema("px*", targets="label", **{what: {"pz*": value}})
    names = digits_table().schema.names
    with pytest.raises(SchemaError, match=rf"no column matching 'pz\*'.*`{what}` keys select"):
        schema.resolve(names)
    prediction = schema.resolve(names, roles=(Role.FEATURE, Role.PASSTHROUGH))
    assert dict(getattr(prediction, what)) == {}


def test_other_columns_twice_or_with_nothing_left_is_an_error():
    with pytest.raises(SchemaError, match=r"OTHER_COLUMNS` more than once"):
        fitpipe.Schema(OTHER_COLUMNS, targets=OTHER_COLUMNS).resolve(["a", "b"])
    with pytest.raises(SchemaError, match=r"no column left for `fitpipe\.OTHER_COLUMNS`"):
        fitpipe.Schema(["a", OTHER_COLUMNS], targets="b").resolve(["a", "b"])


def test_invalid_regex_is_refused_when_the_schema_is_built():
    with pytest.raises(ValueError, match=r"invalid regular expression for features") as info:
        fitpipe.Schema("re:px(")
    assert isinstance(info.value, FitpipeError)


def test_resolved_schema_round_trips_through_json():
    resolved = fitpipe.Schema(**DIGITS_SCHEMA).resolve(digits_table().schema.names)
    assert json.loads(resolved.to_json())["features"] == PIXELS
    assert fitpipe.Schema.from_json(resolved.to_json()) == resolved


# ------------------------------------------------------------------- unknown columns
@pytest.mark.parametrize(
    ("typo", "guess"), [("px100", "px10"), ("lable", "label"), ("PX3", "px3"), ("nmae", "name")]
)
def test_unknown_column_suggests_the_closest_and_lists_columns_in_file_order(typo, guess):
    schema = fitpipe.Schema(["px0", typo], "label")
    with pytest.raises(SchemaError) as info:
        fitpipe.adapt(digits_table(), schema=schema)
    text = str(info.value)
    assert f"cannot find column {typo!r} in Table (did you mean {guess!r}?)" in text
    assert "the data has columns ['id', 'px0', 'px1', 'px2'" in text
    assert "... and 55 more] (67 columns)" in text


def test_unknown_column_without_a_close_match_makes_no_guess(tmp_path):
    path = _parquet(digits_table(), tmp_path / "data")
    with pytest.raises(SchemaError) as info:
        fitpipe.adapt(path, schema=fitpipe.Schema(["px0", "zzzz"], "label"))
    assert "did you mean" not in str(info.value)
    assert "cannot find column 'zzzz'" in str(info.value)
    assert "the data has columns ['id', 'px0', 'px1'" in str(info.value)  # file order


@given(st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=6), unique=True))
def test_column_listing_keeps_order_and_counts_the_rest(names):
    text = column_listing(names, limit=5)
    shown = re.findall(r"'([a-z]+)'", text)
    assert shown == names[:5]
    if len(names) > 5:
        assert text.endswith(f"... and {len(names) - 5} more] ({len(names)} columns)")
    assert len(text) < 120


def test_pandas_frame_reads_selectors_through_its_columns():
    frame = pd.DataFrame({"id": [1, 2], "a1": [0.5, 1.5], "a2": [2.0, 3.0], "y": [0, 1]})
    pipeline = fitpipe.adapt(frame, schema={"features": "a?", "targets": "y"})
    np.testing.assert_array_equal(first_x(pipeline), [[0.5, 2.0], [1.5, 3.0]])
