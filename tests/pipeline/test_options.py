"""Adapters read an ``AdaptRequest``; the pipeline's own options are ``PipelineOptions``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.adapters import AdaptRequest, ArraySource
from fitpipe.errors import UnsupportedArgumentError
from fitpipe.pipeline import PipelineOptions

#: The options only the pipeline reads.
PIPELINE_ONLY = {"class_weight", "validation_split", "data_service", "output_names"}


class Box:
    """An input form of this test: rows of ``x`` and ``y`` in a box."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y


class BoxAdapter:
    """Takes a :class:`Box`; records every request it is given."""

    name = "box-options"
    accepts = "a Box"

    def __init__(self, supports: frozenset[str]) -> None:
        self.supports = supports
        self.requests: list[AdaptRequest] = []

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Box)

    def adapt(self, request: AdaptRequest) -> ArraySource:
        self.requests.append(request)
        return ArraySource(request.x.x, request.x.y, None, len(request.x.x))


def test_the_adapters_request_holds_no_pipeline_option() -> None:
    fields = {field.name for field in dataclasses.fields(AdaptRequest)}
    assert not fields & PIPELINE_ONLY
    assert PIPELINE_ONLY <= {field.name for field in dataclasses.fields(PipelineOptions)}


def test_options_of_a_request_take_its_batching_arguments() -> None:
    request = AdaptRequest(x=[1], batch_size=3, shuffle="batch", steps=2, caller="fit")
    options = PipelineOptions.of(request, class_weight={0: 2.0})
    assert (options.batch_size, options.shuffle, options.steps) == (3, "batch", 2)
    assert (options.caller, options.class_weight) == ("fit", {0: 2.0})
    assert options.given() == {"class_weight": {0: 2.0}}


def test_fit_with_pipeline_options_gives_the_adapter_only_its_request(
    clean_registry: Callable[[str], None],
) -> None:
    adapter = BoxAdapter(frozenset({"batch_size", "class_weight", "validation_split"}))
    fitpipe.register_adapter(adapter, priority=1000)
    clean_registry(adapter.name)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.ones((8, 2), "float32"), np.array([0, 1] * 4)
    trainer.fit(Box(x, y), batch_size=2, class_weight={0: 1.0, 1: 2.0}, validation_split=0.25)
    assert [type(request) for request in adapter.requests] == [AdaptRequest]
    assert adapter.requests[0].batch_size == 2
    assert not any(hasattr(adapter.requests[0], name) for name in PIPELINE_ONLY)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("class_weight", {0: 2.0}, r"class_weight=\{0: 2\.0\}"), ("validation_split", 0.5, "0.5")],
)
def test_an_unsupported_pipeline_option_is_refused_with_its_value(
    clean_registry: Callable[[str], None], name: str, value: Any, shown: str
) -> None:
    adapter = BoxAdapter(frozenset())
    fitpipe.register_adapter(adapter, priority=1000)
    clean_registry(adapter.name)
    request = AdaptRequest(x=Box(np.ones((4, 2)), np.zeros(4)), caller="fit")
    options = PipelineOptions.of(request, **{name: value})
    with pytest.raises(UnsupportedArgumentError, match=f"does not support `{name}`.*{shown}"):
        fitpipe.pipeline.adapt_source(request, options)
    assert not adapter.requests
