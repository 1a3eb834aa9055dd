"""The ColumnStore adapter passes fitpipe's adapter conformance kit, and trains like Keras."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from fitpipe_columnstore import ColumnStore

import fitpipe
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


def test_trains_like_keras() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype("float32")
    y = (x[:, :1] - x[:, 1:]).astype("float32")

    def build() -> keras.Model:
        inputs = {name: keras.Input((), name=name) for name in ("f0", "f1")}
        stacked = keras.layers.Concatenate()(
            [keras.layers.Reshape((1,))(inputs[name]) for name in ("f0", "f1")]
        )
        return keras.Model(inputs, keras.layers.Dense(1)(stacked))

    store = ColumnStore({**columns_of(x), "label": y}, target="label")
    result = assert_matches_keras(build, columns_of(x), y, batch_size=8, epochs=2)
    history = fitpipe.Trainer(result.fitpipe_model).fit(store, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 1
