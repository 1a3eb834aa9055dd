"""``class_weight``: turned into per-sample weights for every input form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.pipeline import check_class_weight, class_weight_table
from fitpipe.pipeline.class_weights import balanced_weights, class_counts
from fitpipe.testing import epoch_batches
from fitpipe.testing.fixtures import ArrayPyDataset

LABELS = np.array([0, 1, 2, 1, 0, 3], dtype="int64")
X = np.arange(12, dtype="float32").reshape(6, 2)
CLASS_WEIGHT = {0: 0.5, 1: 2.0}  # class 2 and 3 missing: weight 1
EXPECTED = np.array([0.5, 2.0, 1.0, 2.0, 0.5, 1.0], dtype="float32")


def weights(pipeline: Any) -> np.ndarray:
    found = epoch_batches(pipeline)
    assert all(len(b) == 3 for b in found)
    return np.concatenate([b[2] for b in found])


@pytest.mark.parametrize(
    "y",
    [LABELS, LABELS[:, None], LABELS.astype("float32"), np.eye(4, dtype="float32")[LABELS]],
    ids=["sparse", "sparse-column", "sparse-float", "one-hot"],
)
def test_class_weight_for_each_target_layout(y: np.ndarray) -> None:
    pipeline = fitpipe.adapt(X, y, class_weight=CLASS_WEIGHT, batch_size=4)
    assert pipeline.element_spec[2].dtype == tf.float32
    np.testing.assert_array_equal(weights(pipeline), EXPECTED)


def test_one_hot_uses_argmax_of_soft_labels() -> None:
    soft = np.array([[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]], dtype="float32")
    pipeline = fitpipe.adapt(X[:3], soft, class_weight={0: 3.0, 1: 5.0})
    np.testing.assert_array_equal(weights(pipeline), [3.0, 5.0, 5.0])


def test_class_weight_multiplies_sample_weight() -> None:
    sw = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype="float32")
    pipeline = fitpipe.adapt(X, LABELS, sw, class_weight=CLASS_WEIGHT, batch_size=4)
    np.testing.assert_array_equal(weights(pipeline), sw * EXPECTED)


def test_class_weight_multiplies_temporal_sample_weight() -> None:
    sw = np.arange(18, dtype="float32").reshape(6, 3)
    per_step = np.repeat(np.asarray(LABELS)[:, None, None], 3, axis=1)  # (6, 3, 1): sparse
    pipeline = fitpipe.adapt(X, per_step, sw, class_weight=CLASS_WEIGHT, batch_size=4)
    found = weights(pipeline)
    assert found.shape == (6, 3)
    np.testing.assert_array_equal(found, sw * EXPECTED[:, None])


def test_class_weight_follows_shuffled_rows(seeded: Any) -> None:
    seeded(4)
    y = np.arange(20) % 3
    pipeline = fitpipe.adapt(
        np.arange(20.0)[:, None],
        y,
        shuffle=True,
        batch_size=6,
        class_weight={0: 1.0, 1: 10.0, 2: 100.0},
    )
    found = epoch_batches(pipeline)
    labels = np.concatenate([b[1] for b in found])
    np.testing.assert_array_equal(np.concatenate([b[2] for b in found]), 10.0**labels)


def generator(with_weights: bool) -> Iterator[tuple[np.ndarray, ...]]:
    for start in range(0, 6, 4):
        batch = [X[start : start + 4], LABELS[start : start + 4]]
        if with_weights:
            batch.append(np.full(len(batch[1]), 2.0, "float32"))
        yield tuple(batch)


@pytest.mark.parametrize("with_weights", [False, True])
def test_class_weight_for_generators(with_weights: bool) -> None:
    pipeline = fitpipe.adapt(generator(with_weights), class_weight=CLASS_WEIGHT)
    factor = 2.0 if with_weights else 1.0
    np.testing.assert_array_equal(weights(pipeline), factor * EXPECTED)


@pytest.mark.parametrize("with_weights", [False, True])
def test_class_weight_for_tf_data(with_weights: bool) -> None:
    parts: tuple[Any, ...] = (X, LABELS)
    if with_weights:
        parts += (np.full(6, 3.0, "float32"),)
    dataset = tf.data.Dataset.from_tensor_slices(parts).batch(4)
    pipeline = fitpipe.adapt(dataset, class_weight=CLASS_WEIGHT)
    factor = 3.0 if with_weights else 1.0
    np.testing.assert_array_equal(weights(pipeline), factor * EXPECTED)


def test_class_weight_for_tf_data_one_hot() -> None:
    dataset = tf.data.Dataset.from_tensor_slices((X, np.eye(4)[LABELS])).batch(4)
    np.testing.assert_array_equal(
        weights(fitpipe.adapt(dataset, class_weight=CLASS_WEIGHT)), EXPECTED
    )
    with pytest.raises(ValueError, match="outside the classes of the targets"):
        fitpipe.adapt(dataset, class_weight={-1: 1.0})


def test_class_weight_for_pydataset() -> None:
    dataset = ArrayPyDataset(X, LABELS, None, 4)
    np.testing.assert_array_equal(
        weights(fitpipe.adapt(dataset, class_weight=CLASS_WEIGHT)), EXPECTED
    )


def test_empty_class_weight_weighs_every_sample_1() -> None:
    pipeline = fitpipe.adapt(X, LABELS, class_weight={})
    np.testing.assert_array_equal(weights(pipeline), np.ones(6))


@pytest.mark.parametrize(
    "key", ["cat", 1.5, float("nan"), True, None, "1.0", "-1", " 1", "", "\u0663", "0x1"]
)
def test_non_integer_keys_are_a_type_error(key: Any) -> None:
    with pytest.raises(TypeError, match=r"^`adapt` got the non-integer `class_weight` key"):
        fitpipe.adapt(X, LABELS, class_weight={key: 1.0})


@given(
    st.dictionaries(st.integers(0, 40), st.floats(0, 100, allow_nan=False, width=32), max_size=6)
)
def test_digit_string_keys_are_class_indices(table: dict[int, float]) -> None:
    # What JSON and TOML configs give: {"0": 1.0, "1": 3.0} (Keras 3.16 takes them too).
    as_text = {str(key): weight for key, weight in table.items()}
    assert check_class_weight(as_text, "fit") == {k: float(w) for k, w in table.items()}


def test_digit_string_keys_weigh_like_int_keys() -> None:
    text = {str(k): v for k, v in CLASS_WEIGHT.items()}
    np.testing.assert_array_equal(weights(fitpipe.adapt(X, LABELS, class_weight=text)), EXPECTED)


def test_a_class_given_as_int_and_as_text_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got class 1 twice in `class_weight`"):
        fitpipe.adapt(X, LABELS, class_weight={1: 2.0, "1": 3.0})


def test_numpy_integer_keys_are_accepted() -> None:
    pipeline = fitpipe.adapt(X, LABELS, class_weight={np.int64(1): 2.0, np.int32(0): 0.5})
    np.testing.assert_array_equal(weights(pipeline), EXPECTED)


def test_class_weight_that_is_not_a_dict_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^`adapt` got a `class_weight` that is not a dict"):
        fitpipe.adapt(X, LABELS, class_weight=[1.0, 2.0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [float, np.float32, np.array, lambda w: np.array(w, "float16"), tf.constant, np.int64],
    ids=["float", "np.float32", "0-d-array", "0-d-float16", "tensor", "np.int64"],
)
def test_weights_given_as_scalars_of_any_kind_weigh_as_floats(make: Any) -> None:
    pipeline = fitpipe.adapt(X, LABELS, class_weight={k: make(v) for k, v in {0: 1, 1: 2}.items()})
    np.testing.assert_array_equal(weights(pipeline), [1.0, 2.0, 1.0, 2.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "weight",
    [-1.0, float("nan"), float("inf"), "2", np.array([1.0]), tf.constant([1.0, 2.0]), 1j],
)
def test_negative_or_non_finite_weights_are_a_value_error(weight: Any) -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got the weight .* for class 0"):
        fitpipe.adapt(X, LABELS, class_weight={0: weight})


def test_negative_class_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got class -1 in `class_weight`"):
        fitpipe.adapt(X, LABELS, class_weight={-1: 1.0})


def test_class_beyond_one_hot_width_is_allowed_as_for_sparse_labels() -> None:
    """Keras trains with a class no target has, one-hot or sparse; fitpipe refused it for
    one-hot targets only (found by a differential fuzzer)."""
    one_hot = np.eye(4, dtype="float32")[LABELS]
    pipeline = fitpipe.adapt(X, one_hot, class_weight={**CLASS_WEIGHT, 4: 7.0})
    np.testing.assert_array_equal(weights(pipeline), EXPECTED)


def test_one_hot_class_weight_with_a_class_beyond_trains_as_in_keras() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 1, 1, 0, 1, 0, 0, 1]]
    class_weight = {0: 1.0, 1: 2.5, 2: 0.5}
    model.compile("sgd", "categorical_crossentropy")
    want = model.fit(x, y, batch_size=4, shuffle=False, verbose=0, class_weight=class_weight)
    trainer = fitpipe.Trainer(twin)
    trainer.compile("sgd", "categorical_crossentropy")
    got = trainer.fit(x, y, batch_size=4, shuffle=False, verbose=0, class_weight=class_weight)
    np.testing.assert_allclose(got.history["loss"], want.history["loss"], rtol=1e-6)


def test_class_beyond_sparse_labels_is_allowed() -> None:
    pipeline = fitpipe.adapt(X, LABELS, class_weight={9: 5.0})
    np.testing.assert_array_equal(weights(pipeline), np.ones(6))


@pytest.mark.parametrize(
    "y",
    [[LABELS, LABELS], (LABELS,), {"out": LABELS}],
    ids=["list", "one-tuple", "dict"],
)
def test_multi_output_targets_are_a_value_error(y: Any) -> None:
    kind = "dict" if isinstance(y, dict) else "list"
    with pytest.raises(
        ValueError,
        match=rf"(?s)^`adapt` got one `class_weight` map for targets `y` given as a {kind} of "
        rf"{len(y)} target\(s\)\..*Received: y=.*, class_weight=\{{0: 0.5, 1: 2.0\}} "
        r"\(of type dict\)$",
    ):
        fitpipe.adapt(X, y, class_weight=CLASS_WEIGHT)


def test_multi_output_tf_data_is_a_value_error() -> None:
    dataset = tf.data.Dataset.from_tensor_slices((X, (LABELS, LABELS))).batch(4)
    with pytest.raises(ValueError, match="given as a list of 2 target"):
        fitpipe.adapt(dataset, class_weight=CLASS_WEIGHT)


def _two_output_trainer(as_dict: bool) -> fitpipe.Trainer:
    inputs = keras.Input((2,))
    outputs = {
        "o1": keras.layers.Dense(4, activation="softmax", name="o1")(inputs),
        "o2": keras.layers.Dense(1, name="o2")(inputs),
    }
    trainer = fitpipe.Trainer(keras.Model(inputs, outputs if as_dict else list(outputs.values())))
    losses = {"o1": "sparse_categorical_crossentropy", "o2": "mse"}
    trainer.compile("sgd", losses if as_dict else list(losses.values()))
    return trainer


def _one_output_trainer() -> fitpipe.Trainer:
    inputs = keras.Input((2,))
    outputs = keras.layers.Dense(4, activation="softmax", name="out")(inputs)
    trainer = fitpipe.Trainer(keras.Model(inputs, outputs))
    trainer.compile("sgd", "sparse_categorical_crossentropy")
    return trainer


@pytest.mark.parametrize("class_weight", [CLASS_WEIGHT, "balanced"])
@pytest.mark.parametrize("as_dict", [True, False], ids=["dict-y", "list-y"])
def test_flat_map_for_several_outputs_suggests_the_per_output_map(
    class_weight: Any, as_dict: bool
) -> None:
    """The message names y's form and the outputs, and its per-output map trains."""
    trainer = _two_output_trainer(as_dict)
    reg = np.ones((6, 1), "float32")
    y: Any = {"o1": LABELS, "o2": reg} if as_dict else [LABELS, reg]
    kind = "dict" if as_dict else "list"
    with pytest.raises(
        ValueError,
        match=rf"(?s)^`fit` got one `class_weight` map for targets `y` given as a {kind} of 2 "
        r"target\(s\)\..*a map per output name, e\.g\. `class_weight=\{'o1': .*\(the outputs: "
        r"'o1', 'o2'\).*Received: y=.*, class_weight=",
    ):
        trainer.fit(X, y, class_weight=class_weight, verbose=0)
    history = trainer.fit(X, y, class_weight={"o1": class_weight}, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("wrap", [lambda t: {"out": t}, lambda t: [t]], ids=["dict", "list"])
def test_flat_map_for_one_wrapped_target_suggests_the_array(wrap: Any) -> None:
    """One output's targets in a dict or list (Keras refuses): the fix is the array itself."""
    trainer = _one_output_trainer()
    with pytest.raises(
        ValueError,
        match=r"(?s)of 1 target\(s\)\..*Pass the target array itself as `y`, not in a "
        r"(dict|list)\. Received: y=.*, class_weight=\{0: 0\.5, 1: 2\.0\} \(of type dict\)$",
    ):
        trainer.fit(X, wrap(LABELS), class_weight=CLASS_WEIGHT, verbose=0)
    history = trainer.fit(X, LABELS, class_weight=CLASS_WEIGHT, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "x",
    [X, tf.data.Dataset.from_tensor_slices(X).batch(2)],
    ids=["arrays", "tf.data"],
)
def test_class_weight_without_targets_is_a_value_error(x: Any) -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got `class_weight` without targets"):
        fitpipe.adapt(x, class_weight=CLASS_WEIGHT)


def test_check_class_weight_and_table() -> None:
    assert check_class_weight({np.int64(2): 1}, "fit") == {2: 1.0}
    table = class_weight_table({0: 0.5, 3: 4.0})
    np.testing.assert_array_equal(table.numpy(), [0.5, 1.0, 1.0, 4.0])
    with pytest.raises(ValueError, match=r"^`fit` got class -2 .* non-negative"):
        check_class_weight({-2: 1.0}, "fit")


def _generator_batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, 6, 3):
        yield X[start : start + 3], LABELS[start : start + 3]


