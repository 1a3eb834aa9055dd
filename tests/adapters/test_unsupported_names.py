"""The "not supported" error names the argument as the caller passed it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.adapters import ArraySource
from fitpipe.errors import UnsupportedArgumentError


class Store:
    """A user type read into rows in memory by an adapter that supports only ``batch_size``."""


class StoreAdapter:
    name = "test-store"
    accepts = "a test Store"
    supports = frozenset({"batch_size"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Store)

    def adapt(self, request: Any) -> ArraySource:
        x, y = np.zeros((10, 2), "float32"), np.zeros(10, "float32")
        return ArraySource(x=x, y=y, sample_weight=None, num_samples=10)


@pytest.fixture
def trainer(clean_registry: Any) -> Iterator[fitpipe.Trainer]:
    fitpipe.register_adapter(StoreAdapter)
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    yield trainer


@pytest.mark.parametrize(
    ("kwargs", "name", "value"),
    [
        ({"steps_per_epoch": 2}, "steps_per_epoch", 2),
        ({"validation_data": Store(), "validation_steps": 1}, "validation_steps", 1),
    ],
    ids=["steps_per_epoch", "validation_steps"],
)
def test_fit_names_its_own_steps_argument(
    kwargs: dict[str, Any], name: str, value: int, trainer: fitpipe.Trainer
) -> None:
    expected = (
        rf"^`fit` does not support `{name}` when `x` is a test Store \(adapter 'test-store'\)\. "
        rf"`{name}` is only used with inputs that support it: .* Drop the `{name}` argument\. "
        rf"Received: {name}={value} \(of type int\)"
    )
    with pytest.raises(UnsupportedArgumentError, match=expected):
        trainer.fit(Store(), epochs=1, verbose=0, **kwargs)


def test_evaluate_and_adapt_still_say_steps(trainer: fitpipe.Trainer) -> None:
    with pytest.raises(UnsupportedArgumentError, match=r"^`evaluate` does not support `steps`"):
        trainer.evaluate(Store(), steps=2, verbose=0)
    with pytest.raises(UnsupportedArgumentError, match=r"Received: steps=2 \(of type int\)"):
        fitpipe.adapt(Store(), steps=2)


def test_an_unsupported_sample_weight_is_worded_for_rows_too(trainer: fitpipe.Trainer) -> None:
    """Not only for an input of batches: the weights may be the input's own, or none."""
    expected = (
        r"`sample_weight` is only used with inputs that support it: weights come from the "
        r"input itself, or there are none \(an input of batches: the third element of each "
        r"batch\)\. Drop the `sample_weight` argument and put the weights in the input"
    )
    with pytest.raises(UnsupportedArgumentError, match=expected):
        trainer.fit(Store(), sample_weight=np.ones(10), verbose=0)
