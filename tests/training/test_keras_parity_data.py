"""Differential tests: what reaches the model's step, and how much of the input is read.

Keras is the oracle for targets checked against the compiled loss, optional inputs given as
``None``, ragged predictions, floats cast to ``keras.config.floatx()``, and the debugging caps
``keras.config.set_max_epochs`` / ``set_max_steps_per_epoch``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from differential import regression_data

import fitpipe
from fitpipe.errors import DataMismatchError, FitpipeWarning
from fitpipe.testing.keras_diff import assert_structures_close, compile_both, make_twins, run_both

X, Y = regression_data(n=32, d=3)

# ------------------------------------------------------------------- targets and the loss


def _three_outputs() -> keras.Model:
    inputs = keras.Input((3,))
    outputs = [keras.layers.Dense(1, name=f"out{i}")(inputs) for i in range(3)]
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "loss",
    [[None, "mse", None], ["mae", None, None], [None, "mse", "mae"]],
    ids=["middle", "first", "last-two"],
)
def test_targets_match_the_outputs_that_have_a_loss(loss: list[str | None]) -> None:
    # Before: "got 1 target array(s) for a model with 3 outputs".
    given = [i for i, one in enumerate(loss) if one is not None]
    targets = [Y * (i + 1) for i in given]
    y = targets[0] if len(targets) == 1 else targets
    run_both(
        _three_outputs,
        {"optimizer": "sgd", "loss": loss},
        {"x": X, "y": y, "batch_size": 8, "epochs": 2},
        eval_kwargs={"x": X, "y": y, "batch_size": 8},
    )


class OwnLoss(keras.Model):
    """A functional model whose ``compute_loss`` reads two targets for its one output."""

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        return tf.reduce_mean(tf.square(y_pred - y[0])) + 0.5 * tf.reduce_mean(y[1] * y_pred)


def test_no_target_check_when_compute_loss_is_overridden() -> None:
    # Before: "got 2 target array(s) for a model with 1 outputs".
    def build() -> keras.Model:
        inputs = keras.Input((3,))
        return OwnLoss(inputs, keras.layers.Dense(1)(inputs))

    run_both(
        build,
        {"optimizer": "sgd", "loss": "mse"},
        {"x": X, "y": (Y, Y * 0.5), "batch_size": 8, "epochs": 2},
    )


def test_too_few_targets_for_the_loss_is_still_refused() -> None:
    ref, twin = make_twins(_three_outputs)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": [None, "mse", "mse"]})
    with pytest.raises(ValueError):
        ref.fit(X, [Y, Y, Y, Y], verbose=0)
    with pytest.raises(ValueError, match=r"got 4 target array\(s\).*3 or 2"):
        api.fit(X, [Y, Y, Y, Y], verbose=0)


# -------------------------------------------------------------------------- optional inputs


class AddOptional(keras.layers.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x: Any, o: Any = None) -> Any:
        return self.dense(x if o is None else x + o)


def _optional_model(names: tuple[str, str] = ("x", "o")) -> keras.Model:
    # `names`: the input layers' names; the dict's keys are "x" and "o" either way, and
    # Keras feeds a dict `x` by those keys (with a UserWarning when the names differ).
    x = keras.Input((2,), name=names[0])
    o = keras.Input((2,), name=names[1], optional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return keras.Model({"x": x, "o": o}, AddOptional()(x, o))


XO = np.linspace(0.0, 1.0, 24, dtype="float32").reshape(12, 2)
YO = np.cos(XO)


def _optional_batches(o: Any, with_y: bool = True) -> Iterator[tuple[Any, ...]]:
    for start in range(0, 12, 4):
        x = {"x": XO[start : start + 4], "o": None if o is None else o[start : start + 4]}
        yield (x, YO[start : start + 4]) if with_y else (x,)


@pytest.mark.parametrize("names", [("x", "o"), ("feature", "extra")], ids=["named", "keyed"])
@pytest.mark.parametrize("given", [False, True], ids=["none", "array"])
@pytest.mark.parametrize("form", ["dict-of-arrays", "generator"])
def test_optional_inputs_given_none(form: str, given: bool, names: tuple[str, str]) -> None:
    # Before: the dict was refused ("found no adapter") and the generator's None leaf too
    # ("arrays have different ranks or no batch dimension"). "keyed": input layers named
    # otherwise than the dict's keys; before, None for "o" was refused as not optional.
    o = XO * 0.5 if given else None

    def fit_kwargs(side: str) -> dict[str, Any]:
        if form == "generator":
            return {"x": _optional_batches(o), "epochs": 1}
        return {"x": {"x": XO, "o": o}, "y": YO, "batch_size": 4, "epochs": 2}

    res = run_both(
        lambda: _optional_model(names),
        {"optimizer": "sgd", "loss": "mse", "jit_compile": True},
        fit_kwargs,
        check_params=form != "generator",  # a generator's length is unknown
    )
    ref, api = res.ref, res.api
    x = {"x": XO, "o": o}
    assert_structures_close(ref.predict(x, verbose=0), api.predict(x, verbose=0), "predict")
    assert_structures_close(
        ref.evaluate(_optional_batches(o), verbose=0),
        api.evaluate(_optional_batches(o), verbose=0),
        "evaluate",
    )
    assert_structures_close(
        ref.predict(_optional_batches(o, with_y=False), verbose=0),
        api.predict(_optional_batches(o, with_y=False), verbose=0),
        "predict(generator)",
    )
    batch = {"x": XO[:4], "o": None if o is None else o[:4]}
    assert_structures_close(
        ref.train_on_batch(batch, YO[:4]), api.train_on_batch(batch, YO[:4]), "train_on_batch"
    )
    assert_structures_close(ref.predict_on_batch(batch), api.predict_on_batch(batch), "on_batch")


# -------------------------------------------------------------------------- ragged outputs


class DoubleLayer(keras.layers.Layer):
    def call(self, x: Any) -> Any:
        return x * 2


def _ragged_model() -> keras.Model:
    inputs = keras.Input((None,), ragged=True, dtype="int32")
    return keras.Model(inputs, DoubleLayer()(inputs))


RAGGED = tf.ragged.constant([[1], [2, 3], [4, 5, 6], [7], [], [8, 9]])


def _zero_loss(y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
    return 0.0


@pytest.mark.parametrize("batch_size", [1, 2, 4, 32])
def test_predict_returns_ragged_outputs_as_keras(batch_size: int) -> None:
    # Before: the outputs of the steps of a call could not be concatenated.
    ref, twin = make_twins(_ragged_model)
    api = compile_both(ref, twin, {"optimizer": "adam", "loss": _zero_loss})
    expected = ref.predict(RAGGED, batch_size=batch_size, verbose=0)
    got = api.predict(RAGGED, batch_size=batch_size, verbose=0)
    assert isinstance(expected, tf.RaggedTensor) and isinstance(got, tf.RaggedTensor)
    assert got.to_list() == expected.to_list()
    on_batch = api.predict_on_batch(RAGGED)
    assert isinstance(on_batch, tf.RaggedTensor)
    assert on_batch.to_list() == ref.predict_on_batch(RAGGED).to_list()


# ------------------------------------------------------------------------------ floatx


class DtypeRecorder(keras.Model):
    """Records the dtypes its ``train_step`` is given (at trace time)."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen: list[list[str]] = []

    def call(self, x: Any) -> Any:
        if isinstance(x, dict):
            x = tf.concat([tf.cast(v, self.compute_dtype) for v in x.values()], axis=-1)
        return self.dense(x)

    def train_step(self, data: Any) -> Any:
        self.seen.append([t.dtype.name for t in tf.nest.flatten(data)])
        return super().train_step(data)


