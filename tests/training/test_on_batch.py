"""Differential tests of ``train_on_batch``, ``test_on_batch`` and ``predict_on_batch``.

What the ``*_on_batch`` methods hand the model's steps, and the checks before them, against
Keras' methods of those names.
"""

from __future__ import annotations

from typing import Any

import keras
import ml_dtypes  # noqa: F401  (NumPy's bfloat16 for tf)
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from test_weight_shapes import CASES, _data, _documented, _model, _weights

from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_structures_close, compile_both, make_twins

ROWS = 6
RNG = np.random.default_rng(0)
# the dtypes NumPy arrays have that TensorFlow takes (bfloat16 only as a tensor: see r05)
_DTYPES = ["float16", "float32", "float64", "bfloat16", "int32", "int64", "uint8", "bool"]


class StepRecorder(keras.Model):
    """Records the dtypes of the batches its steps are given (at trace time).

    Its steps run Keras' own on the batch cast to float32, so any dtype trains.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen: list[Any] = []

    def call(self, x: Any) -> Any:
        return self.dense(tf.cast(x, "float32"))

    def _record(self, data: Any) -> Any:
        self.seen.append([t.dtype.name for t in tf.nest.flatten(data) if t is not None])
        return tf.nest.map_structure(lambda t: t if t is None else tf.cast(t, "float32"), data)

    def train_step(self, data: Any) -> Any:
        return super().train_step(self._record(data))

    def test_step(self, data: Any) -> Any:
        return super().test_step(self._record(data))

    def predict_step(self, data: Any) -> Any:
        return super().predict_step(self._record(data))


def _recorder() -> keras.Model:
    model = StepRecorder()
    model.build((None, 2))
    return model


def _tensor(values: np.ndarray, dtype: str) -> Any:
    if dtype == "bfloat16":  # fitpipe refuses NumPy bfloat16 arrays (r05); tensors pass
        return tf.cast(tf.constant(values.astype("float32")), tf.bfloat16)
    return values.astype(dtype)


@settings(deadline=None, max_examples=10)
@given(
    x_dtype=st.sampled_from(_DTYPES),
    y_dtype=st.sampled_from(_DTYPES),
    w_dtype=st.sampled_from([None, *_DTYPES]),
    floatx=st.sampled_from(["float32", "float64"]),
)
def test_on_batch_steps_get_the_batch_in_its_own_dtypes_as_in_keras(
    x_dtype: str, y_dtype: str, w_dtype: str | None, floatx: str
) -> None:
    """Keras casts floats to floatx only in ``fit``/``evaluate``/``predict``'s array adapter.

    Its ``*_on_batch`` hand the steps the batch as given. Before: fitpipe cast every float
    leaf of such a batch to floatx.
    """
    x = _tensor(RNG.integers(0, 2, (ROWS, 2)), x_dtype)
    y = _tensor(RNG.integers(0, 2, (ROWS, 1)), y_dtype)
    w = None if w_dtype is None else _tensor(RNG.integers(1, 3, ROWS), w_dtype)
    previous = keras.config.floatx()
    keras.config.set_floatx(floatx)
    try:
        ref, twin = make_twins(_recorder)
        api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
        for model in (ref, api):
            model.train_on_batch(x, y, sample_weight=w)
            model.test_on_batch(x, y, sample_weight=w)
            model.predict_on_batch(x)
    finally:
        keras.config.set_floatx(previous)
    # Keras hands (x, y, None) and (x,): the dtypes of the leaves given are compared
    assert twin.seen == ref.seen
    assert_structures_close(ref.get_weights(), twin.get_weights(), "weights")


def _float64_model() -> keras.Model:
    inputs = keras.Input((1,), dtype="float64")
    shifted = keras.layers.Lambda(lambda t: (t - 1.0) * 1e9, dtype="float64")(inputs)
    dense = keras.layers.Dense(1, dtype="float64", kernel_initializer="ones")
    return keras.Model(inputs, dense(shifted))


@pytest.mark.parametrize("method", ["predict", "test", "train"])
def test_float64_model_on_batch_sees_float64_rows_as_in_keras(method: str) -> None:
    """Rows 1e-9 apart (float64) reach a float64 model unrounded. Before: rounded to float32."""
    x = np.array([[1.0 + 1e-9], [1.0 + 2e-9], [1.0 + 3e-9], [1.0 - 1e-9]])
    y = np.array([[1.0], [2.0], [3.0], [-1.0]])
    ref, twin = make_twins(_float64_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    if method == "predict":
        expected, got = ref.predict_on_batch(x), api.predict_on_batch(x)
    else:
        expected = getattr(ref, f"{method}_on_batch")(x, y)
        got = getattr(api, f"{method}_on_batch")(x, y)
        assert got < 1e-6  # the float32-rounded rows gave 3.75
    assert_structures_close(expected, got, f"{method}_on_batch")


# ------------------------------------------------------------------ sample_weight shapes


def _keras_on_batch(method: str, case: str, steps: int, x: Any, y: Any, w: Any) -> Any:
    """Keras' ``*_on_batch`` loss with weights ``w``, or None where Keras fails."""
    loss, temporal, _ = CASES[case]
    model = _model(loss, temporal, steps, trainer=False)
    try:
        return getattr(model, f"{method}_on_batch")(x, y, sample_weight=w), model
    except (ValueError, tf.errors.InvalidArgumentError):
        return None, model