@pytest.mark.parametrize(
    "make_input",
    [
        _generator_batches,
        lambda: tf.data.Dataset.from_tensor_slices((X, LABELS)).batch(3),
        lambda: ArrayPyDataset(X, LABELS, None, batch_size=3),
    ],
    ids=["generator", "tf.data", "pydataset"],
)
def test_class_weight_on_batched_inputs_warns_nothing(make_input: Any) -> None:
    # TensorFlow warns "The `deterministic` argument has no effect unless ..." when a map
    # without parallel calls is asked to be deterministic: fitpipe's own pipeline never does.
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline = fitpipe.adapt(make_input(), class_weight=CLASS_WEIGHT)
        found = weights(pipeline)
    np.testing.assert_array_equal(found, EXPECTED)
    assert [str(w.message) for w in caught] == []


# ------------------------------------------------- "balanced" and per-output maps (issue 18)

IMBALANCED = np.array([0] * 7 + [1] * 2 + [2] * 3 + [4] * 1, dtype="int64")  # no class 3
X13 = np.arange(26, dtype="float32").reshape(13, 2)


def sklearn_balanced(labels: np.ndarray) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.unique(labels)
    found = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, found, strict=True)}


@pytest.mark.parametrize(
    "y",
    [
        IMBALANCED,
        IMBALANCED[:, None],
        IMBALANCED.astype("float32"),
        np.eye(5, dtype="float32")[IMBALANCED],
    ],
    ids=["sparse", "sparse-column", "sparse-float", "one-hot"],
)
def test_balanced_matches_scikit_learn(y: np.ndarray) -> None:
    pipeline = fitpipe.adapt(X13, y, class_weight="balanced", batch_size=5)
    expected = sklearn_balanced(IMBALANCED)
    assert pipeline.class_weight is not None
    assert pipeline.class_weight.resolved == pytest.approx(expected)
    assert pipeline.class_weight.balanced_rows == 13
    np.testing.assert_allclose(weights(pipeline), [expected[c] for c in IMBALANCED], rtol=1e-6)


