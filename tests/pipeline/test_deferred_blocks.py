"""Sources read in blocks (Parquet, generators, PyDatasets, NumPy): their dataset built if iterated.

A trainer takes such a source's blocks and slices their batches in its compiled loop; the
``tf.data`` pipeline of ``from_generator`` the source would hand otherwise cost 20-65 ms a
call to build, for nothing. The class: streamed Parquet of any rows, widths, row groups,
batch sizes, shuffles, with and without weights; generators and ``PyDataset``s of any batch
sizes; NumPy arrays over the in-memory limit of any nesting, dtype, shape and shuffle. The
spec is known before the dataset and is its spec; ``fit``, ``evaluate`` and ``predict`` over
them build none; the dataset, built late when a trainer does iterate it, trains the same weights.
A shuffled Parquet pass taken in blocks hands each shuffle buffer on ungathered (its order),
holding the rows the dataset's pass holds.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters import Reordered
from fitpipe.adapters import parquet as parquet_module
from fitpipe.adapters.row_blocks import gathered
from fitpipe.pipeline import arrays
from fitpipe.testing.strategies import nested_structures


def _counting(made: list[int], build: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return build(*args, **kwargs)

    return counted


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the datasets built: of ``from_generator``, of arrays' batches of row indices."""
    made: list[int] = []
    from_generator = _counting(made, tf.data.Dataset.from_generator)
    monkeypatch.setattr(tf.data.Dataset, "from_generator", from_generator)
    monkeypatch.setattr(arrays, "index_batches", _counting(made, arrays.index_batches))
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # Parquet and arrays streamed
    return made


def _file(folder: Any, rows: int, features: int, group: int, weights: bool) -> tuple[str, Any]:
    ids = np.arange(rows)
    columns = {f"f{i}": np.sin(ids * (i + 1)).astype("float32") for i in range(features)}
    columns["y"] = (ids % 2).astype("float32")
    if weights:
        columns["w"] = (0.5 + ids % 3).astype("float32")
    path = str(folder / f"rows_{rows}_{features}_{group}_{weights}.parquet")
    pq.write_table(pa.table(columns), path, row_group_size=group)
    names = [f"f{i}" for i in range(features)]
    return path, fitpipe.Schema(names, "y", sample_weight="w" if weights else None)