def _keras_weighs_right(method: str, case: str, steps: int, x: Any, y: Any, w: Any) -> Any:
    """Keras' result on ``w`` where that is the documented weighing, else None."""
    got, model = _keras_on_batch(method, case, steps, x, y, w)
    values = tuple(keras.losses.get(CASES[case][0])(y, model(x)).shape)
    documented = _documented(w, values)
    if got is None or documented is None:
        return None
    reference, _ = _keras_on_batch(method, case, steps, x, y, documented)
    return (got, model) if np.allclose(got, reference, rtol=1e-5) else None


@settings(max_examples=16, deadline=None)
@given(
    case=st.sampled_from(["mse", "mse-flat", "sparse", "mse-steps", "sparse-steps"]),
    steps=st.sampled_from([3, 8]),  # steps == rows: where Keras broadcasts (8,) wrongly
    kind=st.sampled_from(["sample", "step", "wide"]),
    trailing=st.integers(0, 2),
    method=st.sampled_from(["train", "test"]),
)
def test_on_batch_weight_shapes_train_or_are_refused_as_fit_refuses_them(
    case: str, steps: int, kind: str, trailing: int, method: str
) -> None:
    """Weights Keras cannot weigh one to one are refused as ``fit``/``evaluate`` refuse them.

    Where Keras weighs right, the results are Keras'. Before: ``*_on_batch`` trained on
    Keras' wrong broadcast, or failed inside TensorFlow ("Dimensions must be equal").
    """
    x, y = (part[:8] for part in _data(case, steps))
    w = _weights(kind, steps, trailing)[:8]
    expected = _keras_weighs_right(method, case, steps, x, y, w)
    loss, temporal, _ = CASES[case]
    trainer = _model(loss, temporal, steps, trainer=True)
    if expected is not None:
        got = getattr(trainer, f"{method}_on_batch")(x, y, sample_weight=w)
        assert_structures_close(expected[0], got, f"{method}_on_batch")
        assert_structures_close(expected[1].get_weights(), trainer.model.get_weights(), "w")
        return
    _refused_as_fit_refuses(trainer, method, x, y, w)


def _refused_as_fit_refuses(api: Any, method: str, x: Any, y: Any, w: Any) -> None:
    """``{method}_on_batch`` refuses the batch with ``fit``'s (or ``evaluate``'s) message."""
    fit = api.fit if method == "train" else api.evaluate
    with pytest.raises(DataMismatchError) as refused:
        fit(x, y, sample_weight=w, batch_size=8, verbose=0)
    with pytest.raises(DataMismatchError) as on_batch:
        getattr(api, f"{method}_on_batch")(x, y, sample_weight=w)
    caller = "`fit`" if method == "train" else "`evaluate`"
    assert str(on_batch.value) == str(refused.value).replace(caller, f"`{method}_on_batch`", 1)


