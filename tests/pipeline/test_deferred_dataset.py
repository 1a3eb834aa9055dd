"""Rows held in memory: their ``tf.data`` dataset is built only when asked for.

A trainer slices the batches of held rows inside its compiled loop; building the dataset it
never iterates traced ``tf.data`` functions on every call, and their graphs held the rows'
variables in reference cycles until Python's next garbage collection. The class: every
nesting, dtype and shape of arrays, with and without targets and weights, every kind of
shuffle, batch sizes that divide the rows and ones that do not.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.pipeline import arrays
from fitpipe.testing.strategies import nested_structures

DTYPES = ("float32", "float64", "float16", "int32", "int64", "uint8", "bool")


@st.composite
def leaves(draw: st.DrawFn, rows: int) -> np.ndarray:
    """An array of ``rows`` rows: any of :data:`DTYPES` (or strings), inner rank 0-2."""
    inner = draw(st.lists(st.integers(1, 3), max_size=2))
    kind = draw(st.sampled_from((*DTYPES, "str")))
    values = np.arange(rows * int(np.prod(inner, dtype=np.int64))).reshape(rows, *inner)
    return values.astype(str) if kind == "str" else (values % 7).astype(kind)


@st.composite
def held_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    """``adapt`` arguments of arrays that stay in memory, and a ``shuffle``."""
    rows = draw(st.integers(1, 12))
    batch_size = draw(st.sampled_from([1, 2, 3, 4, rows, rows + 1]))
    x = draw(nested_structures(leaves(rows), max_depth=2, max_width=2))
    kwargs: dict[str, Any] = {"x": x, "batch_size": batch_size}
    if draw(st.booleans()):
        kwargs["y"] = draw(nested_structures(leaves(rows), max_depth=1, max_width=2))
        if draw(st.booleans()):
            kwargs["sample_weight"] = np.linspace(0.5, 1.5, rows, dtype="float32")
    return kwargs, draw(st.sampled_from([False, True, "batch"]))


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the datasets of held rows built (each one's batches of row indices)."""
    built: list[int] = []
    index_batches = arrays.index_batches

    def counted(*args: Any, **kwargs: Any) -> tf.data.Dataset:
        built.append(1)
        return index_batches(*args, **kwargs)

    monkeypatch.setattr(arrays, "index_batches", counted)
    return built


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=held_inputs())
def test_the_spec_is_known_before_the_dataset_and_is_its_spec(builds: list[int], case: Any) -> None:
    kwargs, shuffle = case
    builds.clear()
    pipeline = fitpipe.adapt(**kwargs, shuffle=shuffle)
    spec = pipeline.element_spec
    assert pipeline.rows is not None and not builds, "the dataset was built unasked"
    assert spec == pipeline.dataset.element_spec
    assert builds == [1]
    batches = list(pipeline.dataset)  # the dataset built late is the one it was: its rows
    rows = len(tf.nest.flatten(kwargs["x"])[0])
    assert sum(len(tf.nest.flatten(batch)[0]) for batch in batches) == rows
    for batch in batches:
        assert all(tf.nest.flatten(tf.nest.map_structure(_fits, spec, batch)))


def _fits(spec: tf.TensorSpec, value: tf.Tensor) -> bool:
    return bool(spec.is_compatible_with(value))


@pytest.mark.parametrize(
    "extra",
    [
        {"class_weight": {0: 1.0, 1: 2.0}},
        {"x": tf.ragged.constant([[1.0], [2.0, 3.0], [4.0], []])},
        {"x": tf.sparse.from_dense(np.eye(4, dtype="float32"))},
    ],
    ids=["class_weight", "ragged", "sparse"],
)
def test_rows_the_spec_cannot_be_told_of_build_their_dataset_at_once(
    builds: list[int], extra: dict[str, Any]
) -> None:
    kwargs = {"x": np.ones((4, 2), "float32"), "y": np.array([0, 1, 0, 1]), **extra}
    pipeline = fitpipe.adapt(**kwargs, batch_size=2, shuffle=True)
    assert builds == [1]
    assert pipeline.element_spec == pipeline.dataset.element_spec


def _model(features: int) -> keras.Model:
    inputs = keras.Input((features,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    return model


def _calls(trainer: fitpipe.Trainer, x: np.ndarray, y: np.ndarray) -> Iterator[str]:
    trainer.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y))
    yield "fit"
    trainer.evaluate(x, y, batch_size=16, verbose=0)
    yield "evaluate"
    trainer.predict(x, batch_size=16, verbose=0)
    yield "predict"
    trainer.train_on_batch(x[:16], y[:16])
    yield "train_on_batch"


def test_calls_over_held_rows_build_no_dataset(builds: list[int]) -> None:
    x = np.random.default_rng(0).standard_normal((100, 3)).astype("float32")
    trainer = fitpipe.Trainer(_model(3))
    trainer.compile("adam", "mse")
    for call in _calls(trainer, x, x[:, :1]):
        assert not builds, f"`{call}` built a dataset of rows it slices itself"


def test_a_call_frees_the_rows_it_held_when_it_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[weakref.ref[Any]] = []
    hold = arrays._hold

    def kept(leaf: Any) -> Any:
        variable = hold(leaf)
        if isinstance(variable, tf.Variable):  # its handle owns the memory, not the object
            held.append(weakref.ref(variable.handle))
        return variable

    monkeypatch.setattr(arrays, "_hold", kept)
    x = np.random.default_rng(1).standard_normal((64, 3)).astype("float32")
    trainer = fitpipe.Trainer(_model(3))
    trainer.compile("adam", "mse")
    for _ in _calls(trainer, x, x[:, :1]):  # traced: a trace's graphs keep what it saw
        pass
    gc.collect()
    held.clear()
    gc.disable()
    try:
        for call in _calls(trainer, x, x[:, :1]):
            alive = [r for r in held if r() is not None]
            assert not alive, f"`{call}` left {len(alive)} held leaves to the garbage collector"
            held.clear()
    finally:
        gc.enable()
