"""Differential tests: ``evaluate``, ``predict`` and the ``*_on_batch`` methods."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from differential import classification_data, dense_model, regression_data
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fitpipe.testing.keras_diff import (
    assert_evaluate_close,
    assert_predict_close,
    assert_structures_close,
    assert_weights_close,
    compile_both,
    make_twins,
)

X, Y = regression_data(n=96, d=4)
XC, LABELS = classification_data(n=96, d=6, classes=3)


def _reg() -> keras.Model:
    return dense_model(d=4)


def _dict_output_model() -> keras.Model:
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    return keras.Model(
        inp,
        {
            "reg": keras.layers.Dense(1, name="reg")(h),
            "cls": keras.layers.Dense(3, activation="softmax", name="cls")(h),
        },
    )


def _list_output_model() -> keras.Model:
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    return keras.Model(
        inp,
        [
            keras.layers.Dense(1, name="reg")(h),
            keras.layers.Dense(3, activation="softmax", name="cls")(h),
        ],
    )


Y_REG = XC[:, :1] * 2.0


def test_evaluate_scalar_for_single_output_without_metrics() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    got = api.evaluate(X, Y, verbose=0)
    assert isinstance(got, float), f"expected a Python float, got {type(got).__name__}: {got!r}"
    assert_evaluate_close(ref, api, {"x": X, "y": Y})
    assert api.evaluate(X, Y, verbose=0, return_dict=True).keys() == {"loss"}


def test_evaluate_list_with_metrics() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse", "metrics": ["mae", "mse"]})
    got = api.evaluate(X, Y, verbose=0)
    assert isinstance(got, list) and len(got) == 3
    assert_evaluate_close(ref, api, {"x": X, "y": Y, "batch_size": 10})


@pytest.mark.parametrize(
    "model_fn", [_list_output_model, _dict_output_model], ids=["list-outputs", "dict-outputs"]
)
def test_evaluate_multi_output(model_fn: Any) -> None:
    ref, twin = make_twins(model_fn)
    api = compile_both(
        ref,
        twin,
        {
            "optimizer": "sgd",
            "loss": {"reg": "mse", "cls": "sparse_categorical_crossentropy"},
            "metrics": {"cls": ["accuracy"]},
        },
    )
    y = {"reg": Y_REG, "cls": LABELS}
    assert_evaluate_close(ref, api, {"x": XC, "y": y})
    assert isinstance(api.evaluate(XC, y, verbose=0), list)


def test_evaluate_steps_and_sample_weight() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse", "weighted_metrics": ["mae"]})
    sw = np.linspace(0.0, 2.0, len(X)).astype("float32")
    assert_evaluate_close(ref, api, {"x": X, "y": Y, "sample_weight": sw})
    ds = tf.data.Dataset.from_tensor_slices((X, Y, sw)).batch(16).repeat()
    assert_evaluate_close(ref, api, {"x": ds, "steps": 3})
    full = api.evaluate(X, Y, verbose=0)
    partial = api.evaluate(X, Y, batch_size=16, steps=2, verbose=0)
    assert full != pytest.approx(partial)


@pytest.mark.parametrize("rows", [37, 96])
def test_predict_single_output(rows: int) -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    got = api.predict(X[:rows], batch_size=8, verbose=0)
    assert isinstance(got, np.ndarray)
    assert got.shape == (rows, 1)
    assert_predict_close(ref, api, X[:rows], batch_size=8)


def test_predict_steps() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    ds = tf.data.Dataset.from_tensor_slices(X).batch(8).repeat()
    assert api.predict(ds, steps=3, verbose=0).shape == (24, 1)
    assert_predict_close(ref, api, ds, steps=3)


@pytest.mark.parametrize(
    "model_fn", [_list_output_model, _dict_output_model], ids=["list-outputs", "dict-outputs"]
)
def test_predict_multi_output_structure(model_fn: Any) -> None:
    ref, twin = make_twins(model_fn)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    got = api.predict(XC[:37], batch_size=8, verbose=0)
    if model_fn is _dict_output_model:
        assert isinstance(got, dict) and set(got) == {"reg", "cls"}
        assert got["cls"].shape == (37, 3)
    else:
        assert isinstance(got, list) and [a.shape for a in got] == [(37, 1), (37, 3)]
    assert_predict_close(ref, api, XC[:37], batch_size=8)


@pytest.mark.parametrize("return_dict", [False, True])
def test_on_batch_methods(return_dict: bool) -> None:
    ref, twin = make_twins(lambda: dense_model(d=6, units=3, activation="softmax"))
    compile_kwargs = {
        "optimizer": "adam",
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    }
    api = compile_both(ref, twin, compile_kwargs)
    xb, yb = XC[:24], LABELS[:24]
    for _ in range(3):
        r = ref.train_on_batch(xb, yb, return_dict=return_dict)
        g = api.train_on_batch(xb, yb, return_dict=return_dict)
        assert_structures_close(r, g, "train_on_batch")
    assert_weights_close(ref, twin)
    sw = np.linspace(0.5, 1.5, 24).astype("float32")
    assert_structures_close(
        ref.train_on_batch(xb, yb, sample_weight=sw, return_dict=return_dict),
        api.train_on_batch(xb, yb, sample_weight=sw, return_dict=return_dict),
        "train_on_batch(sample_weight)",
    )
    cw = {0: 3.0, 1: 0.5, 2: 1.0}
    assert_structures_close(
        ref.train_on_batch(xb, yb, class_weight=cw, return_dict=return_dict),
        api.train_on_batch(xb, yb, class_weight=cw, return_dict=return_dict),
        "train_on_batch(class_weight)",
    )
    assert_weights_close(ref, twin)
    assert_structures_close(
        ref.test_on_batch(XC[24:48], LABELS[24:48], return_dict=return_dict),
        api.test_on_batch(XC[24:48], LABELS[24:48], return_dict=return_dict),
        "test_on_batch",
    )
    assert_structures_close(
        ref.test_on_batch(XC[24:48], LABELS[24:48], sample_weight=sw, return_dict=return_dict),
        api.test_on_batch(XC[24:48], LABELS[24:48], sample_weight=sw, return_dict=return_dict),
        "test_on_batch(sample_weight)",
    )
    assert_structures_close(
        ref.predict_on_batch(XC[:5]), api.predict_on_batch(XC[:5]), "predict_on_batch"
    )
    assert int(twin.optimizer.iterations) == 5


def test_on_batch_scalar_without_metrics() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    r, g = ref.train_on_batch(X[:16], Y[:16]), api.train_on_batch(X[:16], Y[:16])
    assert_structures_close(r, g, "train_on_batch")
    assert np.ndim(g) == 0
    assert_structures_close(
        ref.test_on_batch(X[:16], Y[:16]), api.test_on_batch(X[:16], Y[:16]), "test_on_batch"
    )


def test_predict_on_batch_multi_output() -> None:
    ref, twin = make_twins(_dict_output_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    assert_structures_close(
        ref.predict_on_batch(XC[:7]), api.predict_on_batch(XC[:7]), "predict_on_batch"
    )


_CALL = st.tuples(st.sampled_from(["train", "test", "predict"]), st.sampled_from([1, 5, 8]))


@settings(deadline=None, max_examples=12)
@given(st.lists(st.tuples(_CALL, st.booleans()), min_size=1, max_size=8))
@example([(("train", 1), False), (("train", 1), True), (("train", 1), False)])
def test_on_batch_calls_of_any_batch_match_keras_and_look_up_a_trace_once_a_spec(
    calls: list[tuple[tuple[str, int], bool]],
) -> None:
    """A step keeps the trace of its last batch's spec for the next batch: never another's.

    Batches of 1, 5 and 8 rows, with and without sample weights, in any order of
    ``train_on_batch``, ``test_on_batch`` and ``predict_on_batch``: the results are Keras'
    at every call, and each step looks its trace up only when the spec changes. A weighted
    batch has one leaf more (other ranks), so it runs a step of its own, with its own last
    trace.
    """
    from fitpipe.training.steps import StepFunction

    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]})
    looked_up: list[int] = []
    trace = StepFunction._trace
    want, last = 0, dict[str, int]()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            StepFunction, "_trace", lambda self, *a: looked_up.append(1) or trace(self, *a)
        )
        for (mode, rows), weighted in calls:
            key = (rows, weighted and mode != "predict")
            step = f"{mode}+weights" if key[1] else mode
            want += last.get(step) != rows
            last[step] = rows
            x, y = X[:rows], Y[:rows]
            weights = {"sample_weight": np.linspace(0.5, 1.5, rows)} if key[1] else {}
            if mode == "predict":
                got, expected = api.predict_on_batch(x), ref.predict_on_batch(x)
            else:
                got = getattr(api, f"{mode}_on_batch")(x, y, **weights)
                expected = getattr(ref, f"{mode}_on_batch")(x, y, **weights)
            assert_structures_close(expected, got, f"{mode}_on_batch of {key}")
    assert len(looked_up) == want
    assert_weights_close(ref, twin)