def test_on_batch_weights_missing_an_output_are_refused_as_fit_refuses_them() -> None:
    """A ``sample_weight`` dict without an output's weights: ``fit``'s message, not a KeyError.

    Keras' ``train_on_batch`` fails too (a ``KeyError``).
    """
    ref, twin = make_twins(_two_outputs)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": {"a": "mse", "b": "mse"}})
    x, y = RNG.normal(size=(8, 3)), {name: RNG.normal(size=(8, 1)) for name in "ab"}
    w = {"a": RNG.random(8)}
    with pytest.raises(KeyError):
        ref.train_on_batch(x, y, sample_weight=w)
    for method in ("train", "test"):
        _refused_as_fit_refuses(api, method, x, y, w)
    assert_structures_close(ref.get_weights(), twin.get_weights(), "weights")


def _two_outputs() -> keras.Model:
    inputs = keras.Input((3,))
    outputs = {name: keras.layers.Dense(1, name=name)(inputs) for name in "ab"}
    return keras.Model(inputs, outputs)


# ------------------------------------------------------------ a failed trace, then a call


def _token_model() -> keras.Model:
    inputs = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(embedded))


def test_train_on_batch_after_a_failed_fit_reports_its_own_error() -> None:
    """A per-token model with ``metrics=["mse"]`` on sparse labels: every trace fails.

    ``train_on_batch`` after the failed ``fit`` raises what it raises alone, noted as its own.
    (Keras 3.15 returns ``[]`` there.) Before: "replace() should be called on dataclass
    instances", noted as raised by ``fit``.
    """
    ids = RNG.integers(1, 10, size=(16, 6)).astype("int32")
    y = RNG.integers(0, 4, size=(16, 6)).astype("int32")
    errors = []
    for failed_fit in (False, True):
        _, twin = make_twins(_token_model)
        api = compile_both(
            twin,
            twin,
            {"optimizer": "sgd", "loss": "sparse_categorical_crossentropy", "metrics": ["mse"]},
        )
        if failed_fit:
            with pytest.raises(ValueError):
                api.fit(ids, y, batch_size=8, verbose=0)
        with pytest.raises(ValueError) as raised:
            api.train_on_batch(ids[:8], y[:8])
        errors.append(raised.value)
    alone, after = errors
    assert "Dimensions must be equal" in str(after)
    assert str(after).split(" for ")[0] == str(alone).split(" for ")[0]
    assert "`train_on_batch` traced it" in "\n".join(getattr(after, "__notes__", []))


# ------------------------------------------------------------------ the step's batch


class StructureRecorder(StepRecorder):
    """Records how the batches its steps are given nest, ``None`` leaves included."""

    def _record(self, data: Any) -> Any:
        self.seen.append(str(tf.nest.map_structure(lambda t: "None" if t is None else "*", data)))
        return tf.nest.map_structure(lambda t: t if t is None else tf.cast(t, "float32"), data)


def _structure_recorder() -> keras.Model:
    model = StructureRecorder()
    model.build((None, 2))
    return model


@settings(deadline=None, max_examples=12)
@given(
    method=st.sampled_from(["train_on_batch", "test_on_batch", "fit", "evaluate"]),
    weights=st.sampled_from(["none", "sample_weight", "class_weight"]),
)
def test_steps_get_the_batch_nested_as_in_keras(method: str, weights: str) -> None:
    """Keras' ``train_on_batch``/``test_on_batch`` hand the step ``(x, y, sample_weight)``.

    ``sample_weight`` is None where not given; ``fit`` and ``evaluate`` hand ``(x, y)`` then.
    Before: fitpipe's ``*_on_batch`` handed ``(x, y)``, so a custom ``train_step`` that
    unpacks three parts failed under fitpipe only.
    """
    if weights == "class_weight" and method in ("test_on_batch", "evaluate"):
        weights = "none"  # no class weights there
    x = RNG.normal(size=(ROWS, 2)).astype("float32")
    y = RNG.integers(0, 2, (ROWS, 1)).astype("float32")
    kwargs: dict[str, Any] = {
        "none": {},
        "sample_weight": {"sample_weight": RNG.uniform(0.5, 2, ROWS).astype("float32")},
        "class_weight": {"class_weight": {0: 1.0, 1: 2.0}},
    }[weights]
    if method in ("fit", "evaluate"):
        kwargs.update(batch_size=ROWS, verbose=0)
    ref, twin = make_twins(_structure_recorder)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    getattr(ref, method)(x, y, **kwargs)
    getattr(api, method)(x, y, **kwargs)
    assert twin.seen == ref.seen
    assert_structures_close(ref.get_weights(), twin.get_weights(), "weights")
