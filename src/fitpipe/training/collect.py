"""Predictions gathered over the steps of a compiled call, and over calls: dense, ragged, sparse.

A compiled ``predict`` call runs several steps and returns their outputs concatenated along
the batch axis. ``tf.TensorArray`` holds dense tensors only, so a ``tf.RaggedTensor`` output
is held as its parts: its flat values and the row lengths of each ragged dimension.
Concatenating each part along axis 0 and rebuilding gives the outputs concatenated (rows
of a ragged tensor are stored in order at every level). A ``tf.SparseTensor`` output is held
as its indices, values, and per step its dense shape and count of values, from which the
indices of each step are shifted by the rows before it. As Keras, ``predict`` returns ragged
outputs as ``tf.RaggedTensor``, sparse ones as ``tf.SparseTensor`` and dense ones as NumPy
arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitpipe.columnar import join_rows

__all__ = [
    "concat_outputs",
    "held_ranks",
    "held_specs",
    "join_steps",
    "merge_predictions",
    "output_arrays",
    "output_specs",
    "settle",
    "to_results",
    "write_outputs",
]


def output_specs(outputs: Any) -> Any:
    """The spec of each traced output: ``TensorSpec`` for dense ones, others' kept."""
    return tf.nest.map_structure(
        lambda t: (
            tf.type_spec_from_value(t)
            if isinstance(t, (tf.RaggedTensor, tf.SparseTensor))
            else tf.TensorSpec(t.shape, t.dtype)
        ),
        outputs,
    )


def held_ranks(out_specs: Any) -> list[int]:
    """Per output (flattened), the ragged rank a call holds it at: 0 for most outputs.

    A dense output whose sizes beyond the batch are ``None`` in the model may change size
    from one step to the next (a sequence model over batches of different lengths); a call
    holds it as a ``tf.RaggedTensor`` ragged up to its last such size, and ``predict``
    returns it as Keras does (:func:`settle`).
    """

    def rank(spec: Any) -> int:
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None:
            return 0
        sizes = spec.shape.as_list()[1:]
        return max((i + 1 for i, size in enumerate(sizes) if size is None), default=0)

    return [rank(spec) for spec in tf.nest.flatten(out_specs)]


def held_specs(out_specs: Any) -> Any:
    """``out_specs`` with each output of :func:`held_ranks` > 0 as its ragged spec."""
    flat = tf.nest.flatten(out_specs)
    held = [
        tf.RaggedTensorSpec(spec.shape, spec.dtype, ragged_rank=rank) if rank else spec
        for spec, rank in zip(flat, held_ranks(out_specs), strict=True)
    ]
    return tf.nest.pack_sequence_as(out_specs, held)


def _parts_specs(spec: Any) -> list[tf.TensorSpec]:
    if isinstance(spec, tf.SparseTensorSpec):  # indices, values, dense shapes, counts
        rank = spec.shape.rank
        index = tf.TensorSpec([None, rank], tf.int64)
        return [index, tf.TensorSpec([None], spec.dtype), index, tf.TensorSpec([None], tf.int64)]
    if isinstance(spec, tf.RaggedTensorSpec):
        inner = spec.shape[spec.ragged_rank + 1 :]
        values = tf.TensorSpec([None, *inner], spec.dtype)
        lengths = tf.TensorSpec([None], spec.row_splits_dtype)
        return [values] + [lengths] * spec.ragged_rank
    return [spec]


def _parts(value: Any) -> list[tf.Tensor]:
    if isinstance(value, tf.SparseTensor):  # a step's dense shape and count of values: a row
        count = tf.shape(value.indices, out_type=tf.int64)[:1]
        return [value.indices, value.values, value.dense_shape[tf.newaxis], count]
    if isinstance(value, tf.RaggedTensor):
        return [value.flat_values, *value.nested_row_lengths()]
    return [value]


def output_arrays(out_specs: Any) -> Any:
    """Growable ``TensorArray``s for the outputs of every step of a call (per output part)."""

    def arrays(spec: Any) -> list[tf.TensorArray]:
        return [
            tf.TensorArray(
                part.dtype,
                size=0,
                dynamic_size=True,
                infer_shape=False,
                element_shape=tf.TensorShape([None]).concatenate(part.shape[1:]),
            )
            for part in _parts_specs(spec)
        ]

    return tf.nest.map_structure(arrays, out_specs)


