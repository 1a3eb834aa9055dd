"""fitpipe's warnings name the user's line that called it, whatever path reached the warning.

A fixed ``stacklevel`` is right from one call depth only: the same check reached from
``fitpipe.adapt``, ``Trainer.fit`` and ``fitpipe.Model.fit`` sits at different depths, and a
warning that names a fitpipe file cannot be filtered by the user's module nor found in their
script. ``fitpipe.errors.warn`` walks out of the package instead.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import DataCheckWarning, FitpipeWarning, PluginWarning

X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
Y = X.sum(axis=1, keepdims=True)


def _batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, 64, 16):
        yield X[start : start + 16], Y[start : start + 16]


def _model() -> keras.Model:
    model = fitpipe.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


def _trainer() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    return trainer


class _Faulty:
    """A plug-in adapter whose ``can_adapt`` raises on every input."""

    name = "faulty-for-warning-lines"
    accepts = "nothing"
    supports: frozenset[str] = frozenset()

    def can_adapt(self, x: Any) -> bool:
        raise RuntimeError("boom")

    def adapt(self, request: Any) -> Any:  # pragma: no cover - never chosen
        raise AssertionError


@pytest.fixture
def faulty_plugin() -> Iterator[None]:
    fitpipe.register_adapter(_Faulty(), priority=1000)
    yield
    fitpipe.registry.unregister(_Faulty.name)


@pytest.fixture
def max_epochs() -> Iterator[None]:
    keras.config.set_max_epochs(1)
    yield
    keras.config.set_max_epochs(None)


# Each case calls fitpipe from this file's own line; the warning must name that line.
CASES: dict[str, tuple[Callable[[], Any], type[Warning], str, str | None]] = {
    "adapt ignores shuffle": (
        lambda: fitpipe.adapt(_batches(), shuffle=True),
        FitpipeWarning,
        "ignores `shuffle=True`",
        None,
    ),
    "Model.fit runs out of data": (
        lambda: _model().fit(_batches(), steps_per_epoch=3, epochs=3, verbose=0),
        FitpipeWarning,
        "ran out of data",
        None,
    ),
    "fit runs out of data": (
        lambda: _trainer().fit(_batches(), steps_per_epoch=3, epochs=3, verbose=0),
        FitpipeWarning,
        "ran out of data",
        None,
    ),
    "evaluate's plug-in skipped": (
        lambda: _trainer().evaluate(X, Y, verbose=0),
        PluginWarning,
        "skipped the adapter",
        "faulty_plugin",
    ),
    "adapt's plug-in skipped": (
        lambda: fitpipe.adapt(X, Y),
        PluginWarning,
        "skipped the adapter",
        "faulty_plugin",
    ),
    "fit's epochs limited": (
        lambda: _model().fit(X, Y, epochs=3, verbose=0),
        FitpipeWarning,
        "Limiting epochs",
        "max_epochs",
    ),
    "fit's data check": (
        lambda: _trainer().fit(np.where(X > 2, np.nan, X), Y, verbose=0),
        DataCheckWarning,
        "likely problem",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_warning_names_the_users_line(case: str, request: pytest.FixtureRequest) -> None:
    call, category, text, fixture = CASES[case]
    if fixture is not None:
        request.getfixturevalue(fixture)
    line = inspect.getsourcelines(call)[1]  # the lambda's line: where the user calls fitpipe
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    ours = [w for w in caught if issubclass(w.category, category) and text in str(w.message)]
    assert ours, [str(w.message) for w in caught]
    assert {(w.filename, w.lineno) for w in ours} == {(__file__, line)}
