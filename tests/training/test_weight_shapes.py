"""``sample_weight`` shapes against the loss' values, in every input form, against Keras.

Keras weighs the values a loss returns (``(samples,)``, or ``(samples, steps)`` for temporal
outputs) by weights whose rank may differ by a trailing 1 (``keras.src.losses.loss``). With
other shapes it either fails in the step or broadcasts along the wrong axes and trains on a
wrong loss. The oracle here: Keras trained on the weights (arrays), and Keras trained on the
same weights in the documented shape (``(samples,)`` or ``(samples, sequence_length)``).
Where both agree fitpipe trains as Keras does; where Keras fails, or trains otherwise than on
the documented weights (a wrong broadcast), fitpipe refuses before any step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_histories_close, assert_weights_close
from fitpipe.training.weight_shapes import weights_fit

ROWS, BATCH = 16, 8
RNG = np.random.default_rng(0)
# case: (loss, temporal, target shape after the rows: "T" is the steps)
CASES = {
    "mse": ("mse", False, (1,)),
    "mse-flat": ("mse", False, ()),
    "sparse": ("sparse_categorical_crossentropy", False, ()),
    "sparse-column": ("sparse_categorical_crossentropy", False, (1,)),
    "mse-steps": ("mse", True, ("T", 1)),
    "mse-steps-flat": ("mse", True, ("T",)),
    "sparse-steps": ("sparse_categorical_crossentropy", True, ("T",)),
}


def _model(loss: str, temporal: bool, steps: int, trainer: bool) -> Any:
    keras.utils.set_random_seed(0)
    units, activation = (1, None) if loss == "mse" else (3, "softmax")
    shape = (steps, 2) if temporal else (3,)
    model = keras.Sequential([keras.Input(shape), keras.layers.Dense(units, activation)])
    target = fitpipe.Trainer(model) if trainer else model
    target.compile(optimizer="sgd", loss=loss)
    return target


def _data(case: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    loss, temporal, tail = CASES[case]
    x = RNG.normal(size=(ROWS, steps, 2) if temporal else (ROWS, 3)).astype("float32")
    shape = (ROWS, *(steps if d == "T" else d for d in tail))
    if loss == "mse":
        return x, RNG.normal(size=shape).astype("float32")
    return x, RNG.integers(0, 3, shape)


def _weights(kind: str, steps: int, trailing: int) -> np.ndarray:
    shape = {"sample": (ROWS,), "step": (ROWS, steps), "wide": (ROWS, 2)}[kind]
    return RNG.uniform(0.2, 2.0, (*shape, *(1,) * trailing)).astype("float32")


def _documented(weights: np.ndarray, values: tuple[int, ...]) -> np.ndarray | None:
    """The weights in the documented shape for loss values of shape ``values``, or None."""
    squeezed = weights.reshape(weights.shape[:1] + tuple(d for d in weights.shape[1:] if d != 1))
    if squeezed.ndim == 1:
        return squeezed if len(values) == 1 else squeezed[:, None]
    return squeezed if squeezed.shape == values else None


def _keras_fit(case: str, steps: int, x: Any, y: Any, weights: Any) -> Any:
    loss, temporal, _ = CASES[case]
    model = _model(loss, temporal, steps, trainer=False)
    try:
        history = model.fit(
            x, y, sample_weight=weights, batch_size=BATCH, epochs=1, shuffle=False, verbose=0
        )
    except (ValueError, tf.errors.InvalidArgumentError):
        return None, model
    return history, model


def _batches(x: Any, y: Any, weights: Any) -> Iterator[tuple[Any, Any, Any]]:
    for start in range(0, ROWS, BATCH):
        rows = slice(start, start + BATCH)
        yield x[rows], y[rows], weights[rows]


def _fit(trainer: fitpipe.Trainer, form: str, x: Any, y: Any, weights: Any) -> Any:
    kwargs: dict[str, Any] = {"epochs": 1, "verbose": 0, "shuffle": False}
    if form == "arrays":
        return trainer.fit(x, y, sample_weight=weights, batch_size=BATCH, **kwargs)
    if form == "generator":
        return trainer.fit(_batches(x, y, weights), **kwargs)
    data = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(BATCH)
    return trainer.fit(data, **kwargs)


def _keras_trains_right(case: str, steps: int, x: Any, y: Any, weights: Any) -> Any:
    """Keras' model trained on ``weights`` where that is the documented weighing, else None."""
    loss = CASES[case][0]
    got, model = _keras_fit(case, steps, x, y, weights)
    values = tuple(keras.losses.get(loss)(y, model.predict(x, verbose=0)).shape)
    documented = _documented(weights, values)
    if got is None or documented is None:
        return None
    reference, _ = _keras_fit(case, steps, x, y, documented)
    same = np.allclose(got.history["loss"], reference.history["loss"], rtol=1e-5)
    return (got, model) if same else None


