"""Rows picked from held sparse tensors: the batch's entries only, whatever the rows held.

A held sparse leaf is grouped by row once (``row_picks.SparseRows``); a batch gathers its rows'
entries from that. Picking from the ``tf.SparseTensor`` itself sorted and grouped all its
entries at every batch: ``predict`` over 65,536 rows of 10 entries ran 5-8x slower than
Keras, more so the more batches. The picks must be the same rows, in the requested order,
for any entries (unsorted, empty rows, none at all, rank 3) and any rows (repeated, reversed,
none); and the per-batch graph must not touch every entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.pipeline import ResidentRows
from fitpipe.pipeline.row_picks import SparseRows, gather_leaf, sparse_rows
from fitpipe.testing.strategies import sparse_entries


@st.composite
def _held_and_rows(draw: st.DrawFn) -> tuple[tf.SparseTensor, list[int]]:
    rows = draw(st.integers(0, 7))
    indices, values, shape = draw(sparse_entries(rows))
    picks = draw(st.lists(st.integers(0, rows - 1), max_size=12)) if rows else []
    return tf.SparseTensor(indices, values, shape), picks


def _dense(sparse: tf.SparseTensor) -> np.ndarray:
    return tf.sparse.to_dense(tf.sparse.reorder(sparse)).numpy()


@settings(deadline=None)
@given(_held_and_rows())
def test_picked_rows_are_the_rows_asked_for_in_canonical_order(
    case: tuple[tf.SparseTensor, list[int]],
) -> None:
    sparse, picks = case
    rows = tf.constant(picks, tf.int64)
    want = _dense(sparse)[picks]
    for held in (sparse_rows(sparse), sparse):  # grouped once, or from the tensor itself
        got = gather_leaf(held, rows)
        assert isinstance(got, tf.SparseTensor)
        np.testing.assert_array_equal(got.dense_shape.numpy(), want.shape)
        np.testing.assert_array_equal(tf.sparse.to_dense(got).numpy(), want)
        # in row-major order already: what Keras' layers expect of a batch
        np.testing.assert_array_equal(got.indices.numpy(), tf.sparse.reorder(got).indices.numpy())


def _op_types(function: Any) -> set[str]:
    """Every op type in a concrete function's graph and the functions it calls."""
    graph = function.graph.as_graph_def()
    types = {node.op for node in graph.node}
    for inner in graph.library.function:
        types.update(node.op for node in inner.node_def)
    return types


def test_a_batch_of_held_sparse_rows_does_not_sort_every_entry() -> None:
    dense = np.eye(6, 4, dtype="float32")
    sparse = tf.sparse.from_dense(dense)
    held = ResidentRows((sparse,), None, 6, 2, True, 0)
    arguments = held.loop_arguments(0)
    assert isinstance(arguments[0][0][0], SparseRows)  # grouped once, before any batch
    fetch = tf.function(held.fetch_function())
    ops = _op_types(fetch.get_concrete_function(arguments, tf.constant(1)))
    assert "RaggedGather" in ops
    assert not ops & {"SparseReorder", "RaggedTensorToSparse", "SparseSlice"}
    picked = held.batch(arguments, 1)
    order = held.order(0).numpy()[2:4]
    np.testing.assert_array_equal(tf.sparse.to_dense(picked).numpy(), dense[order])


@pytest.mark.parametrize("shuffle", [True, False])
def test_sparse_rows_train_evaluate_and_predict_as_their_dense_twin(shuffle: bool) -> None:
    import keras

    rng = np.random.default_rng(1)
    dense = rng.normal(size=(37, 9)).astype("float32")
    dense[rng.random(dense.shape) < 0.7] = 0.0
    dense[5] = 0.0  # a row without entries
    y = rng.integers(0, 2, 37).astype("float32")
    # entries in reverse order: the held tensor is sorted once
    sparse = tf.sparse.from_dense(dense)
    sparse = tf.SparseTensor(sparse.indices[::-1], sparse.values[::-1], sparse.dense_shape)

    def trained(x: Any, is_sparse: bool) -> tuple[Any, ...]:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((9,), sparse=is_sparse)
        trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
        trainer.compile("sgd", "mse", steps_per_execution=3)
        kwargs = {"batch_size": 4, "verbose": 0, "shuffle": shuffle}
        history = trainer.fit(x, y, epochs=2, class_weight={0: 1.0, 1: 2.0}, **kwargs)
        kwargs.pop("shuffle")
        return (
            history.history["loss"],
            trainer.evaluate(x, y, **kwargs),
            trainer.predict(x, **kwargs),
            trainer.model.get_weights(),
        )

    got, want = trained(sparse, True), trained(dense, False)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-6)
    for g, w in zip(got[3], want[3], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_rows_sent_to_tf_data_service_workers_group_sparse_entries_once() -> None:
    from fitpipe.adapters import ArraySource
    from fitpipe.pipeline.service import constant_array_dataset

    dense = np.eye(7, 5, dtype="float32")
    sparse = tf.sparse.from_dense(dense)
    sparse = tf.SparseTensor(sparse.indices[::-1], sparse.values[::-1], sparse.dense_shape)
    y = np.arange(7, dtype="float32")
    dataset = constant_array_dataset(ArraySource(sparse, y, None, 7), 3, "fit")
    got = [tf.sparse.to_dense(x).numpy() for x, _ in dataset]
    np.testing.assert_array_equal(np.concatenate(got), dense)
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for fn in graph.library.function for node in fn.node_def}
    assert "RaggedGather" in ops  # each batch picks its rows' entries ...
    assert "SparseReorder" not in ops  # ... and never sorts every entry again
