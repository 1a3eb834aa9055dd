"""Messages whose suggested fix is applied: the fix must work for the input that was refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe

X = np.random.default_rng(0).random((20, 4)).astype("float32")
Y = np.random.default_rng(1).random((20, 1)).astype("float32")
SW = np.ones(20, "float32")


def _dense() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


CALLS: dict[str, tuple[Callable[..., Any], Callable[..., Any], str]] = {
    # method: (call with the tuple as x, the suggested call, the call the message names)
    "fit": (
        lambda t, x: t.fit(x, verbose=0),
        lambda t, parts, sw=None: t.fit(*parts, sample_weight=sw, verbose=0),
        "fit",
    ),
    "evaluate": (
        lambda t, x: t.evaluate(x, verbose=0),
        lambda t, parts, sw=None: t.evaluate(*parts, sample_weight=sw, verbose=0),
        "evaluate",
    ),
    "train_on_batch": (
        lambda t, x: t.train_on_batch(x),
        lambda t, parts, sw=None: t.train_on_batch(*parts, sample_weight=sw),
        "train_on_batch",
    ),
    "test_on_batch": (
        lambda t, x: t.test_on_batch(x),
        lambda t, parts, sw=None: t.test_on_batch(*parts, sample_weight=sw),
        "test_on_batch",
    ),
}


@pytest.mark.parametrize("parts", [(X, Y), (X, Y, SW)], ids=["x-y", "x-y-sw"])
@pytest.mark.parametrize("wrap", [tuple, list])
@pytest.mark.parametrize("method", list(CALLS))
def test_tuple_given_as_x_suggests_separate_arguments(
    method: str, wrap: Callable[..., Any], parts: tuple[Any, ...]
) -> None:
    """Not a generator's batch: the advice is to pass the parts as arguments, and it works."""
    refused, suggested, name = CALLS[method]
    trainer = _dense()
    args = ", ".join(["x", "y", "sample_weight"][: len(parts)])
    call = args.replace("sample_weight", "sample_weight=sample_weight")
    with pytest.raises(
        fitpipe.errors.DataMismatchError,
        match=rf"^`{name}` got {len(parts)} input array\(s\) for a model with 1 input\(s\)\..*"
        rf"A tuple or list given as `x` is read as the model's inputs, not split into "
        rf"`\({args}\)`.*call `{name}\({call}\)`, each as its own argument\. Received: x=",
    ) as raised:
        refused(trainer, wrap(parts))
    assert "yield or return" not in str(raised.value)
    suggested(trainer, parts[:2], *parts[2:])


@pytest.mark.parametrize("wrap", [tuple, list])
@pytest.mark.parametrize("method", ["predict", "predict_on_batch"])
def test_tuple_given_as_x_to_predict_suggests_the_inputs_alone(
    method: str, wrap: Callable[..., Any]
) -> None:
    """Keras predicts on the first array of ``predict((x, y))`` with a warning; fitpipe says so."""
    trainer = _dense()
    call = getattr(trainer, method)
    kwargs = {"verbose": 0} if method == "predict" else {}
    with pytest.raises(
        fitpipe.errors.DataMismatchError,
        match=rf"^`{method}` got 2 input array\(s\).*A tuple or list given as `x` is read as the "
        rf"model's inputs.*call `{method}\(x\)` with the inputs alone \(Keras warns and predicts "
        r"on the first array\)\. Received: x=",
    ):
        call(wrap((X, Y)), **kwargs)
    assert np.shape(call(X, **kwargs)) == (20, 1)


LABELS = np.arange(20) % 2
NAMES = ("o1", "o2", "o3")
LOSSES = {"o1": "sparse_categorical_crossentropy", "o2": "mse", "o3": "mse"}


def _three_outputs(loss: dict[str, Any], **compile_args: Any) -> fitpipe.Trainer:
    inputs = keras.Input((4,))
    outputs = {
        "o1": keras.layers.Dense(2, activation="softmax", name="o1")(inputs),
        "o2": keras.layers.Dense(1, name="o2")(inputs),
        "o3": keras.layers.Dense(1, name="o3")(inputs),
    }
    trainer = fitpipe.Trainer(keras.Model(inputs, outputs))
    trainer.compile(optimizer="sgd", loss=loss, **compile_args)
    return trainer


def _targets(names: Any) -> dict[str, Any]:
    return {name: LABELS if name == "o1" else Y for name in names}


