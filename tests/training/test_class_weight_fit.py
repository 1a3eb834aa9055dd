"""``class_weight="balanced"`` and per-output class weights in ``fit`` (issue 18).

Keras has neither (``class_weight`` is a map for single-output models): the oracle is
Keras trained with what they stand for, the map scikit-learn's ``compute_class_weight``
gives, or explicit per-output ``sample_weight`` arrays, from identical initial weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from differential import classification_data, dense_model
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight

import fitpipe
from fitpipe.testing.keras_diff import (
    Side,
    assert_histories_close,
    assert_weights_close,
    compile_both,
    make_twins,
    run_both,
)

XC, LABELS = classification_data(n=96, d=6, classes=3)
SKEWED = np.where(np.arange(96) % 5 == 0, LABELS, 0)  # mostly class 0
CLS_COMPILE = {
    "optimizer": "adam",
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "weighted_metrics": ["accuracy"],
}


def sklearn_map(labels: np.ndarray) -> dict[int, float]:
    classes = np.unique(labels)
    found = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, found, strict=True)}


def _cls() -> keras.Model:
    return dense_model(d=6, units=3, activation="softmax")


@pytest.mark.parametrize("label_form", ["sparse", "one-hot"])
def test_balanced_matches_keras_with_scikit_learns_map(label_form: str) -> None:
    y: np.ndarray = SKEWED
    compile_kwargs = dict(CLS_COMPILE)
    if label_form == "one-hot":
        y = np.eye(3, dtype="float32")[SKEWED]
        compile_kwargs["loss"] = "categorical_crossentropy"
    expected = sklearn_map(SKEWED)

    def spec(side: Side) -> dict[str, Any]:
        weights = expected if side == "keras" else "balanced"
        return {"x": XC, "y": y, "batch_size": 16, "epochs": 2, "class_weight": weights}

    res = run_both(_cls, compile_kwargs, spec, eval_kwargs={"x": XC, "y": y}, check_params=False)
    assert res.twin_history is not None and res.ref_history is not None
    params = dict(res.twin_history.params)
    assert params.pop("class_weight") == pytest.approx(expected)
    assert params == res.ref_history.params


def test_balanced_counts_only_the_training_rows() -> None:
    """With ``validation_split``, the rows set apart are not counted (as sklearn on train)."""
    expected = sklearn_map(SKEWED[:72])

    def spec(side: Side) -> dict[str, Any]:
        weights = expected if side == "keras" else "balanced"
        return {
            "x": XC,
            "y": SKEWED,
            "batch_size": 16,
            "epochs": 2,
            "validation_split": 0.25,
            "class_weight": weights,
        }

    res = run_both(_cls, CLS_COMPILE, spec, check_params=False)
    assert res.twin_history is not None
    assert res.twin_history.params["class_weight"] == pytest.approx(expected)


def test_balanced_streamed_parquet_matches_keras(tmp_path: Path, monkeypatch: Any) -> None:
    from fitpipe import limits

    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # a counting pass, then a stream
    table = pa.table({**{f"f{i}": XC[:, i] for i in range(6)}, "y": SKEWED.astype("int64")})
    for i, start in enumerate((0, 50)):
        pq.write_table(table.slice(start, 50), tmp_path / f"p{i}.parquet", row_group_size=16)
    schema = fitpipe.Schema([f"f{i}" for i in range(6)], "y")

    def spec(side: Side) -> dict[str, Any]:
        common = {"batch_size": 16, "epochs": 2}
        if side == "keras":
            return {"x": XC, "y": SKEWED, "class_weight": sklearn_map(SKEWED), **common}
        return {"x": str(tmp_path), "schema": schema, "class_weight": "balanced", **common}

    run_both(_cls, CLS_COMPILE, spec, check_params=False)


def test_balanced_is_printed_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    model = _cls()
    trainer = fitpipe.Trainer(model)
    trainer.compile(**CLS_COMPILE)
    trainer.fit(XC, SKEWED, class_weight="balanced", epochs=1, verbose=2)
    expected = {c: round(w, 4) for c, w in sklearn_map(SKEWED).items()}
    assert f"class_weight='balanced': {expected} from 96 rows" in capsys.readouterr().out


def test_balanced_prints_nothing_when_silent(capsys: pytest.CaptureFixture[str]) -> None:
    trainer = fitpipe.Trainer(_cls())
    trainer.compile(**CLS_COMPILE)
    history = trainer.fit(XC, SKEWED, class_weight="balanced", epochs=1, verbose=0)
    assert "class_weight" not in capsys.readouterr().out
    assert history.params["class_weight"] == pytest.approx(sklearn_map(SKEWED))


def test_a_given_map_leaves_params_as_keras_makes_them() -> None:
    trainer = fitpipe.Trainer(_cls())
    trainer.compile(**CLS_COMPILE)
    history = trainer.fit(XC, SKEWED, class_weight={0: 1.0}, epochs=1, verbose=0)
    assert "class_weight" not in history.params


# ------------------------------------------------------------------------------ per output

BINARY = (XC[:, 0] > 0.5).astype("float32")
PER_OUTPUT = {"out_a": {0: 1.0, 1: 5.0, 2: 0.5}, "out_b": "balanced"}


def _two_outputs(as_list: bool = False) -> keras.Model:
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    out_a = keras.layers.Dense(3, activation="softmax", name="out_a")(hidden)
    out_b = keras.layers.Dense(1, activation="sigmoid", name="out_b")(hidden)
    if as_list:
        return keras.Model(inputs, [out_a, out_b])
    return keras.Model(inputs, {"out_a": out_a, "out_b": out_b})


TWO_COMPILE = {
    "optimizer": "adam",
    "loss": {"out_a": "sparse_categorical_crossentropy", "out_b": "binary_crossentropy"},
    "weighted_metrics": {"out_a": ["accuracy"], "out_b": ["accuracy"]},
}


def _per_output_sample_weight(given: np.ndarray | None = None) -> dict[str, np.ndarray]:
    sw = np.ones(96, "float32") if given is None else given
    table_b = sklearn_map(BINARY.astype("int64"))
    return {
        "out_a": sw * np.array([1.0, 5.0, 0.5], "float32")[LABELS],
        "out_b": sw * np.array([table_b[int(c)] for c in BINARY], "float32"),
    }


@pytest.mark.parametrize("targets", ["dict", "list"])
def test_per_output_matches_keras_with_per_output_sample_weight(targets: str) -> None:
    y: Any = {"out_a": LABELS, "out_b": BINARY}
    sample_weight: Any = _per_output_sample_weight()
    compile_kwargs: dict[str, Any] = TWO_COMPILE
    if targets == "list":  # a model with a list of outputs: found by `model.output_names`
        y, sample_weight = list(y.values()), list(sample_weight.values())
        compile_kwargs = {
            "optimizer": "adam",
            "loss": ["sparse_categorical_crossentropy", "binary_crossentropy"],
            "weighted_metrics": [["accuracy"], ["accuracy"]],
        }

    def spec(side: Side) -> dict[str, Any]:
        common = {"x": XC, "y": y, "batch_size": 16, "epochs": 2}
        if side == "keras":
            return {"sample_weight": sample_weight, **common}
        return {"class_weight": PER_OUTPUT, **common}

    res = run_both(
        lambda: _two_outputs(as_list=targets == "list"),
        compile_kwargs,
        spec,
        eval_kwargs={"x": XC, "y": y},
        check_params=False,
    )
    assert res.twin_history is not None
    assert res.twin_history.params["class_weight"]["out_b"] == pytest.approx(
        sklearn_map(BINARY.astype("int64"))
    )


@pytest.mark.parametrize("form", ["dict", "frame", "weights"])
def test_per_output_on_a_list_output_model_with_targets_by_name_matches_keras(form: str) -> None:
    # A model of a list of outputs, its targets a dict by output name (what a Schema of
    # several targets gives): the weights reach Keras' loss as a list in the outputs' order.
    # As a dict they failed inside Keras' compiled loss with `KeyError: 0` (Keras itself
    # fails so when given a dict of weights by output name for such a model).
    import pandas as pd

    weights = _per_output_sample_weight()
    compile_kwargs = {
        "optimizer": "adam",
        "loss": ["sparse_categorical_crossentropy", "binary_crossentropy"],
        "weighted_metrics": [["accuracy"], ["accuracy"]],
    }
    ref, twin = make_twins(lambda: _two_outputs(as_list=True))
    api = compile_both(ref, twin, compile_kwargs)
    fit = {"batch_size": 16, "epochs": 2, "shuffle": False, "verbose": 0}
    h_ref = ref.fit(XC, [LABELS, BINARY], sample_weight=list(weights.values()), **fit)
    y = {"out_a": LABELS, "out_b": BINARY}
    if form == "frame":
        frame = pd.DataFrame({f"f{i}": XC[:, i] for i in range(6)})
        frame["a"], frame["b"] = LABELS, BINARY
        schema = fitpipe.Schema(
            features=[f"f{i}" for i in range(6)], targets={"out_a": "a", "out_b": "b"}
        )
        h_got = api.fit(frame, schema=schema, class_weight=PER_OUTPUT, **fit)
    elif form == "weights":
        h_got = api.fit(XC, y, sample_weight=weights, **fit)
    else:
        h_got = api.fit(XC, y, class_weight=PER_OUTPUT, **fit)
    h_got.params.pop("class_weight", None)
    assert_histories_close(h_ref, h_got)
    assert_weights_close(ref, twin)


def test_per_output_times_a_single_sample_weight() -> None:
    sw = np.linspace(0.2, 2.0, 96).astype("float32")
    y = {"out_a": LABELS, "out_b": BINARY}
    ref, twin = make_twins(_two_outputs)
    api = compile_both(ref, twin, TWO_COMPILE)
    fit = {"batch_size": 16, "epochs": 2, "shuffle": False, "verbose": 0}
    h_ref = ref.fit(XC, y, sample_weight=_per_output_sample_weight(sw), **fit)
    h_got = api.fit(XC, y, sample_weight=sw, class_weight=PER_OUTPUT, **fit)
    assert h_got.params.pop("class_weight")["out_a"] == PER_OUTPUT["out_a"]
    assert_histories_close(h_ref, h_got)
    assert_weights_close(ref, twin)


def test_per_output_train_on_batch_matches_keras() -> None:
    y = {"out_a": LABELS, "out_b": BINARY}
    ref, twin = make_twins(_two_outputs)
    api = compile_both(ref, twin, TWO_COMPILE)
    expected = ref.train_on_batch(XC, y, sample_weight=_per_output_sample_weight())
    found = api.train_on_batch(XC, y, class_weight=PER_OUTPUT)
    np.testing.assert_allclose(found, expected, rtol=1e-5)
    assert_weights_close(ref, twin)


def _cls_functional() -> keras.Model:
    inputs = keras.Input((6,), name="x")
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(inputs))


def test_single_output_keyed_by_its_name() -> None:
    weights = {0: 0.5, 1: 2.0, 2: 1.25}
    ref, twin = make_twins(_cls_functional)
    api = compile_both(ref, twin, CLS_COMPILE)
    fit = {"batch_size": 16, "epochs": 2, "shuffle": False, "verbose": 0}
    h_ref = ref.fit(XC, LABELS, class_weight=weights, **fit)
    h_got = api.fit(XC, LABELS, class_weight={"probs": weights}, **fit)
    assert_histories_close(h_ref, h_got)
    assert_weights_close(ref, twin)


def test_unknown_output_names_the_model_outputs() -> None:
    trainer = fitpipe.Trainer(_two_outputs())
    trainer.compile(**TWO_COMPILE)
    with pytest.raises(
        ValueError,
        match=r"^`fit` got `class_weight` for the unknown output 'out_aa' "
        r"\(did you mean 'out_a'\?\)\. .*'out_a', 'out_b'",
    ):
        trainer.fit(XC, [LABELS, BINARY], class_weight={"out_aa": {0: 1.0}}, epochs=1, verbose=0)


@settings(max_examples=min(10, settings.default.max_examples), deadline=None)
@given(
    keys=st.lists(st.sampled_from([int, float, np.float64]), min_size=3, max_size=3),
    weights=st.lists(st.floats(0.1, 5.0), min_size=3, max_size=3),
)
def test_integral_float_keys_train_as_in_keras(keys: list[Any], weights: list[float]) -> None:
    """Keras looks each label up as ``int(label)``, which finds a key ``1.0``: so does fitpipe."""
    class_weight = {kind(c): w for c, (kind, w) in enumerate(zip(keys, weights, strict=True))}

    def spec(side: Side) -> dict[str, Any]:
        return {"x": XC, "y": LABELS, "batch_size": 32, "epochs": 1, "class_weight": class_weight}

    run_both(_cls, CLS_COMPILE, spec, check_params=False)