@given(st.lists(st.integers(0, 6), min_size=1, max_size=60))
def test_balanced_weights_are_scikit_learns(labels: list[int]) -> None:
    y = np.array(labels, dtype="int64")
    assert balanced_weights(class_counts(y)) == pytest.approx(sklearn_balanced(y))


def test_balanced_multiplies_sample_weight() -> None:
    sw = np.linspace(0.5, 2.0, 13).astype("float32")
    pipeline = fitpipe.adapt(X13, IMBALANCED, sw, class_weight="balanced", batch_size=4)
    expected = sklearn_balanced(IMBALANCED)
    product = sw * np.array([expected[c] for c in IMBALANCED], dtype="float32")
    np.testing.assert_allclose(weights(pipeline), product, rtol=1e-6)


@pytest.mark.parametrize(
    "make_input",
    [
        _generator_batches,
        lambda: tf.data.Dataset.from_tensor_slices((X, LABELS)).batch(3),
        lambda: ArrayPyDataset(X, LABELS, None, batch_size=3),
    ],
    ids=["generator", "tf.data", "pydataset"],
)
def test_balanced_for_batched_inputs_is_a_value_error(make_input: Any) -> None:
    with pytest.raises(
        ValueError,
        match=r'^`adapt` cannot compute `class_weight="balanced"` for this input\. .*'
        r"compute_class_weight.* Received: class_weight=",
    ):
        fitpipe.adapt(make_input(), class_weight="balanced")


