"""Narrow leaves held side by side (``leaf_packing``): the same batches, one gather for all.

Rows of a model with one input per column were gathered leaf by leaf: 50 float32 scalars
made the first ``fit`` step 3x Keras' and every step 3x that of one 50-column input. Narrow
numeric leaves sharing a dtype are now held as one matrix and split back per batch. Whatever
the nesting, dtypes, ranks and widths (wide leaves, strings and sparse leaves beside them are
held as they are), every way of picking a batch must give exactly the leaves, dtypes and
shapes of picking each leaf on its own; and picking a batch must not grow with the number
of narrow leaves.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fitpipe.pipeline import arrays
from fitpipe.pipeline.leaf_packing import NARROW_BYTES, pack, pack_leaves, plan_specs
from fitpipe.testing import assert_matches_keras
from fitpipe.testing.strategies import nested_structures

_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_, np.float16]


def _leaves(rows: int) -> st.SearchStrategy[Any]:
    """Numeric leaves of rank 1 or 2, narrow or wide (over 64 bytes a row), any byte order."""

    @st.composite
    def leaf(draw: st.DrawFn) -> np.ndarray:
        dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
        if draw(st.booleans()):
            dtype = dtype.newbyteorder(">")
        width = draw(st.sampled_from([None, 1, 2, 3, NARROW_BYTES // dtype.itemsize]))
        shape = (rows,) if width is None else (rows, width)
        return draw(hnp.arrays(dtype, shape, elements={"allow_nan": False}))

    strings = st.just(np.array([f"s{i}" for i in range(rows)]))
    return st.one_of(leaf(), strings)


def _by_leaf(flat: list[Any], rows: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(leaf)[rows] for leaf in flat]


def _assert_same(got: Any, want: list[np.ndarray]) -> None:
    flat = tf.nest.flatten(got)
    assert len(flat) == len(want)
    for g, w in zip(flat, want, strict=True):
        value = g.numpy()
        if w.dtype.kind == "U":  # strings come back as bytes
            assert [v.decode() for v in value] == w.tolist()
            continue
        assert value.dtype == w.dtype.newbyteorder("=") or value.dtype == w.dtype
        assert value.shape == w.shape
        np.testing.assert_array_equal(value, w)


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 9).flatmap(lambda rows: nested_structures(_leaves(rows), 2, 4)), st.data())
def test_every_pick_of_packed_rows_is_the_leaves_picked_one_by_one(
    parts: Any, data: st.DataObject
) -> None:
    flat = tf.nest.flatten(parts)
    num = len(flat[0])
    batch = data.draw(st.integers(1, num))
    shuffle = data.draw(st.booleans())
    streamed, leaves, packing = arrays._make_gather(parts)
    assert streamed is None
    # a streamed block's plan, made from its spec, is the plan made from the arrays
    specs = [
        tf.TensorSpec([None, *np.shape(leaf)[1:]], tf.as_dtype(leaf.dtype.newbyteorder("=")))
        if leaf.dtype.kind != "U"
        else tf.TensorSpec([None], tf.string)
        for leaf in flat
    ]
    assert plan_specs(specs) == packing
    if packing is not None:  # a streamed block of no rows packs and splits back too
        empty = [tf.convert_to_tensor(leaf) for leaf in pack([leaf[:0] for leaf in flat], packing)]
        _assert_same(packing.unpack(empty), [leaf[:0] for leaf in flat])
    narrow = [leaf for leaf in flat if pack_leaves([leaf, leaf])[1] is not None]
    assert len(leaves) <= len(flat) - max(0, len(narrow) - len({leaf.dtype for leaf in narrow}))
    structure = tf.nest.map_structure(lambda _: None, parts)
    held = arrays.ResidentRows(tuple(leaves), structure, num, batch, shuffle, 3, packing=packing)
    arguments = held.loop_arguments(0)
    order = held.order(0).numpy()
    _assert_same(held.as_batch(), _by_leaf(flat, np.arange(num)))
    chunks = held.chunk_functions()
    assert chunks is not None
    first = data.draw(st.integers(0, held.num_batches - 1))
    count = data.draw(st.integers(1, held.num_batches - first))
    chunk = chunks.gather(arguments, tf.constant(first), tf.constant(count))
    for i in range(count):
        rows = order[(first + i) * batch : (first + i + 1) * batch]
        _assert_same(held.batch(arguments, first + i), _by_leaf(flat, rows))
        _assert_same(chunks.pick(chunk, arguments, tf.constant(i)), _by_leaf(flat, rows))
    spec = held.dataset_spec()
    if spec is not None:
        for s, w in zip(tf.nest.flatten(spec), flat, strict=True):
            assert s.dtype == tf.as_dtype(w.dtype.newbyteorder("="))
            assert s.shape.rank == w.ndim


def _gathers(leaf_count: int) -> int:
    rng = np.random.default_rng(0)
    parts = {f"c{i}": rng.normal(size=(20, 1)).astype("float32") for i in range(leaf_count)}
    _, leaves, packing = arrays._make_gather(parts)
    structure = tf.nest.map_structure(lambda _: None, parts)
    held = arrays.ResidentRows(tuple(leaves), structure, 20, 4, True, 0, packing=packing)
    fetch = tf.function(held.fetch_function())
    graph = fetch.get_concrete_function(held.loop_arguments(0), tf.constant(1)).graph
    return sum(op.type in ("GatherV2", "ResourceGather") for op in graph.get_operations())


def test_a_batch_of_many_narrow_inputs_is_one_gather() -> None:
    assert _gathers(2) == _gathers(40) == 1


def test_a_model_of_one_input_per_column_trains_as_keras() -> None:
    rng = np.random.default_rng(4)
    columns = {f"c{i}": rng.normal(size=(48,)).astype("float32") for i in range(6)}
    columns["count"] = rng.integers(0, 5, (48, 1)).astype("int64")
    columns["flag"] = rng.integers(0, 2, (48, 1)).astype("int64")
    y = rng.normal(size=(48, 1)).astype("float32")
    weights = rng.random(48).astype("float32")

    def build() -> keras.Model:
        inputs = {
            name: keras.Input(value.shape[1:], name=name, dtype=value.dtype.name)
            for name, value in columns.items()
        }
        floats = [keras.layers.Reshape((1,))(inputs[f"c{i}"]) for i in range(6)]
        counts = keras.layers.Concatenate()([inputs["count"], inputs["flag"]])
        merged = keras.layers.Concatenate()([*floats, keras.ops.cast(counts, "float32")])
        return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(4)(merged)))

    assert_matches_keras(
        build,
        columns,
        y,
        sample_weight=weights,
        batch_size=8,
        epochs=2,
        validation_split=0.25,
        compile_kwargs={"optimizer": "sgd", "loss": "mse", "steps_per_execution": 2},
    )


def test_narrow_inputs_streamed_in_blocks_train_as_keras(monkeypatch: Any) -> None:
    from fitpipe.training import block_cursor

    packings: list[Any] = []
    original = block_cursor.BlockCursor.__init__

    def recorded(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        packings.append(self.rows.packing)

    monkeypatch.setattr(block_cursor.BlockCursor, "__init__", recorded)
    rng = np.random.default_rng(5)
    columns = {f"c{i}": rng.normal(size=(40,)).astype("float32") for i in range(5)}
    y = rng.normal(size=(40, 1)).astype("float32")
    weights = rng.random(40).astype("float32")

    def batches() -> Any:  # two passes: two epochs of 5 steps
        for start in [*range(0, 40, 8), *range(0, 40, 8)]:
            rows = slice(start, start + 8)
            yield {k: v[rows] for k, v in columns.items()}, y[rows], weights[rows]

    def build() -> keras.Model:
        inputs = {name: keras.Input((), name=name) for name in columns}
        stacked = keras.layers.Concatenate()(
            [keras.layers.Reshape((1,))(inputs[name]) for name in columns]
        )
        return keras.Model(inputs, keras.layers.Dense(1)(stacked))

    assert_matches_keras(build, batches, epochs=2, steps_per_epoch=5)
    assert packings and all(p is not None and len(p.slots) == 1 for p in packings)
