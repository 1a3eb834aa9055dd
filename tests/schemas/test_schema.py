"""``fitpipe.Schema``: forms, queries, immutability, serialisation, and the Arrow type check."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import check_arrow_schema, convertible
from fitpipe.errors import FitpipeError, SchemaError
from fitpipe.schemas import Role
from fitpipe.schemas.schema import Named

# ----------------------------------------------------------------------------- forms


def test_column_name_is_one_tensor_and_list_is_stacked():
    assert fitpipe.Schema("a").features == "a"
    assert fitpipe.Schema(["a", "b"]).features == ("a", "b")
    assert fitpipe.Schema(("a",)).features == ("a",)
    assert fitpipe.Schema("a") != fitpipe.Schema(["a"])


def test_dict_maps_input_names_to_columns_in_order():
    schema = fitpipe.Schema({"num": ["a", "b"], "txt": "t"}, targets={"out": "y"})
    assert schema.features == Named((("num", ("a", "b")), ("txt", "t")))
    assert schema.targets == Named((("out", "y"),))


def test_defaults():
    schema = fitpipe.Schema("a")
    assert schema.targets is None
    assert schema.sample_weight is None
    assert schema.passthrough == ()
    assert schema.fill == ()
    assert schema.lengths == ()


def test_passthrough_string_is_one_column():
    assert fitpipe.Schema("a", passthrough="id").passthrough == ("id",)
    assert fitpipe.Schema("a", passthrough=["id", "ts"]).passthrough == ("id", "ts")


@pytest.mark.parametrize(
    "features",
    [None, [], {}, 3, ["a", 3], [["a"]], {"in": []}, {"in": 5}],
    ids=["none", "empty-list", "empty-dict", "int", "mixed", "nested", "dict-empty", "dict-int"],
)
def test_invalid_features_raise_type_error(features):
    with pytest.raises(TypeError) as info:
        fitpipe.Schema(features)
    assert isinstance(info.value, FitpipeError)
    assert "Schema" in str(info.value)


def test_invalid_targets_raise():
    with pytest.raises(TypeError, match="targets"):
        fitpipe.Schema("a", targets=[1, 2])


@pytest.mark.parametrize("weight", [["w"], 1, ("w",)])
def test_sample_weight_must_be_one_column(weight):
    with pytest.raises(TypeError, match="sample_weight"):
        fitpipe.Schema("a", targets="y", sample_weight=weight)


# --------------------------------------------------------------------------- queries


def test_columns_in_declaration_order_without_repeats():
    schema = fitpipe.Schema(
        {"i1": ["a", "b"], "i2": "a"},
        targets=["y", "b"],
        sample_weight="w",
        passthrough=["id", "y"],
    )
    assert schema.columns() == ["a", "b", "y", "w", "id"]
    assert schema.columns((Role.FEATURE,)) == ["a", "b"]
    assert schema.columns((Role.FEATURE, Role.PASSTHROUGH)) == ["a", "b", "id", "y"]
    assert schema.columns((Role.TARGET, Role.WEIGHT)) == ["y", "b", "w"]


def test_fill_and_lengths_lookup():
    schema = fitpipe.Schema("a", fill={"a": 0.5, "s": "?"}, lengths={"seq": 4})
    assert schema.fill_value("a") == 0.5
    assert schema.fill_value("s") == "?"
    assert schema.fill_value("b") is None
    assert schema.length("seq") == 4
    assert schema.length("a") is None


# ------------------------------------------------------------------- immutability


@pytest.mark.parametrize(
    "field", ["features", "targets", "sample_weight", "passthrough", "fill", "lengths"]
)
def test_frozen(field):
    schema = fitpipe.Schema("a", targets="y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(schema, field, "x")


def test_fill_and_lengths_are_not_aliased_to_the_callers_dicts():
    fill, lengths = {"a": 1.0}, {"s": 3}
    schema = fitpipe.Schema("a", fill=fill, lengths=lengths)
    fill["a"] = 2.0
    lengths["s"] = 9
    assert schema.fill_value("a") == 1.0
    assert schema.length("s") == 3


# ---------------------------------------------------------------------- equality


def test_equality_and_hash():
    one = fitpipe.Schema(["a", "b"], "y", "w", ["id"], {"a": 0, "b": 1}, {"s": 2})
    two = fitpipe.Schema(("a", "b"), "y", "w", ("id",), {"b": 1, "a": 0}, {"s": 2})
    assert one == two
    assert hash(one) == hash(two)
    assert len({one, two}) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"features": ["b", "a"]},
        {"targets": "z"},
        {"sample_weight": None},
        {"passthrough": ()},
        {"fill": {"a": 1}},
        {"lengths": {"s": 3}},
    ],
)
def test_inequality_for_every_field(change):
    base = {
        "features": ["a", "b"],
        "targets": "y",
        "sample_weight": "w",
        "passthrough": ["id"],
        "fill": {"a": 0},
        "lengths": {"s": 2},
    }
    assert fitpipe.Schema(**base) != fitpipe.Schema(**{**base, **change})


# ------------------------------------------------------------------ serialisation


def test_to_dict_is_plain_json():
    schema = fitpipe.Schema(
        {"num": ["a", "b"], "txt": "t"},
        targets="y",
        sample_weight="w",
        passthrough="id",
        fill={"b": 0.0, "a": -1},
        lengths={"t": 8},
    )
    assert schema.to_dict() == {
        "features": {"num": ["a", "b"], "txt": "t"},
        "targets": "y",
        "sample_weight": "w",
        "passthrough": ["id"],
        "fill": {"a": -1, "b": 0.0},
        "lengths": {"t": 8},
    }
    assert json.loads(schema.to_json()) == schema.to_dict()


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(TypeError, match="unknown keys"):
        fitpipe.Schema.from_dict({"features": "a", "label": "y"})


def test_from_json_rejects_invalid_json():
    with pytest.raises(ValueError):
        fitpipe.Schema.from_json("{not json")


_names = st.text(alphabet="abcdefghij_", min_size=1, max_size=4)
_columns = st.one_of(_names, st.lists(_names, min_size=1, max_size=3))
_role = st.one_of(
    _columns,
    st.dictionaries(_names, _columns, min_size=1, max_size=3),
)
_value = st.one_of(
    st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.text(max_size=3), st.booleans()
)


@st.composite
def schemas(draw: st.DrawFn) -> fitpipe.Schema:
    return fitpipe.Schema(
        draw(_role),
        targets=draw(st.one_of(st.none(), _role)),
        sample_weight=draw(st.one_of(st.none(), _names)),
        passthrough=draw(st.lists(_names, max_size=3)),
        fill=draw(st.dictionaries(_names, _value, max_size=3)),
        lengths=draw(st.dictionaries(_names, st.integers(1, 50), max_size=2)),
    )


@settings(max_examples=50)
@given(schemas())
def test_dict_round_trip(schema):
    again = fitpipe.Schema.from_dict(schema.to_dict())
    assert again == schema
    assert again.to_dict() == schema.to_dict()


def _sorted_named(schema: fitpipe.Schema) -> bool:
    return all(
        not isinstance(spec, Named)
        or [k for k, _ in spec.items] == sorted(k for k, _ in spec.items)
        for spec in (schema.features, schema.targets)
    )


@settings(max_examples=50)
@given(schemas().filter(_sorted_named))
def test_json_round_trip(schema):
    text = schema.to_json()
    again = fitpipe.Schema.from_json(text)
    assert again == schema
    assert again.to_json() == text


def test_json_round_trip_keeps_dict_order():
    schema = fitpipe.Schema({"zeta": "a", "alpha": "b"}, targets="y")
    assert fitpipe.Schema.from_json(schema.to_json()) == schema


# ------------------------------------------------------------ Arrow type checking


@pytest.mark.parametrize(
    "arrow_type",
    [
        pa.int8(),
        pa.uint64(),
        pa.float16(),
        pa.float64(),
        pa.bool_(),
        pa.string(),
        pa.large_string(),
        pa.binary(),
        pa.timestamp("ms"),
        pa.date32(),
        pa.date64(),
        pa.list_(pa.float32(), 3),
        pa.list_(pa.list_(pa.int32(), 2), 3),
        pa.list_(pa.int64()),
        pa.large_list(pa.float32()),
        pa.dictionary(pa.int32(), pa.string()),
    ],
)
def test_convertible_types(arrow_type):
    assert convertible(arrow_type)


@pytest.mark.parametrize(
    "arrow_type",
    [
        pa.struct([("a", pa.int64())]),
        pa.map_(pa.string(), pa.int64()),
        pa.null(),
        pa.list_(pa.string()),
        pa.list_(pa.struct([("a", pa.int64())])),
        pa.list_(pa.list_(pa.int64())),
    ],
)
def test_unconvertible_types(arrow_type):
    assert not convertible(arrow_type)


def _check(schema, arrow_schema, roles=(Role.FEATURE, Role.TARGET, Role.WEIGHT)):
    check_arrow_schema(schema, arrow_schema, "data.parquet", roles, "fit")


def test_missing_column_names_column_source_and_found_columns():
    arrow_schema = pa.schema([("a", pa.float32()), ("y", pa.float32())])
    with pytest.raises(ValueError) as info:
        _check(fitpipe.Schema(["a", "b"], "y"), arrow_schema)
    assert isinstance(info.value, SchemaError)
    text = str(info.value)
    assert "'b'" in text and "data.parquet" in text and "'a'" in text and "'y'" in text


@pytest.mark.parametrize(
    "arrow_type",
    [pa.struct([("q", pa.int64())]), pa.map_(pa.string(), pa.int64()), pa.null()],
    ids=["struct", "map", "null"],
)
@pytest.mark.parametrize("role", ["features", "targets", "sample_weight"])
def test_unconvertible_column_in_any_role(arrow_type, role):
    arrow_schema = pa.schema([("a", pa.float32()), ("y", pa.float32()), ("bad", arrow_type)])
    kwargs = {"features": "a", "targets": "y", role: "bad"}
    with pytest.raises(SchemaError) as info:
        _check(fitpipe.Schema(**kwargs), arrow_schema)
    text = str(info.value)
    assert "'bad'" in text
    assert "data.parquet" in text
    assert str(arrow_type) in text  # found type
    if arrow_type == pa.null():  # no type of values: its fix is a cast to theirs
        assert "Cast it upstream to its values' type" in text
    else:
        assert "integers, floats" in text  # expected types


def test_string_stacked_with_numbers_is_rejected():
    arrow_schema = pa.schema([("a", pa.float32()), ("s", pa.string()), ("y", pa.int8())])
    _check(fitpipe.Schema("s", "y"), arrow_schema)  # alone it is a string tensor
    with pytest.raises(SchemaError, match=r"stack column 's' of type string in data\.parquet"):
        _check(fitpipe.Schema(["a", "s"], "y"), arrow_schema)


def test_list_column_cannot_be_stacked():
    arrow_schema = pa.schema([("a", pa.float32()), ("l", pa.list_(pa.float32(), 2))])
    with pytest.raises(SchemaError, match="'l'"):
        _check(fitpipe.Schema(["a", "l"]), arrow_schema)


def test_prediction_checks_no_targets_and_accepts_any_passthrough_type():
    arrow_schema = pa.schema([("a", pa.float32()), ("meta", pa.struct([("q", pa.int8())]))])
    schema = fitpipe.Schema("a", targets="missing", passthrough=["meta"])
    check_arrow_schema(schema, arrow_schema, "t", (Role.FEATURE, Role.PASSTHROUGH), "predict")
    with pytest.raises(SchemaError, match="'missing'"):
        _check(schema, arrow_schema)


def test_missing_passthrough_column_is_an_error_for_prediction():
    arrow_schema = pa.schema([("a", pa.float32())])
    schema = fitpipe.Schema("a", passthrough=["id"])
    with pytest.raises(SchemaError, match="'id'"):
        check_arrow_schema(schema, arrow_schema, "t", (Role.FEATURE, Role.PASSTHROUGH), "predict")


def test_feature_also_in_passthrough_is_still_type_checked():
    table = pa.table({"st": pa.array([{"q": 1.0}] * 4)})
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(SchemaError, match="'st'"):
        fitpipe.Trainer(model).predict(
            table, schema=fitpipe.Schema("st", passthrough=["st"]), verbose=0
        )


def test_failed_schema_check_leaves_weights_untouched():
    table = pa.table({"a": np.ones(8, "float32"), "st": pa.array([{"q": 1}] * 8)})
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    before = model.get_weights()
    with pytest.raises(SchemaError, match="'st'"):
        trainer.fit(table, schema=fitpipe.Schema("a", "st"), verbose=0)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
