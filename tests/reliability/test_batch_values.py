"""Sparse labels outside the model's classes and non-finite sample weights are errors.

Under XLA such a batch gives a NaN loss and NaN weights (Keras without XLA raises on the label
and accepts the weight). fitpipe checks outside the compiled step: rows in memory once before
the first step (the weights are then untouched), streamed batches as they pass (the bad batch
never reaches a step), and the batch of ``*_on_batch`` before its step. Every path: in-memory
rows, generators, ``PyDataset``, ``tf.data``, validation data, ``evaluate``, ``*_on_batch``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings

import fitpipe
from fitpipe.errors import DataCheckWarning, FitpipeError

ROWS, BATCH, CLASSES = 16, 4, 3
X = np.linspace(0.0, 1.0, ROWS * 4, dtype="float32").reshape(ROWS, 4)


def labels(bad_row: int | None = None, bad: float = 5, dtype: str = "int64") -> np.ndarray:
    y = (np.arange(ROWS) % CLASSES).astype(dtype)
    if bad_row is not None:
        y[bad_row] = bad
    return y


def weights(bad_row: int | None = None, bad: float = np.nan) -> np.ndarray:
    w = np.ones(ROWS, "float32")
    if bad_row is not None:
        w[bad_row] = bad
    return w


def trainer(jit: bool = True, loss: Any = "sparse_categorical_crossentropy") -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(CLASSES, activation="softmax")])
    result = fitpipe.Trainer(model)
    result.compile(optimizer="sgd", loss=loss, jit_compile=jit)
    return result


class Rows(keras.utils.PyDataset):
    def __init__(self, parts: tuple[np.ndarray, ...]) -> None:
        super().__init__()
        self.parts = parts

    def __len__(self) -> int:
        return ROWS // BATCH

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        return tuple(p[index * BATCH : (index + 1) * BATCH] for p in self.parts)


def forms(parts: tuple[np.ndarray, ...]) -> dict[str, Callable[[], dict[str, Any]]]:
    """The same rows as every input form ``fit`` takes."""

    def generator() -> Any:
        for i in range(ROWS // BATCH):
            yield tuple(p[i * BATCH : (i + 1) * BATCH] for p in parts)

    arrays = dict(zip(("x", "y", "sample_weight"), parts, strict=False))
    return {
        "arrays": lambda: {**arrays, "batch_size": BATCH, "shuffle": False},
        "generator": lambda: {"x": generator()},
        # In order: the value checks name a batch by its position in the epoch (callbacks'
        # batch number), and a shuffled PyDataset is read in a new order every epoch.
        "pydataset": lambda: {"x": Rows(parts), "shuffle": False},
        "tf.data": lambda: {"x": tf.data.Dataset.from_tensor_slices(parts).batch(BATCH)},
    }


FORMS = ["arrays", "generator", "pydataset", "tf.data"]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def expect_error(err: BaseException, rel: Any, caller: str, what: str, where: str) -> None:
    rel.check_clear_error(err, caller, (), what, where)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bad", [5, -1])
def test_a_label_outside_the_classes_is_an_error_naming_it(form: str, bad: int, rel: Any) -> None:
    model = trainer()
    before = model.model.get_weights()
    with pytest.raises(FitpipeError) as caught:
        model.fit(**forms((X, labels(9, bad)))[form](), epochs=2, verbose=0)
    where = "row 9" if form == "arrays" else "batch index 2"
    expect_error(caught.value, rel, "fit", rf"label {bad} in {where}.*\[0, 3\)", str(bad))
    after = model.model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    if form == "arrays":  # checked before the first step: nothing trained
        assert same(before, after)


@pytest.mark.parametrize(
    ("form", "bad"),
    [("arrays", np.nan), ("generator", np.inf), ("pydataset", -np.inf), ("tf.data", np.nan)],
)
def test_a_non_finite_sample_weight_is_an_error_naming_it(form: str, bad: float, rel: Any) -> None:
    model = trainer()
    before = model.model.get_weights()
    with pytest.raises(FitpipeError) as caught:
        model.fit(**forms((X, labels(), weights(6, bad)))[form](), verbose=0)
    where = "row 6" if form == "arrays" else "batch index 1"
    expect_error(caught.value, rel, "fit", rf"non-finite sample weight {bad} in {where}", "")
    after = model.model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    if form == "arrays":
        assert same(before, after)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bad", [1e300, -1e39])
def test_a_float64_sample_weight_beyond_float32_is_an_error_naming_it(
    form: str, bad: float, rel: Any
) -> None:
    """Finite in float64, infinite once cast to floatx: the loss would be inf, then NaN."""
    model = trainer()
    before = model.model.get_weights()
    w = weights().astype("float64")
    w[6] = bad
    with pytest.raises(FitpipeError) as caught:
        model.fit(**forms((X, labels(), w))[form](), verbose=0)
    where = "row 6" if form == "arrays" else "batch index 1"
    what = f"sample weight {bad:g}, which the cast to float32 makes infinite, in {where}"
    expect_error(caught.value, rel, "fit", re.escape(what), "")
    assert all(np.isfinite(w).all() for w in model.model.get_weights())
    if form == "arrays":
        assert same(before, model.model.get_weights())


@pytest.mark.parametrize("form", FORMS)
def test_evaluate_and_validation_data_are_checked_too(form: str, rel: Any) -> None:
    model = trainer()
    data = forms((X, labels(13, 7)))[form]()
    data.pop("shuffle", None)
    with pytest.raises(FitpipeError, match=r"^`evaluate` got the label 7 in"):
        model.evaluate(**data, verbose=0)
    validation = forms((X, labels(), weights(2, np.inf)))[form]()
    if form == "arrays":
        validation = {"x": (validation["x"], validation["y"], validation["sample_weight"])}
    with pytest.raises(FitpipeError, match=r"^`fit` got the non-finite sample weight inf"):
        model.fit(X, labels(), validation_data=validation["x"], verbose=0)


@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch"])
def test_on_batch_methods_check_before_the_step(method: str, rel: Any) -> None:
    model = trainer()
    before = model.model.get_weights()
    with pytest.raises(FitpipeError, match=rf"^`{method}` got the label 4 in the batch"):
        getattr(model, method)(X, labels(0, 4))
    with pytest.raises(FitpipeError, match=rf"^`{method}` got the non-finite sample weight"):
        getattr(model, method)(X, labels(), sample_weight=weights(3))
    assert same(before, model.model.get_weights())


def test_ignore_class_and_float_labels_and_other_losses(rel: Any) -> None:
    ignoring = keras.losses.SparseCategoricalCrossentropy(ignore_class=-1)
    history = trainer(loss=ignoring).fit(X, labels(4, -1), batch_size=BATCH, verbose=0)
    assert np.isfinite(history.history["loss"]).all()  # the ignored class is a valid label
    with pytest.raises(FitpipeError, match=r"label 3\.5 in row 1.*or the ignored class -1"):
        trainer(loss=ignoring).fit(X, labels(1, 3.5, "float32"), verbose=0)
    one_hot = np.eye(CLASSES, dtype="float32")[labels()]
    one_hot[0, 0] = 7.0  # not sparse labels: no class range applies (the pre-flight check warns)
    with pytest.warns(DataCheckWarning, match=r"1 rows of 'y' do not sum to 1 \(first: row 0\)"):
        history = trainer(loss="categorical_crossentropy").fit(X, one_hot, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_two_outputs_name_the_output(rel: Any) -> None:
    a = keras.Input((4,))
    first = keras.layers.Dense(CLASSES, activation="softmax", name="kind")(a)
    second = keras.layers.Dense(1, name="size")(a)
    model = fitpipe.Trainer(keras.Model(a, [first, second]))
    model.compile(optimizer="sgd", loss={"kind": "sparse_categorical_crossentropy", "size": "mse"})
    sizes = np.full((ROWS, 1), 50.0, "float32")  # far outside [0, 3): not a class output
    model.fit(X, {"kind": labels(), "size": sizes}, verbose=0)
    with pytest.raises(FitpipeError, match=r"label 3 in row 5 of the targets of output 'kind'"):
        model.fit(X, {"kind": labels(5, 3), "size": sizes}, verbose=0)


_SHARED: dict[str, Any] = {}  # one model for every example


@settings(max_examples=8, deadline=None)
@given(
    row=st.integers(0, ROWS - 1),
    bad=st.sampled_from([-3, -1, 3, 4, 100]),
    dtype=st.sampled_from(["int32", "int64", "float32"]),
    weight=st.sampled_from([1.0, np.nan, np.inf]),
)
def test_any_bad_value_anywhere_in_a_stream_is_found(
    row: int, bad: int, dtype: str, weight: float
) -> None:
    # The mechanism itself, on the batches as they pass (no training: fast examples).
    from fitpipe.training.batch_checks import BatchChecks

    model = _SHARED.get("model") or _SHARED.setdefault("model", trainer())
    w = weights(ROWS - 1 - row, weight)
    dataset = tf.data.Dataset.from_tensor_slices((X, labels(row, bad, dtype), w)).batch(BATCH)
    checks = BatchChecks.for_model(model.model, dataset.element_spec, "fit")
    assert checks is not None
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        for _ in checks.on_dataset(dataset, 0):
            pass
    error = checks.error_of(caught.value)
    assert error is not None
    label_batch, weight_batch = row // BATCH, (ROWS - 1 - row) // BATCH
    if np.isfinite(weight) or label_batch <= weight_batch:
        first = rf"label {bad} in batch index {label_batch}\b"
    else:
        first = rf"sample weight {weight} in batch index {weight_batch}\b"
    assert re.search(first, str(error)), str(error)
