"""The loop's value check finds, among many leaves, what the rules find one at a time.

``check_rules.first_broken`` judges the finite rules of leaves sharing a dtype together (one
reduction for 100 float inputs, not 100). For any rules over leaves of mixed dtypes, sizes
(none empty or some) and bad values (NaN, infinities, labels out of range) anywhere, it must
report what a check of each rule in turn reports: whether any rule is broken, the first
broken rule in order and its first bad value.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.testing.strategies import numeric_dtypes
from fitpipe.training import check_rules
from fitpipe.training.check_rules import Rule, first_broken

_FLOATS = ["float16", "float32", "float64"]
#: float64 magnitudes from this one up are infinite in float32 (floatx's largest, half a step on)
_CAST_LIMIT = 2.0**128 - 2.0**103


@st.composite
def _rules_and_leaves(draw: st.DrawFn) -> tuple[list[Rule], list[np.ndarray]]:
    rows = draw(st.integers(0, 4))
    rules, leaves = [], []
    for number in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["input", "target", "weight", "label", "int weight"]))
        width = draw(st.integers(1, 3))
        if kind in ("label", "int weight"):
            values = np.array(draw(st.lists(st.integers(-2, 5), min_size=rows, max_size=rows)))
            leaf = values.astype(draw(st.sampled_from(["int32", "int64", "float32"])))
            rule = Rule(1, number, "labels", 3, draw(st.sampled_from([None, -1])), "loss")
            if kind == "int weight":
                rule = Rule(2, number, "weights")
        else:
            dtype = draw(st.sampled_from(_FLOATS))
            values = [0.5, -1.0, np.nan, np.inf, -np.inf]
            if dtype == "float64":  # and beyond float32's range, or just inside it
                values += [1e300, -_CAST_LIMIT, np.nextafter(_CAST_LIMIT, 0), -3.4e38]
            special = st.sampled_from(values)
            cells = draw(st.lists(special, min_size=rows * width, max_size=rows * width))
            leaf = np.array(cells, dtype).reshape(rows, width)
            part = {"input": 0, "target": 1, "weight": 2}[kind]
            mode = None if part == 2 else draw(st.sampled_from(["warn", "error"]))
            limit = check_rules.cast_limit(tf.as_dtype(dtype))
            rule = Rule(part, number, kind, finite=mode, limit=limit)
        rules.append(rule)
        leaves.append(leaf)
    return rules, leaves


#: How the leaves' shapes are known where ``first_broken`` runs: eagerly (every size), in a
#: graph of batches of any rows (each leaf's values a row known), or of any shape at all.
_KNOWN = ["eager", "rows unknown", "nothing known"]


@settings(deadline=None, max_examples=60)
@given(_rules_and_leaves(), st.sampled_from([1, 2, check_rules.JOIN_AT]), st.sampled_from(_KNOWN))
def test_the_first_broken_rule_is_the_one_each_rule_in_turn_finds(
    case: tuple[list[Rule], list[np.ndarray]], join_at: int, known: str
) -> None:
    with pytest.MonkeyPatch.context() as patch:  # joined from 1 leaf, 2, or as by default
        patch.setattr(check_rules, "JOIN_AT", join_at)
        _first_broken_as_each_rule_finds(*case, known)


def _first_broken_as_each_rule_finds(
    rules: list[Rule], arrays: list[np.ndarray], known: str
) -> None:
    leaves = [tf.constant(array) for array in arrays]
    want: Any = None
    for number, (rule, leaf) in enumerate(zip(rules, leaves, strict=True)):
        found, _, value = rule.problem(leaf)
        if bool(found):
            want = (number, float(value))
            break

    def judged(*values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        found, first = first_broken(rules, list(values))
        nothing = (tf.constant(-1, tf.int32), tf.constant(0.0, tf.float64))
        return (found, *tf.cond(found, first, lambda: nothing))

    if known != "eager":
        unknown = known == "nothing known"
        shapes = [[None] * a.ndim if unknown else [None, *a.shape[1:]] for a in arrays]
        specs = [tf.TensorSpec(shape, a.dtype) for shape, a in zip(shapes, arrays, strict=True)]
        judged = tf.function(judged, input_signature=specs)  # type: ignore[assignment]
    found, number, value = judged(*leaves)
    assert bool(found) == (want is not None)
    if want is not None:
        assert int(number) == want[0]
        np.testing.assert_equal(float(value), want[1])


def test_the_finite_rules_of_many_leaves_are_one_reduction() -> None:
    rules = [Rule(0, i, f"input {i}", finite="warn") for i in range(100)]
    leaves = [tf.TensorSpec([None, 1], tf.float32) for _ in rules]

    def check(*values: tf.Tensor) -> tf.Tensor:
        return first_broken(rules, list(values))[0]

    graph = tf.function(check).get_concrete_function(*leaves).graph
    reductions = [op for op in graph.get_operations() if op.type in ("All", "Any")]
    assert len(reductions) == 2  # the joined values' `All`, and `Any` over the groups
    reshapes = [op for op in graph.get_operations() if op.type == "Reshape"]
    assert len(reshapes) == 1  # rows of one shape: joined, then flattened once, not 100 times

    def branch(*values: tf.Tensor) -> Any:
        found, first = first_broken(rules, list(values))
        return tf.cond(found, first, lambda: (tf.constant(0), tf.constant(0.0, tf.float64)))

    graph = tf.function(branch).get_concrete_function(*leaves).graph
    (taken,) = [op for op in graph.get_operations() if op.type in ("If", "StatelessIf")]
    assert len(taken.inputs) < 5  # the joined values, not the 100 leaves (0.1 s of tracing)
    # ... where fewer than JOIN_AT leaves are judged one by one
    few = tf.function(lambda *v: first_broken(rules[:2], list(v))[0])
    graph = few.get_concrete_function(*leaves[:2]).graph
    assert "ConcatV2" not in {op.type for op in graph.get_operations()}


@pytest.mark.parametrize(
    ("extra", "waits"),
    [([], False), ([Rule(1, 0, "labels", 3, None, "loss")], True), ([Rule(2, 0, "w")], True)],
)
def test_the_step_waits_for_the_check_only_when_a_broken_rule_stops_training(
    extra: list[Rule], waits: bool
) -> None:
    """Under ``check="warn"`` a non-finite value is noted, not raised: nothing to wait for."""
    from fitpipe.training.batch_checks import BatchChecks

    rules = [Rule(0, i, f"input {i}", finite="warn") for i in range(3)] + extra
    checks = BatchChecks(rules, "fit")
    batch = ([tf.constant([[1.0]]) for _ in range(3)], tf.constant([1.0]), tf.constant([1.0]))

    @tf.function
    def guarded() -> Any:
        guard, found, _, _ = checks.graph_check(batch, tf.constant(0))
        return tf.constant(guard is not None), found

    waited, found = guarded()
    assert bool(waited) is waits
    assert not bool(found)


@st.composite
def _labels_of_any_dtype(draw: st.DrawFn) -> tuple[np.ndarray, int, int | None]:
    """Labels of any numeric dtype (as it holds them), a class count, an ignored class."""
    dtype = draw(numeric_dtypes())
    if dtype.kind in "biu":
        info = np.iinfo(dtype) if dtype.kind != "b" else np.iinfo(np.uint8)
        low, high = (0, 1) if dtype.kind == "b" else (max(info.min, -300), min(info.max, 300))
        values = draw(st.lists(st.integers(low, high), min_size=1, max_size=6))
    else:
        values = draw(st.lists(st.integers(-300, 300), min_size=1, max_size=6))
    labels = np.array(values).astype(dtype)  # (float8 rounds: the rule sees what it holds)
    return labels, draw(st.integers(1, 300)), draw(st.sampled_from([None, -1, 0, 4, 299]))


@settings(deadline=None, max_examples=80)
@given(_labels_of_any_dtype())
def test_label_rules_judge_labels_of_every_dtype_by_their_values(
    case: tuple[np.ndarray, int, int | None],
) -> None:
    """Booleans, unsigned, narrow and ml_dtypes labels: compared by value, in graph and NumPy.

    Compared in the leaf's dtype, a boolean label could not be compared with 0 (every
    ``fit`` of boolean labels with a sparse loss failed, even with ``check=False``), 300
    classes were 44 in uint8 and 257 became 256 in bfloat16.
    """
    labels, classes, ignore = case
    rule = Rule(1, 0, "labels", classes, ignore, "loss")
    held = [float(v) for v in labels.astype(np.float64)]
    bad = [v for v in held if not (0 <= v < classes or v == ignore)]
    found, _, value = rule.problem(tf.constant(labels))
    assert bool(found) == bool(bad)
    assert rule.numpy_problem(labels) == (bad[0] if bad else None)
    if bad:
        assert float(value) == bad[0]


def _sparse_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int16", "uint64", "float16"])
def test_sparse_labels_of_any_dtype_train_as_in_keras(dtype: str) -> None:
    """Boolean (and other) class labels: fit, evaluate and train_on_batch as Keras runs them."""
    import fitpipe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = np.array([0, 1, 1, 0] * 4).astype(dtype)
    want = _sparse_model().fit(x, y, batch_size=8, shuffle=False, verbose=0).history
    for check in ("error", False):
        trainer = fitpipe.Trainer(_sparse_model())
        got = trainer.fit(x, y, batch_size=8, shuffle=False, verbose=0, check=check).history
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
        assert got["accuracy"] == want["accuracy"]
    keras_model = _sparse_model()
    trainer = fitpipe.Trainer(_sparse_model())
    np.testing.assert_allclose(
        trainer.evaluate(x, y, verbose=0), keras_model.evaluate(x, y, verbose=0), rtol=1e-5
    )
    got_batch = trainer.train_on_batch(x[:8], y[:8])
    np.testing.assert_allclose(got_batch, keras_model.train_on_batch(x[:8], y[:8]), rtol=1e-5)


@settings(deadline=None, max_examples=80)
@given(
    st.lists(
        st.one_of(
            st.floats(width=64),
            st.sampled_from([_CAST_LIMIT, np.nextafter(_CAST_LIMIT, 0), 3.4e38, 1e39]),
        ),
        max_size=6,
    ).map(lambda cells: np.array(cells, "float64")),
    st.sampled_from([0, 1]),
)
def test_finite_rules_find_floats_the_cast_to_floatx_makes_infinite(
    values: np.ndarray, part: int
) -> None:
    """A float64 feature or target holds a value float32 cannot: found as NaN is, alike in
    the graph and in NumPy, and exactly where the cast overflows (what rounds to float32's
    largest value passes)."""
    (rule,) = check_rules.finite_rules((tf.TensorSpec([None], tf.float64),) * (part + 1), "warn")[
        part:
    ]
    assert rule.limit == _CAST_LIMIT
    with np.errstate(over="ignore"):
        cast = values.astype(np.float32)
    bad = [float(v) for v, c in zip(values, cast, strict=True) if not np.isfinite(c)]
    found, _, value = rule.problem(tf.constant(values))
    assert bool(found) == bool(bad)
    np.testing.assert_equal(rule.numpy_problem(values), bad[0] if bad else None)
    if bad:
        np.testing.assert_equal(float(value), bad[0])
    narrow = check_rules.finite_rules((tf.TensorSpec([None], tf.float32),), "warn")
    assert [r.limit for r in narrow] == [None]  # no cast, nothing beyond a range
