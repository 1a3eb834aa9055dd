"""Error behaviour documented by fitpipe (some of it deliberately unlike Keras)."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator

import numpy as np
import pytest
import tensorflow as tf
from differential import dense_model, regression_data

import fitpipe
import fitpipe.errors
from fitpipe.testing.keras_diff import compile_both, make_twins

X, Y = regression_data(n=64, d=4)

Batch = collections.namedtuple("Batch", ["x", "y"])


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_training_before_compile_raises_runtime_error(method: str) -> None:
    model = dense_model(d=4)
    trainer = fitpipe.Trainer(model)
    with pytest.raises(RuntimeError):
        getattr(trainer, method)(X, Y)
    # Keras refuses too (with a ValueError), so no weights changed anywhere.
    with pytest.raises(ValueError, match="compile"):
        getattr(model, method)(X, Y)
    # and code written for Keras' error catches fitpipe's
    with pytest.raises(ValueError, match="needs a compiled model"):
        getattr(trainer, method)(X, Y)


def test_an_unknown_keyword_of_evaluate_is_a_value_error_as_in_keras() -> None:
    model = dense_model(d=4)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Arguments not recognized"):
        model.evaluate(X, Y, steps_per_epoch=1, verbose=0)
    with pytest.raises(
        fitpipe.errors.FitpipeValueError,
        match=r"^`evaluate` got unexpected keyword argument 'steps_per_epoch'\. `evaluate` takes",
    ):
        fitpipe.Trainer(model).evaluate(X, Y, steps_per_epoch=1, verbose=0)


@pytest.mark.parametrize("verbose", [False, True])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_verbose_may_be_a_bool_as_in_keras(
    method: str, verbose: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, twin = make_twins(lambda: dense_model(d=4))
    compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    args = (X,) if method == "predict" else (X, Y)
    want = getattr(ref, method)(*args, verbose=verbose)
    keras_printed = capsys.readouterr().out
    got = getattr(fitpipe.Trainer(twin), method)(*args, verbose=verbose)
    printed = capsys.readouterr().out
    assert bool(printed) == bool(keras_printed) == verbose
    if method == "fit":
        assert got.params["verbose"] == want.params["verbose"]


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_not_compiled_error_says_what_failed_what_was_expected_and_how_to_fix(method: str) -> None:
    trainer = fitpipe.Trainer(dense_model(d=4))
    with pytest.raises(
        fitpipe.errors.NotCompiledError,
        match=(
            rf"^`{method}` needs a compiled model\. `compile` sets the optimizer, loss and "
            rf"metrics that training and evaluation use\. Call `compile\(optimizer=\.\.\., "
            rf"loss=\.\.\.\)` before `{method}`\.$"
        ),
    ) as info:
        getattr(trainer, method)(X, Y)
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, fitpipe.errors.FitpipeError)


def test_fitpipe_sequential_fit_before_compile_raises_runtime_error() -> None:
    model = dense_model(d=4, cls=fitpipe.Sequential)
    with pytest.raises(RuntimeError):
        model.fit(X, Y, verbose=0)


def test_wrong_feature_width_names_shapes() -> None:
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    wide = np.zeros((16, 5), "float32")
    with pytest.raises(ValueError) as keras_err:
        ref.fit(wide, Y[:16], verbose=0)
    with pytest.raises(ValueError) as got:
        api.fit(wide, Y[:16], verbose=0)
    message = str(got.value)
    assert re.search(r"expected", message, re.IGNORECASE), message
    assert re.search(r"receiv", message, re.IGNORECASE), message
    assert re.search(r"\b4\b", message) and re.search(r"\b5\b", message), message
    assert "expected axis -1 of input shape to have value 4" in str(keras_err.value)


def _namedtuple_batches() -> Iterator[Batch]:
    for i in range(0, len(X), 16):
        yield Batch(X[i : i + 16], Y[i : i + 16])


def test_namedtuple_from_generator_raises() -> None:
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    with pytest.raises(ValueError, match="namedtuple"):
        api.fit(_namedtuple_batches(), epochs=1, verbose=0)
    # Keras 3 itself silently accepts it; fitpipe deliberately does not.
    ref.fit(_namedtuple_batches(), epochs=1, verbose=0)


def test_namedtuple_from_dataset_raises() -> None:
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(16).map(lambda x, y: Batch(x, y))
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    with pytest.raises(ValueError, match="namedtuple"):
        api.fit(ds, epochs=1, verbose=0)


@pytest.mark.parametrize("split", [1.5, 1.0, -0.1])
def test_validation_split_out_of_range(split: float) -> None:
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    before = [w.copy() for w in twin.get_weights()]
    with pytest.raises(ValueError, match="validation_split"):
        api.fit(X, Y, validation_split=split, verbose=0)
    for a, b in zip(before, twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_error_classes_subclass_builtins() -> None:
    assert issubclass(fitpipe.errors.FitpipeValueError, ValueError)
    assert issubclass(fitpipe.errors.FitpipeTypeError, TypeError)


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_an_input_of_no_batch_is_shown_as_the_user_gave_it(method: str) -> None:
    """Not as the name of the adapter that took it (``x='tf.data' (of type str)``)."""
    trainer = fitpipe.Trainer(dense_model(d=4))
    trainer.compile("sgd", "mse")
    empty = tf.data.Dataset.from_tensor_slices((X[:0], Y[:0])).batch(8)
    with pytest.raises(
        fitpipe.errors.FitpipeValueError,
        match=rf"^`{method}` .*at least one batch.*Received: x=<_BatchDataset .*"
        r"\(of type _BatchDataset\)$",
    ):
        getattr(trainer, method)(empty, verbose=0)


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (np.int32(-3), "-3 (of type int32)"),
        (np.float64(2.5), "2.5 (of type float64)"),
        (np.array(4), "4 (of type ndarray)"),
        (np.zeros((2, 3), "float32"), "array of shape (2, 3) and dtype float32 (of type ndarray)"),
        (tf.zeros((2,)), "array of shape (2,) and dtype float32 (of type EagerTensor)"),
    ],
)
def test_a_numpy_scalar_is_received_as_its_value(value: object, described: str) -> None:
    # It read "array of shape () and dtype int32": a count of -3 did not say -3.
    assert fitpipe.errors.describe(value) == described