@settings(max_examples=min(24, settings.default.max_examples), deadline=None)
@given(
    case=st.sampled_from(sorted(CASES)),
    steps=st.sampled_from([3, BATCH]),  # steps == batch size: where Keras broadcasts wrongly
    kind=st.sampled_from(["sample", "step", "wide"]),
    trailing=st.integers(0, 2),
    form=st.sampled_from(["arrays", "generator", "tf.data"]),
)
def test_weight_shapes_train_or_are_refused_as_in_keras(
    case: str, steps: int, kind: str, trailing: int, form: str
) -> None:
    x, y = _data(case, steps)
    weights = _weights(kind, steps, trailing)
    expected = _keras_trains_right(case, steps, x, y, weights)
    loss, temporal, _ = CASES[case]
    trainer = _model(loss, temporal, steps, trainer=True)
    if expected is None:
        with pytest.raises(DataMismatchError, match="`sample_weight` of shape"):
            _fit(trainer, form, x, y, weights)
        return
    got = _fit(trainer, form, x, y, weights)
    assert_histories_close(expected[0], got, check_params=form != "generator")
    assert_weights_close(expected[1], trainer.model)


@given(
    weights=st.lists(st.sampled_from([1, 3, 5]), min_size=1, max_size=4),
    values=st.lists(st.sampled_from([1, 3, 5]), min_size=1, max_size=3),
)
def test_weights_fit_is_a_broadcast_that_keeps_the_values_shape(
    weights: list[int], values: list[int]
) -> None:
    """Keras' own squeeze-or-expand, then a product that keeps each value to one weight."""
    from keras.src.losses.loss import squeeze_or_expand_to_same_rank

    v, w = squeeze_or_expand_to_same_rank(np.ones(values), np.ones(weights))
    try:
        product = np.broadcast_shapes(tuple(v.shape), tuple(w.shape))
    except ValueError:
        product = None
    one_to_one = product == tuple(v.shape) and len(v.shape) == len(w.shape)
    assert weights_fit(tuple(weights), tuple(values)) == one_to_one


def _token_model(trainer: bool) -> Any:
    keras.utils.set_random_seed(0)
    tokens = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(10, 3)(tokens)
    model = keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(embedded))
    target = fitpipe.Trainer(model) if trainer else model
    target.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return target


def _token_fit(trainer: fitpipe.Trainer, form: str, ids: Any, y: Any, **weighing: Any) -> Any:
    kwargs: dict[str, Any] = {"epochs": 1, "verbose": 0, "shuffle": False, **weighing}
    if form == "arrays":
        return trainer.fit(ids, y, batch_size=BATCH, **kwargs)
    if form == "train_on_batch":
        return trainer.train_on_batch(ids, y, class_weight=weighing.get("class_weight"))
    pairs = [(ids[i : i + BATCH], y[i : i + BATCH]) for i in range(0, ROWS, BATCH)]
    if form == "generator":
        return trainer.fit(iter(pairs), **kwargs)
    return trainer.fit(tf.data.Dataset.from_tensor_slices((ids, y)).batch(BATCH), **kwargs)


@settings(max_examples=min(12, settings.default.max_examples), deadline=None)
@given(
    form=st.sampled_from(["arrays", "generator", "tf.data", "train_on_batch"]),
    class_weight=st.sampled_from([{0: 1.0, 1: 5.0, 2: 0.5}, {"0": 2.0}, "balanced"]),
)
def test_class_weight_on_per_token_labels_is_refused_about_class_weight(
    form: str, class_weight: Any
) -> None:
    """Class weights are one per sample; per-token labels make a loss value per token.

    Keras fails in the step ("Dimensions must be equal"); fitpipe refuses before the step,
    about `class_weight` (not a `sample_weight` the user never passed), and says what to pass.
    """
    ids = RNG.integers(1, 10, (ROWS, 4)).astype("int32")
    y = RNG.integers(0, 3, (ROWS, 4)).astype("int32")
    if class_weight != "balanced":
        with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
            _token_model(trainer=False).fit(
                ids, y, class_weight=class_weight, batch_size=BATCH, verbose=0
            )
    trainer = _token_model(trainer=True)
    if form in ("generator", "tf.data") and class_weight == "balanced":
        return  # batches read once cannot be counted: refused earlier, by its own error
    with pytest.raises(DataMismatchError) as raised:
        _token_fit(trainer, form, ids, y, class_weight=class_weight)
    text = str(raised.value)
    assert "`class_weight`" in text and "per-token" in text
    assert "`sample_weight` of shape `(samples, sequence_length)`" in text
    assert "Received: class_weight=" in text
    assert "got `sample_weight` of shape" not in text