def test_other_strings_are_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got the string 'balance' as `class_weight`"):
        fitpipe.adapt(X, LABELS, class_weight="balance")


def test_streamed_parquet_counts_the_target_column(tmp_path: Any, monkeypatch: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fitpipe import limits

    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # stream it
    labels = np.tile(IMBALANCED, 5)
    table = pa.table({"a": np.arange(65.0), "y": labels})
    for i, start in enumerate((0, 40)):
        pq.write_table(table.slice(start, 40), tmp_path / f"p{i}.parquet", row_group_size=16)
    schema = fitpipe.Schema(["a"], "y")
    pipeline = fitpipe.adapt(str(tmp_path), schema=schema, class_weight="balanced", batch_size=8)
    assert not isinstance(pipeline.source, fitpipe.adapters.ArraySource)
    assert pipeline.class_weight is not None
    assert pipeline.class_weight.resolved == pytest.approx(sklearn_balanced(labels))
    assert pipeline.class_weight.balanced_rows == 65
    found = epoch_batches(pipeline)
    expected = sklearn_balanced(labels)
    np.testing.assert_allclose(
        np.concatenate([b[2] for b in found]),
        [expected[int(c)] for c in np.concatenate([b[1] for b in found])],
        rtol=1e-6,
    )


TWO_TARGETS = {"a": IMBALANCED, "b": np.eye(3, dtype="float32")[IMBALANCED % 3]}


def test_per_output_maps_weigh_each_target() -> None:
    sw = np.full(13, 2.0, "float32")
    pipeline = fitpipe.adapt(
        X13, TWO_TARGETS, sw, class_weight={"b": {0: 3.0, 2: 0.5}}, batch_size=13
    )
    (batch,) = epoch_batches(pipeline)
    np.testing.assert_array_equal(batch[2]["a"], sw)  # no map: the sample weights alone
    np.testing.assert_array_equal(batch[2]["b"], sw * np.array([3.0, 1.0, 0.5])[IMBALANCED % 3])


def test_per_output_balanced_and_maps() -> None:
    pipeline = fitpipe.adapt(
        X13, TWO_TARGETS, class_weight={"a": "balanced", "b": {1: 4.0}}, batch_size=6
    )
    expected = sklearn_balanced(IMBALANCED)
    assert pipeline.class_weight is not None
    assert pipeline.class_weight.resolved == {"a": pytest.approx(expected), "b": {1: 4.0}}
    found = epoch_batches(pipeline)
    np.testing.assert_allclose(
        np.concatenate([b[2]["a"] for b in found]), [expected[c] for c in IMBALANCED], rtol=1e-6
    )
    np.testing.assert_array_equal(
        np.concatenate([b[2]["b"] for b in found]), np.where(IMBALANCED % 3 == 1, 4.0, 1.0)
    )


def test_per_output_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(
        ValueError,
        match=r"^`adapt` got `class_weight` for the unknown output 'bb' \(did you mean 'b'\?\)",
    ):
        fitpipe.adapt(X13, TWO_TARGETS, class_weight={"bb": {0: 1.0}})


def test_per_output_list_targets_need_output_names() -> None:
    with pytest.raises(ValueError, match=r"unknown output 'a'"):
        fitpipe.adapt(X13, [IMBALANCED, IMBALANCED], class_weight={"a": {0: 2.0}})


def test_per_output_value_that_is_not_a_map_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"got 2\.0 for the output 'b' in a per-output"):
        fitpipe.adapt(X13, TWO_TARGETS, class_weight={"a": {0: 1.0}, "b": 2.0})


