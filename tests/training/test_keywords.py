"""Keyword arguments a method does not take: worded with the names it takes.

Before: Python's own ``Trainer.fit() got an unexpected keyword argument 'epoch'`` (the
mixin's name, ``EvaluatePredictMethods.predict()``, for ``predict``), with no hint; a
schema field given beside the schema (``predict(..., passthrough=["id"])``) said nothing of
the schema.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeTypeError, FitpipeValueError

X = np.linspace(-1.0, 1.0, 8, dtype="float32").reshape(4, 2)
Y = np.ones((4, 1), "float32")
#: Each public method, the arguments that make a call of it, and the error of an unknown
#: keyword (``evaluate`` takes ``**kwargs`` and raises a ``ValueError``, as Keras').
METHODS: dict[str, tuple[tuple[Any, ...], type[Exception]]] = {
    "compile": (("sgd", "mse"), FitpipeTypeError),
    "fit": ((X, Y), FitpipeTypeError),
    "evaluate": ((X, Y), FitpipeValueError),
    "predict": ((X,), FitpipeTypeError),
    "train_on_batch": ((X, Y), FitpipeTypeError),
    "test_on_batch": ((X, Y), FitpipeTypeError),
    "predict_on_batch": ((X,), FitpipeTypeError),
}


def _trainer() -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return fitpipe.Trainer(model)


def _names(method: str) -> list[str]:
    skipped = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    parameters = inspect.signature(getattr(fitpipe.Trainer, method)).parameters.items()
    return [n for n, p in parameters if n != "self" and p.kind not in skipped]


@st.composite
def _typos(draw: st.DrawFn) -> tuple[str, str, str]:
    """A method, one of its arguments, and that name with a letter dropped or doubled."""
    method = draw(st.sampled_from([m for m in sorted(METHODS) if m != "predict_on_batch"]))
    name = draw(st.sampled_from([n for n in _names(method) if len(n) >= 5]))  # not `x`, `y`
    at = draw(st.integers(0, len(name) - 1))
    typo = draw(st.sampled_from([name[:at] + name[at + 1 :], name[:at] + name[at] + name[at:]]))
    return method, name, typo


@settings(max_examples=30, deadline=None)
@given(_typos(), st.integers(-3, 3))
def test_a_misspelt_argument_is_refused_with_the_arguments_taken(
    typo: tuple[str, str, str], value: int
) -> None:
    method, _, wrong = typo
    names = _names(method)
    args, kind = METHODS[method]
    trainer = _trainer()
    before = [w.copy() for w in trainer.model.get_weights()]
    if wrong in names:  # ("steps" from "epochs"?): a name it takes, not a typo
        return
    with pytest.raises(kind) as info:
        getattr(trainer, method)(*args, **{wrong: value})
    text = str(info.value)
    assert text.startswith(f"`{method}` got unexpected keyword argument {wrong!r}. "), text
    assert f"`{method}` takes {', '.join(names)}." in text, text
    assert f"Received: {wrong}={value} (of type int)" in text, text
    assert f"Rename `{wrong}` to `" in text, text  # one letter off: a close name is found
    suggested = text.split(f"Rename `{wrong}` to `")[1].split("`")[0]
    assert suggested in names, text
    assert all(
        np.array_equal(a, b) for a, b in zip(before, trainer.model.get_weights(), strict=True)
    )


def test_the_usual_misspellings_are_renamed_and_unknown_names_removed() -> None:
    trainer = _trainer()
    with pytest.raises(TypeError, match=r"Rename `epoch` to `epochs`\. Received: epoch=2"):
        trainer.fit(X, Y, epoch=2, verbose=0)
    with pytest.raises(TypeError, match=r"Rename `metric` to `metrics`\."):
        trainer.compile("sgd", "mse", metric=["mae"])
    with pytest.raises(
        TypeError,
        match=r"'verbos', 'zzz'\. .* Rename `verbos` to `verbose`, and remove the others\.",
    ):
        trainer.predict(X, verbos=0, zzz=1)
    with pytest.raises(TypeError, match=r"Remove it \(see `help\(fitpipe\.Trainer\.fit\)`\)\."):
        trainer.fit(X, Y, qqqqqqq=1)


def test_a_schema_field_given_beside_the_schema_points_to_the_schema() -> None:
    with pytest.raises(
        TypeError,
        match=r"Name it in the schema: `schema=fitpipe\.Schema\(\.\.\., passthrough=\.\.\.\)`",
    ):
        _trainer().predict(X, passthrough=["id"], verbose=0)


def test_a_type_error_raised_inside_a_method_is_not_reworded() -> None:
    class Raises(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            raise TypeError("the user's own")

    with pytest.raises(TypeError, match=r"^the user's own$"):
        _trainer().fit(X, Y, callbacks=[Raises()], verbose=0)
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'x'"):
        _trainer().train_on_batch()  # type: ignore[call-arg]


def test_the_methods_keep_their_names_signatures_and_documents() -> None:
    for method in METHODS:
        function = getattr(fitpipe.Trainer, method)
        assert function.__name__ == method
        assert function.__doc__ and "Args:" in function.__doc__
        assert _names(method)[0] in ("x", "optimizer")
