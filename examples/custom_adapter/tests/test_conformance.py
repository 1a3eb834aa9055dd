"""The ColumnStore adapter passes fitpipe's adapter conformance kit, and trains like Keras."""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import pytest
from fitpipe_columnstore import ColumnStore
from fitpipe_columnstore.adapter import ColumnStoreAdapter

import fitpipe
from fitpipe.adapters import AdaptRequest, ArraySource
from fitpipe.testing import AdapterConformanceTests, assert_matches_keras


def columns_of(x: np.ndarray) -> dict[str, np.ndarray]:
    """One 1-D column per feature: ``f0``, ``f1``, ..."""
    return {f"f{i}": x[:, i] for i in range(x.shape[1])}


class TestColumnStoreConformance(AdapterConformanceTests):
    adapter_name = "columnstore"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> ColumnStore:
        # `y` and `sample_weight` are not in the adapter's `supports`, so the store holds them;
        # `batch_size` is, so the kit passes it to `fitpipe.adapt` itself.
        columns: dict[str, Any] = columns_of(x)
        if y is not None:
            columns["label"] = y
        if sample_weight is not None:
            columns["weight"] = sample_weight
        return ColumnStore(
            columns,
            target="label" if y is not None else None,
            weight="weight" if sample_weight is not None else None,
        )

    def expected_x(self, x: np.ndarray) -> Any:
        return columns_of(x)


def test_registered_through_the_entry_point_not_at_import() -> None:
    adapter = fitpipe.registry.find(ColumnStore({"f0": np.zeros(3)}))
    assert type(adapter).__module__ == "fitpipe_columnstore.adapter"
    assert fitpipe.registry.priority("columnstore") == 60


def compare_with_keras() -> None:
    """fitpipe trains on a ColumnStore, Keras on the same rows as arrays; both must agree."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype("float32")
    y = (x[:, :1] - x[:, 1:]).astype("float32")

    def build() -> keras.Model:
        inputs = {name: keras.Input((), name=name) for name in ("f0", "f1")}
        stacked = keras.layers.Concatenate()(
            [keras.layers.Reshape((1,))(inputs[name]) for name in ("f0", "f1")]
        )
        return keras.Model(inputs, keras.layers.Dense(1)(stacked))

    # A factory: each side, and each of fit, evaluate and predict, gets a fresh store.
    def store() -> ColumnStore:
        return ColumnStore({**columns_of(x), "label": y}, target="label")

    result = assert_matches_keras(
        build,
        store,  # fitpipe reads the store through the columnstore adapter...
        keras_x=columns_of(x),  # ...Keras the same rows as arrays
        keras_y=y,
        batch_size=8,
        epochs=2,
        validation_split=0.25,
    )
    assert set(result.fitpipe_history.history) == {"loss", "val_loss"}


def test_trains_like_keras() -> None:
    compare_with_keras()


def test_trains_like_keras_fails_an_adapter_with_reversed_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sound = ColumnStoreAdapter.adapt

    def reversed_targets(self: ColumnStoreAdapter, request: AdaptRequest) -> ArraySource:
        source = sound(self, request)
        return dataclasses.replace(source, y=None if source.y is None else source.y[::-1].copy())

    monkeypatch.setattr(ColumnStoreAdapter, "adapt", reversed_targets)
    with fitpipe.adapt(ColumnStore({"f0": np.zeros(2)})) as pipeline:
        assert pipeline.adapter == "columnstore"
    with pytest.raises(AssertionError, match=r"keras .* vs fitpipe"):
        compare_with_keras()