def write_outputs(written: Any, index: tf.Tensor, outputs: Any, out_specs: Any) -> Any:
    """``written`` with one step's ``outputs`` stored at ``index``."""
    flat_outputs = [
        tf.RaggedTensor.from_tensor(value, ragged_rank=spec.ragged_rank)
        if isinstance(spec, tf.RaggedTensorSpec) and not isinstance(value, tf.RaggedTensor)
        else value
        for value, spec in zip(tf.nest.flatten(outputs), tf.nest.flatten(out_specs), strict=True)
    ]
    stored = [
        [ta.write(index, part) for ta, part in zip(arrays, _parts(value), strict=True)]
        for arrays, value in zip(_flat_arrays(written, out_specs), flat_outputs, strict=True)
    ]
    return tf.nest.pack_sequence_as(out_specs, stored)


def concat_outputs(count: tf.Tensor, written: Any, out_specs: Any) -> Any:
    """The written outputs concatenated along the batch axis (empty when no step ran)."""

    def rebuild(spec: Any, parts: list[tf.Tensor]) -> Any:
        if isinstance(spec, tf.SparseTensorSpec):
            return _joined_sparse(*parts)
        if isinstance(spec, tf.RaggedTensorSpec):
            return tf.RaggedTensor.from_nested_row_lengths(parts[0], parts[1:], validate=False)
        return parts[0]

    def empty(spec: Any) -> list[tf.Tensor]:
        return [_no_rows(p) for p in _parts_specs(spec)]

    flat_specs = tf.nest.flatten(out_specs)
    flat_written = _flat_arrays(written, out_specs)
    parts = tf.cond(
        count > 0,
        lambda: [[ta.concat() for ta in arrays] for arrays in flat_written],
        lambda: [empty(spec) for spec in flat_specs],
    )
    return tf.nest.pack_sequence_as(
        out_specs, [rebuild(spec, p) for spec, p in zip(flat_specs, parts, strict=True)]
    )


def _joined_sparse(
    indices: tf.Tensor, values: tf.Tensor, shapes: tf.Tensor, counts: tf.Tensor
) -> tf.SparseTensor:
    """Steps' sparse outputs, stored as parts, as one: ``tf.sparse.concat`` along the batch.

    Each step's indices count its rows from 0: they are shifted by the rows of the steps
    before. The sizes beyond the batch are the largest any step had (all alike, as
    ``tf.sparse.concat`` requires; 0 when no step ran).
    """
    rows = shapes[:, 0]
    shift = tf.repeat(tf.cumsum(rows, exclusive=True), counts)
    indices = tf.concat([indices[:, :1] + shift[:, tf.newaxis], indices[:, 1:]], axis=1)
    sizes = tf.maximum(tf.reduce_max(shapes[:, 1:], axis=0), 0)
    return tf.SparseTensor(indices, values, tf.concat([tf.reduce_sum(rows)[tf.newaxis], sizes], 0))


def _no_rows(spec: tf.TensorSpec) -> tf.Tensor:
    """0 rows of a part of ``spec`` (of an unknown rank: 0 values).

    A part's sizes beyond the batch are known: outputs whose sizes are not are held ragged
    (:func:`held_specs`).
    """
    if spec.shape.rank is None:
        return tf.zeros([0], spec.dtype)
    return tf.zeros([0, *spec.shape[1:]], spec.dtype)


def _flat_arrays(written: Any, out_specs: Any) -> list[list[tf.TensorArray]]:
    """The per-output lists of arrays of ``written``, in the order of ``out_specs``' leaves."""
    arrays = iter(tf.nest.flatten(written))
    return [[next(arrays) for _ in _parts_specs(spec)] for spec in tf.nest.flatten(out_specs)]


def to_results(outputs: Any) -> Any:
    """One call's outputs as ``predict`` returns them: NumPy arrays, ragged tensors kept.

    Through ``keras.tree``, whose walk of a small nest is 5x ``tf.nest``'s (each
    ``predict_on_batch`` call converts its outputs here).
    """
    return keras.tree.map_structure(
        lambda o: o if isinstance(o, (tf.RaggedTensor, tf.SparseTensor)) else np.asarray(o),
        outputs,
    )


def settle(outputs: Any, ranks: list[int]) -> Any:
    """Outputs held ragged (:func:`held_ranks`) as Keras' ``predict`` returns them.

    Dense where every row has one size; otherwise a ``tf.RaggedTensor`` ragged up to its
    last size that varies, uniform beyond (as Keras' ``predict`` builds it from batches).
    """
    if not any(ranks):
        return outputs
    flat = [
        _settled(value) if rank and isinstance(value, tf.RaggedTensor) else value
        for value, rank in zip(tf.nest.flatten(outputs), ranks, strict=False)
    ]
    return tf.nest.pack_sequence_as(outputs, flat)