PARQUET = st.tuples(
    st.integers(1, 40),  # rows
    st.integers(1, 3),  # features
    st.integers(1, 16),  # rows per row group
    st.integers(1, 9),  # batch size
    st.booleans(),  # shuffle
    st.booleans(),  # sample weights
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(case=PARQUET)
def test_streamed_parquet_tells_its_spec_before_building(built, tmp_path_factory, case):
    rows, features, group, batch, shuffle, weights = case
    path, schema = _file(tmp_path_factory.mktemp("p"), rows, features, group, weights)
    built.clear()
    pipeline = fitpipe.adapt(path, schema=schema, batch_size=batch, shuffle=shuffle)
    assert pipeline.row_blocks is not None
    spec = pipeline.element_spec
    assert not built, "the dataset of a source read in blocks was built unasked"
    assert spec == pipeline.dataset.element_spec
    assert built == [1]
    assert sum(len(b[0]) for b in pipeline.dataset) == rows


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_a_generator_tells_its_spec_before_building(built, sizes):
    def batches() -> Any:
        for size in sizes:
            yield np.ones((size, 2), "float32"), np.zeros((size, 1), "float32")

    built.clear()
    pipeline = fitpipe.adapt(batches())
    spec = pipeline.element_spec
    assert not built
    assert spec == pipeline.dataset.element_spec
    assert [len(b[0]) for b in pipeline.dataset] == sizes


NUMBERS = ("float32", "float64", "float16", "int32", "int64", "uint8", "bool")


@st.composite
def numeric_leaves(draw: st.DrawFn, rows: int) -> np.ndarray:
    inner = draw(st.lists(st.integers(1, 3), max_size=2))
    values = np.arange(rows * int(np.prod(inner, dtype=np.int64))).reshape(rows, *inner)
    return (values % 7).astype(draw(st.sampled_from(NUMBERS)))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(data=st.data())
def test_arrays_over_the_limit_tell_their_spec_before_building(built, data):
    built.clear()
    rows = data.draw(st.integers(1, 12))
    kwargs: dict[str, Any] = {
        "x": data.draw(nested_structures(numeric_leaves(rows), max_depth=2, max_width=2)),
        "batch_size": data.draw(st.sampled_from([1, 2, 3, rows, rows + 1])),
        "shuffle": data.draw(st.sampled_from([False, True, "batch"])),
    }
    if data.draw(st.booleans()):
        kwargs["y"] = data.draw(numeric_leaves(rows))
        if data.draw(st.booleans()):
            kwargs["sample_weight"] = np.linspace(0.5, 1.5, rows, dtype="float32")
    pipeline = fitpipe.adapt(**kwargs)
    assert pipeline.row_blocks is not None and pipeline.rows is None
    spec = pipeline.element_spec
    assert not built, "the dataset of arrays read in blocks was built unasked"
    assert spec == pipeline.dataset.element_spec
    assert built == [1]
    assert sum(len(tf.nest.flatten(b)[0]) for b in pipeline.dataset) == rows


class _Batches(keras.utils.PyDataset):
    """Batches of the given sizes, by index."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        size = self.sizes[index]
        return np.full((size, 3), index, "float32"), np.ones((size, 1), "float32")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=10)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_a_py_dataset_tells_its_spec_before_building(built, sizes):
    built.clear()
    pipeline = fitpipe.adapt(_Batches(sizes))
    assert pipeline.row_blocks is not None
    spec = pipeline.element_spec
    assert not built
    assert spec == pipeline.dataset.element_spec
    assert [len(b[0]) for b in pipeline.dataset] == sizes


def _trainer(features: int) -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse")
    return trainer


def _calls(folder: Any, built: list[int]) -> tuple[Any, list[np.ndarray]]:
    """``fit`` (validated), ``evaluate``, ``predict`` of a streamed file; ``fit`` of a generator."""
    path, schema = _file(folder, 100, 3, 30, True)
    trainer = _trainer(3)
    built.clear()
    fit = {"schema": schema, "batch_size": 16, "verbose": 0}
    history = trainer.fit(path, epochs=2, shuffle=False, validation_data=path, **fit)
    trainer.evaluate(path, **fit)
    trainer.predict(path, schema=fitpipe.Schema(schema.features), batch_size=16, verbose=0)

    def batches() -> Any:
        for i in range(0, 40, 8):
            yield np.full((8, 3), i / 40, "float32"), np.ones((8, 1), "float32")

    trainer.fit(batches(), steps_per_epoch=5, verbose=0)
    trainer.fit(_Batches([8, 8, 5]), epochs=2, verbose=0)
    x = np.linspace(0, 1, 150 * 3, dtype="float32").reshape(150, 3)
    trainer.fit(x, x[:, :1], batch_size=16, epochs=2, verbose=0)  # over the limit: streamed
    return history.history, [w.numpy() for w in trainer.model.weights]


def test_calls_over_blocks_build_no_dataset_and_train_as_the_dataset(built, tmp_path, monkeypatch):
    history, weights = _calls(tmp_path, built)
    assert not built, "a call over a source read in blocks built its dataset"
    monkeypatch.setattr(limits, "STREAM_IN_BLOCKS", False)  # the dataset, built late
    through_dataset, dataset_weights = _calls(tmp_path, built)
    assert built
    assert history == through_dataset
    for blocks, dataset in zip(weights, dataset_weights, strict=True):
        np.testing.assert_array_equal(blocks, dataset)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(case=PARQUET, buffer=st.integers(1, 50))
def test_streamed_parquet_hands_a_shuffle_buffer_to_a_trainer_ungathered(
    built, tmp_path_factory, monkeypatch, case, buffer
):
    """A trainer slices batches by row index: it takes a mix's order, not a gathered copy."""
    monkeypatch.setattr(parquet_module, "SHUFFLE_BUFFER_ROWS", buffer)
    rows, features, group, batch, shuffle, weights = case
    path, schema = _file(tmp_path_factory.mktemp("p"), rows, features, group, weights)
    passes = []
    for taken in (True, False):  # the same seed: the same first pass, taken or iterated
        keras.utils.set_random_seed(11)
        pipeline = fitpipe.adapt(path, schema=schema, batch_size=batch, shuffle=shuffle)
        if taken:
            blocks = list(pipeline.row_blocks().blocks)
            assert all(isinstance(b, Reordered) == shuffle for b in blocks)
            passes.append([gathered(b) for b in blocks])
        else:
            passes.append(list(pipeline.dataset.as_numpy_iterator()))
    taken, iterated = (
        [np.concatenate(leaf) for leaf in zip(*map(tf.nest.flatten, p), strict=True)]
        for p in passes
    )
    for a, b in zip(taken, iterated, strict=True):
        np.testing.assert_array_equal(a, b)