@pytest.mark.parametrize("form", ["arrays", "tf.data", "generator", "per-output"])
@pytest.mark.parametrize("given", [False, True])
def test_class_weights_are_made_in_floatx(form: str, given: bool) -> None:
    """Under a float64 floatx the weights stay float64 (exact), as Keras makes them."""
    x = np.zeros((4, 2))
    y = np.array([0, 1, 0, 1])
    sw = np.full(4, 1 / 3)
    parts = (x, y, sw) if given else (x, y)
    table: dict[Any, Any] = {0: 1 / 3, 1: 1 / 7}
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        if form == "arrays":
            pipeline = fitpipe.adapt(*parts, batch_size=4, class_weight=table)
        elif form == "tf.data":
            data = tf.data.Dataset.from_tensor_slices(parts).batch(4)
            pipeline = fitpipe.adapt(data, class_weight=table)
        elif form == "generator":
            pipeline = fitpipe.adapt(iter([parts]), class_weight=table)
        else:
            y_dict = {"a": y, "b": y}
            w_dict = {"a": sw, "b": sw} if given else None
            pipeline = fitpipe.adapt(
                {"x": x}, y_dict, w_dict, batch_size=4, class_weight={"a": table}
            )
        found = tf.nest.flatten(epoch_batches(pipeline)[0][2])
    finally:
        keras.config.set_floatx(previous)
    want = np.array([table[c] for c in y]) * (sw if given else 1.0)
    assert found[0].dtype == tf.float64
    np.testing.assert_array_equal(np.asarray(found[0]), want)


@pytest.mark.parametrize("scale", [10.3, 0.5, 1e-3])
@pytest.mark.parametrize("column", [False, True], ids=["rank-1", "column"])
def test_balanced_refuses_continuous_float_targets(scale: float, column: bool) -> None:
    """Floats with a fractional part are no class indices (they were rounded before)."""
    y = (LABELS * scale + 0.25 * scale).astype("float32")
    y = y[:, None] if column else y
    with pytest.raises(
        ValueError,
        match=r'^`adapt` cannot count the classes for `class_weight="balanced"`: the target at '
        r"row 0 is .*, not a class index\..*Leave `class_weight` out for continuous targets.*"
        r"Received: y=6 target\(s\) with a fractional part.*\(of type ndarray\)$",
    ):
        fitpipe.adapt(X, y, class_weight="balanced")
    fitpipe.adapt(X, y)  # the fix: no class weights
    fitpipe.adapt(X, LABELS.astype("float32"), class_weight="balanced")  # whole floats stay
