"""Arguments Keras documents narrowly and takes widely: each is refused with a fitpipe error.

``validation_freq`` as a dict (read by its keys), ``return_dict`` that is no bool (``"no"``
returned a dict), and a callback class given for an instance (whose fix said to wrap
functions in ``LambdaCallback``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import FitpipeTypeError, FitpipeValueError

X = np.linspace(0.0, 1.0, 32, dtype="float32").reshape(8, 4)
Y = np.linspace(0.0, 1.0, 8, dtype="float32").reshape(8, 1)


def _trainer() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return trainer


@pytest.mark.parametrize("freq", [{1: 2}, {2: True, 4: True}, {1: 1}], ids=repr)
def test_validation_freq_as_a_dict_is_refused(freq: Any) -> None:
    with pytest.raises(
        FitpipeValueError,
        match=r"^`fit` got an invalid `validation_freq`\. `validation_freq` is a positive "
        r"integer .* or a list of 1-based epoch numbers\..*Received: validation_freq=\{.*\} "
        r"\(of type dict\)$",
    ):
        _trainer().fit(X, Y, validation_data=(X, Y), validation_freq=freq, verbose=0)


def test_validation_freq_lists_sets_and_ranges_are_still_taken() -> None:
    for freq in ([1, 2], {1, 2}, range(1, 3), (2,)):
        history = _trainer().fit(
            X, Y, validation_data=(X, Y), validation_freq=freq, epochs=2, verbose=0
        )
        assert "val_loss" in history.history


RETURN_DICT_CALLS = {
    "evaluate": lambda t, v: t.evaluate(X, Y, return_dict=v, verbose=0),
    "train_on_batch": lambda t, v: t.train_on_batch(X, Y, return_dict=v),
    "test_on_batch": lambda t, v: t.test_on_batch(X, Y, return_dict=v),
}


@pytest.mark.parametrize("caller", sorted(RETURN_DICT_CALLS))
@pytest.mark.parametrize("value", ["no", "True", 1, 0, None, [True]], ids=repr)
def test_return_dict_that_is_no_bool_is_refused(caller: str, value: Any) -> None:
    with pytest.raises(
        FitpipeTypeError,
        match=rf"^`{caller}` got a non-boolean `return_dict`\. `return_dict` is True or False\. "
        rf"Pass a bool\. Received: return_dict=.* \(of type {type(value).__name__}\)$",
    ):
        RETURN_DICT_CALLS[caller](_trainer(), value)


@pytest.mark.parametrize("caller", sorted(RETURN_DICT_CALLS))
@pytest.mark.parametrize("value", [True, np.bool_(True), False, np.bool_(False)], ids=repr)
def test_return_dict_takes_bools_and_numpy_bools(caller: str, value: Any) -> None:
    result = RETURN_DICT_CALLS[caller](_trainer(), value)
    assert isinstance(result, dict) is bool(value)


@pytest.mark.parametrize(
    "cls", [keras.callbacks.EarlyStopping, keras.callbacks.TerminateOnNaN, keras.callbacks.History]
)
@pytest.mark.parametrize("nested", [False, True])
def test_a_callback_class_is_told_to_be_instantiated(cls: type, nested: bool) -> None:
    callbacks: Any = [[cls]] if nested else [keras.callbacks.TerminateOnNaN(), cls]
    where = r"callbacks\[0\]\[0\]" if nested else r"callbacks\[1\]"
    for call in (
        lambda t: t.fit(X, Y, callbacks=callbacks, verbose=0),
        lambda t: t.evaluate(X, Y, callbacks=callbacks, verbose=0),
    ):
        with pytest.raises(
            FitpipeTypeError,
            match=rf"`{where}` is a callback class, not an instance\. .*"
            rf"Instantiate it: `{cls.__name__}\(\)` \(with its arguments\)\. "
            rf"Received: {where}=<class .*{cls.__name__}'> \(of type \w+\)$",
        ):
            call(_trainer())