@pytest.mark.parametrize("missing", [("o2",), ("o1",), ("o2", "o3")], ids=lambda m: "-".join(m))
def test_dict_y_without_an_output_with_a_loss_names_it(missing: tuple[str, ...]) -> None:
    """Refused before the first step, naming the outputs; both fixes it gives train."""
    trainer = _three_outputs(LOSSES)
    given = _targets(n for n in NAMES if n not in missing)
    shown = ", ".join(repr(n) for n in missing)
    with pytest.raises(
        fitpipe.errors.DataMismatchError,
        match=rf"^`fit` got targets `y` without the output\(s\) {shown}, compiled with a loss\. "
        rf".*Add the targets of {shown} to `y`, or compile .* without a loss .*"
        rf"Received: y=dict with keys \[.*\] \(of type dict\)$",
    ):
        trainer.fit(X, given, verbose=0)
    assert np.isfinite(trainer.fit(X, _targets(NAMES), verbose=0).history["loss"]).all()
    lossless = _three_outputs({**LOSSES, **dict.fromkeys(missing)})
    assert np.isfinite(lossless.fit(X, given, verbose=0).history["loss"]).all()


def test_dict_loss_naming_some_outputs_trains_without_the_others_targets() -> None:
    """Keras 3 trains a dict ``loss`` that leaves outputs out without their targets."""
    trainer = _three_outputs({"o1": LOSSES["o1"]})
    assert np.isfinite(trainer.fit(X, _targets(["o1"]), verbose=0).history["loss"]).all()


def test_dict_y_without_an_output_with_metrics_is_refused() -> None:
    """An output without a loss but with metrics needs its targets (Keras: KeyError)."""
    trainer = _three_outputs({"o1": LOSSES["o1"], "o2": None, "o3": None}, metrics={"o2": ["mae"]})
    with pytest.raises(
        fitpipe.errors.DataMismatchError, match=r"target of output 'o2', which is compiled with"
    ):
        trainer.fit(X, _targets(["o1"]), verbose=0)


@pytest.mark.parametrize("value", [2.0, 3, np.float32(0.5), np.asarray(2.0), True], ids=repr)
@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch", "fit"])
def test_scalar_sample_weight_suggests_one_weight_per_sample(method: str, value: Any) -> None:
    """The fix the message gives (an array from ``np.full``) is taken."""
    trainer = _dense()
    call = getattr(trainer, method)
    kwargs = {"verbose": 0} if method == "fit" else {}
    shown = re.escape(repr(value.item() if isinstance(value, np.generic | np.ndarray) else value))
    with pytest.raises(
        (TypeError, ValueError),
        match=rf"^`{method}` cannot (use|batch) the scalar `sample_weight`( as an array)?\..*"
        rf"e\.g\. `sample_weight=np\.full\(len\(x\), {shown}\)`\. Received: sample_weight=",
    ):
        call(X, Y, sample_weight=value, **kwargs)
    call(X, Y, sample_weight=np.full(len(X), value), **kwargs)


def _one_output(structure: str) -> keras.Model:
    inputs = keras.Input((4,))
    out = keras.layers.Dense(1, name="out")(inputs)
    outputs: Any = {"tensor": out, "list": [out], "dict": {"out": out}}[structure]
    return keras.Model(inputs, outputs)


DICT_Y_CALLS: dict[str, Callable[..., Any]] = {
    "fit": lambda t, y: t.fit(X, y, epochs=1, batch_size=5, shuffle=False, verbose=0),
    "evaluate": lambda t, y: t.evaluate(X, y, batch_size=5, verbose=0),
    "train_on_batch": lambda t, y: t.train_on_batch(X, y),
    "test_on_batch": lambda t, y: t.test_on_batch(X, y),
}


@pytest.mark.parametrize("call", sorted(DICT_Y_CALLS))
@pytest.mark.parametrize("structure", ["tensor", "list"])
def test_dict_y_for_a_model_of_one_output_suggests_the_array(call: str, structure: str) -> None:
    """Keras fails in its loss ("Expected float32, but got out of type 'str'")."""
    model = _one_output(structure)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    twin.compile(optimizer="sgd", loss="mse")
    with pytest.raises(
        ValueError, match=rf"^`{call}` got targets `y` as a dict for a model of one output"
    ) as caught:
        DICT_Y_CALLS[call](trainer, {"out": Y})
    fix = re.search(r"Pass the array itself, `(.+?)`", str(caught.value))
    assert fix is not None
    fixed = eval(fix.group(1), {"y": {"out": Y}})
    got = DICT_Y_CALLS[call](trainer, fixed)
    want = DICT_Y_CALLS[call](twin, Y)
    if call == "fit":
        got, want = got.history["loss"], want.history["loss"]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_dict_y_for_a_dict_output_is_taken() -> None:
    trainer = fitpipe.Trainer(_one_output("dict"))
    trainer.compile(optimizer="sgd", loss="mse")
    assert np.isfinite(trainer.evaluate(X, {"out": Y}, verbose=0))