def test_per_token_weights_the_class_weight_error_suggests_train_as_in_keras() -> None:
    """The fix the message gives (each label's class weight as `sample_weight`) trains."""
    ids = RNG.integers(1, 10, (ROWS, 4)).astype("int32")
    y = RNG.integers(0, 3, (ROWS, 4)).astype("int32")
    weights = np.take(np.array([1.0, 5.0, 0.5], "float32"), y)
    kwargs: dict[str, Any] = {"batch_size": BATCH, "shuffle": False, "verbose": 0}
    keras_model = _token_model(trainer=False)
    expected = keras_model.fit(ids, y, sample_weight=weights, **kwargs)
    trainer = _token_model(trainer=True)
    got = trainer.fit(ids, y, sample_weight=weights, **kwargs)
    assert_histories_close(expected, got)
    assert_weights_close(keras_model, trainer.model)


def test_a_validation_weight_that_does_not_fit_names_fit_not_evaluate() -> None:
    """The refusal named `evaluate`, a method the user never called (a differential fuzzer)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 2)).astype("float32")
    y = rng.normal(size=(8, 4, 1)).astype("float32")
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((4, 2)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    validation = (x, y, np.ones(8, "float32"))  # one weight a sample, for (8, 4) loss values
    with pytest.raises(DataMismatchError, match=r"^`fit` got `sample_weight` of shape"):
        trainer.fit(x, y, validation_data=validation, batch_size=4, verbose=0)


SPARSE_FORMS: dict[str, Any] = {
    "scipy csr": scipy.sparse.csr_matrix,
    "scipy coo": scipy.sparse.coo_matrix,
    "tf.SparseTensor": tf.sparse.from_dense,
}
SPARSE_CALLS = ["fit", "evaluate", "train_on_batch", "test_on_batch", "tf.data", "generator"]


def _sparse_weight_call(call: str, trainer: Any, data: tuple[Any, Any, Any], form: str) -> None:
    """Runs ``call`` on ``data`` (x, y, dense weights) with the weights made sparse."""
    x, y, weights = data
    if call in ("tf.data", "generator"):
        parts = (x, y, tf.sparse.from_dense(weights))
        batches: Any = tf.data.Dataset.from_tensor_slices(parts).batch(BATCH)
        trainer.fit(iter(list(batches)) if call == "generator" else batches, verbose=0)
    elif call in ("fit", "evaluate"):
        sparse = SPARSE_FORMS[form](weights)
        getattr(trainer, call)(x, y, sample_weight=sparse, batch_size=BATCH, verbose=0)
    else:
        sparse = SPARSE_FORMS[form](weights[:BATCH])
        getattr(trainer, call)(x[:BATCH], y[:BATCH], sample_weight=sparse)


@pytest.mark.parametrize("call", SPARSE_CALLS)
@pytest.mark.parametrize("form", sorted(SPARSE_FORMS))
@pytest.mark.parametrize("case", ["mse", "sparse"])
def test_sparse_weights_are_refused_before_any_step(case: str, form: str, call: str) -> None:
    # Keras' loss fails on them whatever the loss ("Failed to convert elements of
    # SparseTensor(... compile_loss/mse/SparseReduceSumSparse ...)"), a raw TensorFlow error
    # naming graph tensors; before, fitpipe let the same error out of its step.
    x, y = _data(case, 1)
    weights = np.ones((ROWS, 1), "float32")
    weights[::3] = 0.0
    trainer = _model(CASES[case][0], False, 1, trainer=True)
    before = trainer.model.get_weights()
    with pytest.raises(DataMismatchError, match=r"got sparse `sample_weight`.*toarray\(\)"):
        _sparse_weight_call(call, trainer, (x, y, weights), form)
    for ours, start in zip(trainer.model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(ours, start)
    if call == "fit":
        reference = _model(CASES[case][0], False, 1, trainer=False)
        with pytest.raises(TypeError, match="SparseTensor"):  # Keras: a raw error in its step
            reference.fit(x, y, sample_weight=SPARSE_FORMS[form](weights), verbose=0)