def _settled(value: tf.RaggedTensor) -> Any:
    lengths = [length.numpy() for length in value.nested_row_lengths()]
    varying = [len(set(level.tolist())) > 1 for level in lengths]
    last = max((i + 1 for i, vary in enumerate(varying) if vary), default=0)
    if last == value.ragged_rank:
        return value
    if last == 0:
        return value.to_tensor().numpy()
    uniform = [int(level[0]) if len(level) else 0 for level in lengths[last:]]
    values = tf.reshape(value.flat_values, [-1, *uniform, *value.flat_values.shape[1:]])
    return tf.RaggedTensor.from_nested_row_lengths(values, lengths[:last], validate=False)


def _ragged_at(part: Any, rank: int) -> tf.RaggedTensor:
    """A held output's part (dense, or settled at a lower ragged rank) at ragged ``rank``."""
    if not isinstance(part, tf.RaggedTensor):
        return tf.RaggedTensor.from_tensor(part, ragged_rank=rank)
    if part.ragged_rank == rank:
        return part
    inner = tf.RaggedTensor.from_tensor(part.flat_values, ragged_rank=rank - part.ragged_rank)
    return part.with_flat_values(inner)


def join_steps(outputs: list[Any], held: list[int]) -> Any:
    """Steps' outputs joined along the batch axis, as a call returns them (run eagerly).

    A dense output whose sizes beyond the batch differ between steps (a model run eagerly
    over batches of different lengths, or parts of a call that joined so) is held as a
    compiled call holds it: ragged up to its last axis; ``held`` (per output, flattened, as
    :func:`held_ranks`) is raised in place to that rank, so ``predict`` settles it.
    """
    flat = [tf.nest.flatten(step) for step in outputs]
    held.extend([0] * (len(flat[0]) - len(held)))
    joined = []
    for i, parts in enumerate(zip(*flat, strict=True)):
        if _uneven(parts):
            held[i] = max(held[i], *(part.shape.rank - 1 for part in parts))
            joined.append(_concat_at(parts, held[i]))
        elif isinstance(parts[0], tf.SparseTensor):
            joined.append(tf.sparse.concat(0, list(parts)))
        else:
            joined.append(tf.concat(parts, 0))
    return tf.nest.pack_sequence_as(outputs[0], joined)


def _concat_at(parts: Sequence[Any], rank: int) -> tf.RaggedTensor:
    """Parts joined along the batch axis, each ragged at ``rank`` (dense parts made so)."""
    return tf.concat([_ragged_at(part, rank) for part in parts], 0)


def _uneven(parts: Sequence[Any]) -> bool:
    """Whether dense parts differ in their sizes beyond the batch (or some were held ragged)."""
    if any(isinstance(part, tf.SparseTensor) for part in parts):
        return False
    ragged = [isinstance(part, tf.RaggedTensor) for part in parts]
    if all(ragged):
        return False
    return any(ragged) or len({tuple(part.shape[1:]) for part in parts}) > 1


def merge_predictions(chunks: list[Any], ranks: list[int] | None = None) -> Any:
    """The outputs of every call concatenated along the batch axis (ragged stays ragged).

    Outputs held ragged (``ranks``, :func:`held_ranks`) are joined at their held rank and
    :func:`settle`-d; dense ones whose sizes differ between calls become Keras' ragged result.
    """
    flat_chunks = [tf.nest.flatten(chunk) for chunk in chunks]
    ranks = list(ranks or []) + [0] * (len(flat_chunks[0]) - len(ranks or []))
    merged = [_merge([c[i] for c in flat_chunks], rank) for i, rank in enumerate(ranks)]
    return tf.nest.pack_sequence_as(chunks[0], merged)


def _merge(parts: list[Any], rank: int) -> Any:
    """One output's parts (one per call) concatenated; see :func:`merge_predictions`."""
    if rank:
        joined = parts[0] if len(parts) == 1 else _concat_at(parts, rank)
        return _settled(joined) if isinstance(joined, tf.RaggedTensor) else joined
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tf.RaggedTensor):
        return tf.concat(parts, axis=0)
    if isinstance(parts[0], tf.SparseTensor):
        return tf.sparse.concat(0, list(parts))
    with_rows = [part for part in parts if np.ndim(part) == 0 or len(part)] or parts[:1]
    if _uneven(with_rows):  # sizes that differ between calls
        return _settled(_concat_at(with_rows, max(part.ndim for part in with_rows) - 1))
    return join_rows(with_rows)