def _input(form: str, dtype: str) -> tuple[Any, Any, Any]:
    x, y, w = X.astype(dtype), Y.astype(dtype), np.ones(len(X), dtype)
    if form == "dict":
        return {"a": x[:, :1], "b": x[:, 1:]}, y, w
    if form == "tensor":
        return tf.constant(x), tf.constant(y), tf.constant(w)
    if form == "pandas":
        return pd.DataFrame(x), pd.Series(y[:, 0]), w
    return x, y, w


_FLOAT_CASES = [
    *[
        (form, dtype, "float32")
        for form in ("numpy", "dict", "tensor", "pandas", "tf.data", "generator")
        for dtype in ("float16", "float64")
    ],
    ("numpy", "float32", "float64"),
    ("tf.data", "float32", "float64"),
]


@pytest.mark.parametrize(("form", "dtype", "floatx"), _FLOAT_CASES)
def test_floats_reach_the_step_as_keras_casts_them(form: str, dtype: str, floatx: str) -> None:
    # Keras casts floats of arrays, tensors and frames to floatx (its array adapter) and passes
    # tf.data and generators through; fitpipe casts per batch in the step. Before: fitpipe
    # never cast.
    x, y, w = _input(form, dtype)
    previous = keras.config.floatx()
    keras.config.set_floatx(floatx)
    try:
        ref, twin = make_twins(lambda: _dtype_model(x))
        api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
        for model in (ref, api):
            if form == "tf.data":
                model.fit(tf.data.Dataset.from_tensor_slices((x, y, w)).batch(8), verbose=0)
            elif form == "generator":
                model.fit(((x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)), verbose=0)
            else:
                model.fit(x, y, sample_weight=w, batch_size=8, verbose=0)
    finally:
        keras.config.set_floatx(previous)
    assert twin.seen[:1] == ref.seen[:1]


def _dtype_model(x: Any) -> keras.Model:
    model = DtypeRecorder()
    model(x if not isinstance(x, pd.DataFrame) else x.to_numpy())
    return model


class MixedLoss(keras.Model):
    """Its ``compute_loss`` subtracts raw targets from float32 predictions."""

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        return tf.reduce_mean(tf.square(y - y_pred))


