"""Graph functions picking a batch's rows from leaves held in memory.

:class:`~fitpipe.pipeline.ResidentRows` hands a compiled loop its held leaves (variables'
values, sparse leaves grouped by row as :class:`SparseRows`, ragged tensors) and a row
order; a batch is the rows of the order, gathered by index (:func:`gather_leaf`,
:func:`take_rows`), or, in a chunk of consecutive rows, sliced (``row_chunks``). The rows
picked from each held leaf become a batch in :func:`batch_of`: split back into the batch's
leaves where narrow ones are held side by side (``leaf_packing``), class weights applied.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from fitpipe.pipeline.class_weights import apply_class_weight
from fitpipe.pipeline.leaf_packing import Packing

__all__ = [
    "SparseRows",
    "batch_of",
    "gather_leaf",
    "held_value",
    "picked_from",
    "rows_variable",
    "sparse_rows",
    "take_rows",
]


class SparseRows(NamedTuple):
    """A held sparse tensor's entries grouped by row (its first axis), made once.

    Picking a batch's rows from it costs the batch's entries. Picked from the
    ``tf.SparseTensor`` itself, each batch sorted and grouped every entry of the tensor
    again: 65,536 rows of 10 entries ran ``predict`` at 6k rows per CPU second at batch 32
    (Keras: 47k), the cost of a batch growing with the rows held.

    Attributes:
        values: The entries' values, ``[rows, (entries)]``.
        rest: Their indices past the first axis, ``[rows, (entries), rank - 1]``.
        dense_shape: The tensor's shape.
    """

    values: tf.RaggedTensor
    rest: tf.RaggedTensor
    dense_shape: tf.Tensor


def rows_variable(value: Any) -> tf.Variable:
    """A variable holding rows (a tensor, or what converts to one), of any number of rows.

    Its shape leaves the row count open. A variable's shape is an attribute of the op that
    makes it, and TensorFlow caches an eager kernel for every set of attributes it ran, for
    the life of the process: variables made at their exact shape grew a process by about
    110 KB a new row count, never given back (a service's ``predict`` calls of 1, 2, 3, ...
    rows: 2,400 counts, +266 MB; 800 variables alone in plain TensorFlow, +86 MB, against
    +1 MB at an open row count).
    """
    value = tf.convert_to_tensor(value)
    shape = value.shape if value.shape.rank in (None, 0) else [None, *value.shape[1:]]
    return tf.Variable(value, trainable=False, shape=tf.TensorShape(shape))


def sparse_rows(sparse: tf.SparseTensor) -> SparseRows:
    """``sparse``'s entries grouped by row (sorted first: a sparse tensor may be in any order)."""
    ordered = tf.sparse.reorder(sparse)
    row_ids = ordered.indices[:, 0]
    nrows = ordered.dense_shape[0]

    def by_row(flat: tf.Tensor) -> tf.RaggedTensor:  # sorted above: nothing to validate
        return tf.RaggedTensor.from_value_rowids(flat, row_ids, nrows=nrows, validate=False)

    return SparseRows(by_row(ordered.values), by_row(ordered.indices[:, 1:]), ordered.dense_shape)


def _gather_sparse(held: SparseRows, rows: tf.Tensor) -> tf.SparseTensor:
    picked_values = tf.gather(held.values, rows)
    picked_rest = tf.gather(held.rest, rows)
    new_rows = tf.expand_dims(picked_values.value_rowids(), 1)
    indices = tf.concat([new_rows, picked_rest.flat_values], axis=1)
    shape = tf.concat([tf.shape(rows, out_type=tf.int64), held.dense_shape[1:]], axis=0)
    return tf.SparseTensor(indices, picked_values.flat_values, shape)


def picked_from(leaf: Any) -> Any:
    """The form rows are picked from: a sparse leaf grouped by row (:class:`SparseRows`)."""
    return sparse_rows(leaf) if isinstance(leaf, tf.SparseTensor) else leaf


def gather_leaf(leaf: Any, rows: tf.Tensor) -> Any:
    """Graph function: ``rows`` of a held leaf (a variable read first, then gathered).

    A gather from the variable itself (``ResourceGather``) copies the whole variable the
    first time unless TensorFlow owns its memory alone, which a variable over fitpipe's
    memory (``_hold`` in ``fitpipe.pipeline.arrays``) never is: 128 MiB copied for 65,536
    x 512 float32 rows at every ``fit``, into fresh pages in a process's first fits
    (0.1-0.4 s). Its value, read, is the same memory, gathered without a copy.
    """
    if isinstance(leaf, (tf.SparseTensor, SparseRows)):
        return _gather_sparse(picked_from(leaf), rows)
    return tf.gather(held_value(leaf), rows)


def held_value(leaf: Any) -> Any:
    """A held variable's value (its memory, not a copy); any other leaf as it is."""
    return leaf.value() if isinstance(leaf, tf.Variable) else leaf


def take_rows(
    structure: Any,
    tensors: tuple[tuple[Any, ...], Any],
    rows: tf.Tensor,
    packing: Packing | None = None,
) -> Any:
    """Graph function: the batch of ``rows`` from held leaves (and class weights, if any).

    Args:
        structure: The nesting of one batch
            (:attr:`~fitpipe.pipeline.ResidentRows.structure`).
        tensors: :attr:`~fitpipe.pipeline.ResidentRows.tensors`: the held leaves, flat,
            and the class weight table or None.
        rows: Row indices.
        packing: How the held leaves hold the batch's (None: one each, in order).
    """
    leaves, class_weights = tensors
    return batch_of(structure, [gather_leaf(leaf, rows) for leaf in leaves], class_weights, packing)


def batch_of(structure: Any, picked: list[Any], class_weights: Any, packing: Packing | None) -> Any:
    """Graph function: the batch of a batch's rows ``picked`` from each held leaf.

    Args:
        structure: The nesting of one batch.
        picked: The batch's rows of each held leaf.
        class_weights: The class weight table applied to the batch, or None.
        packing: How the held leaves hold the batch's (None: one each, in order).
    """
    flat = picked if packing is None else packing.unpack(picked)
    batch = tf.nest.pack_sequence_as(structure, flat)
    if class_weights is not None:
        batch = apply_class_weight(batch, class_weights)
    return batch