def test_float64_targets_meet_a_custom_loss_in_floatx() -> None:
    # Before: "Input 'y' of 'Sub' Op has type float32 that does not match type float64".
    def build() -> keras.Model:
        inputs = keras.Input((3,))
        return MixedLoss(inputs, keras.layers.Dense(1)(inputs))

    x64, y64 = X.astype("float64"), Y.astype("float64")
    res = run_both(
        build,
        {"optimizer": "sgd"},
        {"x": x64, "y": y64, "batch_size": 8, "epochs": 2},
        eval_kwargs={"x": x64, "y": y64, "batch_size": 8},
        predict_x=x64,
    )
    # Keras 3.15 casts arrays for fit but not for `*_on_batch`, and neither does fitpipe (a
    # float64 model's rows stay float64 there): this loss then meets float64 targets in both.
    with pytest.raises(TypeError) as keras_error:
        res.ref.train_on_batch(x64[:8], y64[:8])
    with pytest.raises(TypeError) as error:
        res.api.train_on_batch(x64[:8], y64[:8])
    assert str(keras_error.value).split("\n")[0] in str(error.value)


# ----------------------------------------------------------------------- debugging caps


@pytest.fixture
def caps() -> Iterator[Callable[[int | None, int | None], None]]:
    def set_caps(epochs: int | None, steps: int | None) -> None:
        keras.config.set_max_epochs(epochs)
        keras.config.set_max_steps_per_epoch(steps)

    yield set_caps
    set_caps(None, None)


@pytest.mark.parametrize(("max_epochs", "max_steps"), [(2, 3), (None, 2), (1, None), (5, 50)])
def test_max_epochs_and_steps_per_epoch_cap_every_method(
    caps: Callable[[int | None, int | None], None], max_epochs: int | None, max_steps: int | None
) -> None:
    # Before: ignored (4 epochs of 4 steps ran).
    def build() -> keras.Model:
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

    begun: dict[str, list[int]] = {"keras": [], "fitpipe": []}

    def fit_kwargs(side: str) -> dict[str, Any]:
        callback = keras.callbacks.LambdaCallback(
            on_train_batch_begin=lambda batch, logs=None: begun[side].append(batch)
        )
        return {
            "x": X,
            "y": Y,
            "batch_size": 8,
            "epochs": 4,
            "validation_data": (X, Y),
            "callbacks": [callback],
        }

    caps(max_epochs, max_steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(
            build,
            {"optimizer": "sgd", "loss": "mse"},
            fit_kwargs,
            eval_kwargs={"x": X, "y": Y, "batch_size": 8},
            predict_x=X,
        )
    assert begun["fitpipe"] == begun["keras"]
    # As Keras, any step cap warns: an epoch without a step count gets the cap as its count.
    capped = (max_epochs or 9) < 4 or max_steps is not None
    limiting = [w for w in caught if issubclass(w.category, FitpipeWarning)]
    assert any("Limiting" in str(w.message) for w in limiting) == capped


def test_capped_steps_keep_the_batch_size(caps: Callable[[int | None, int | None], None]) -> None:
    # Keras' documentation: the setting caps "the number of steps for single epoch". Keras 3.15
    # also shrinks the default batch size of arrays to spread all rows over those steps (32
    # rows in 2 steps of 16); fitpipe keeps the documented default of 32.
    caps(None, 2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    rows = np.zeros((100, 3), "float32")
    from fitpipe import Trainer

    trainer = Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.warns(FitpipeWarning, match="Limiting steps"):
        assert trainer.predict(rows, verbose=0).shape == (64, 1)


def _two_outputs() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    return keras.Model(
        inputs,
        [keras.layers.Dense(3, name="cls")(inputs), keras.layers.Dense(2, name="reg")(inputs)],
    )


def test_dict_targets_by_unknown_names_are_refused_naming_the_outputs() -> None:
    # Before: Keras' "Expected float32, but got klass of type 'str'" from inside the step.
    trainer = fitpipe.Trainer(_two_outputs())
    trainer.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"])
    y = {"klass": np.zeros((X.shape[0],)), "regr": np.zeros((X.shape[0], 2))}
    with pytest.raises(
        DataMismatchError,
        match=r"names of no model output \(\['klass', 'regr'\]\).*\['cls', 'reg'\].*"
        r"Received: y=dict with keys",
    ):
        trainer.fit(X, y, verbose=0)


@pytest.mark.parametrize(
    ("y", "received"),
    [
        ([np.zeros((16,))], r"Received: y=1 target array\(s\)$"),
        ([np.zeros((16,)), np.zeros((16, 3))], r"Received: y=targets of shape \(\w+, 3\)$"),
    ],
    ids=["count", "width"],
)
def test_target_mismatches_label_what_was_received_y(y: list[Any], received: str) -> None:
    # Before: "Received: x=1 target array(s) in y" (the targets labelled x).
    trainer = fitpipe.Trainer(_two_outputs())
    trainer.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(DataMismatchError, match=received):
        trainer.fit(X[:16], y, verbose=0)
