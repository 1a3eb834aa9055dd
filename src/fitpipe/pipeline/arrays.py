"""Batches an :class:`~fitpipe.adapters.ArraySource` into a ``tf.data.Dataset``.

Rows are addressed by index: a dataset of index batches (reshuffled every epoch when asked) is
mapped to the rows of every leaf. Leaves stay where they are as long as possible:

* tensors, and NumPy arrays up to :data:`fitpipe.limits.RESIDENT_BYTES_LIMIT` in all, are held
  once in CPU variables and gathered inside the graph (referred to by handle, never embedded
  as graph constants, so no 2 GB protobuf limit and no copy when tf.data serializes the
  pipeline);
* larger NumPy arrays are not converted at all: each batch is gathered from the NumPy memory,
  so a large array is never copied whole (a trainer takes their rows in blocks instead of
  this dataset's batches, see :mod:`fitpipe.pipeline.numpy_rows`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe import limits
from fitpipe.adapters import ArraySource, Shuffle
from fitpipe.columnar import backing_tensor, owned_tensor
from fitpipe.pipeline.leaf_packing import Packing, leaf_indices, pack_leaves
from fitpipe.pipeline.numpy_rows import ArrayBlocks, NumpyOrder, index_dtype, numpy_batches
from fitpipe.pipeline.options import resolve_batch_size
from fitpipe.pipeline.row_chunks import Chunks, batch_rows, chunk_functions
from fitpipe.pipeline.row_picks import (
    batch_of,
    gather_leaf,
    held_value,
    picked_from,
    rows_variable,
    take_rows,
)
from fitpipe.schemas import pack_roles

__all__ = [
    "ResidentRows",
    "array_dataset",
    "index_batches",
    "resolve_batch_size",
    "shuffled_order",
]


def _split_batches(order: tf.Tensor, num_samples: int, batch_size: int) -> tf.data.Dataset:
    full = num_samples // batch_size * batch_size
    batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], [-1, batch_size]))
    if full < num_samples:
        batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
    return batches


def shuffled_order(
    num_samples: int, batch_size: int, shuffle: Shuffle, key: tf.Tensor
) -> tf.Tensor:
    """A stateless row order keyed by ``key`` (a 2-vector seed).

    ``shuffle="batch"`` keeps every batch a contiguous block of ``batch_size`` rows (the last,
    partial block stays last): the blocks come in a new order and the rows inside each block
    are shuffled. Keras 3 shuffles only inside each block, so its batches come in the same
    order every epoch; the tf.keras 2 documentation ("shuffles in batch-sized chunks") and
    Keras 2's ``batch_shuffle`` move the blocks too, which fitpipe follows.
    """
    dtype = index_dtype(num_samples)
    if shuffle != "batch":
        return tf.random.experimental.stateless_shuffle(tf.range(num_samples, dtype=dtype), key)
    blocks = num_samples // batch_size
    first = tf.random.experimental.stateless_shuffle(tf.range(blocks, dtype=dtype), key)
    inside = tf.argsort(
        tf.random.stateless_uniform([blocks, batch_size], tf.reverse(key, [0])), axis=1
    )
    rows = tf.reshape(first[:, None] * batch_size + tf.cast(inside, dtype), [-1])
    tail = tf.range(blocks * batch_size, num_samples, dtype=dtype)
    tail = tf.random.experimental.stateless_shuffle(tail, key + 1)
    return tf.concat([rows, tail], axis=0)


def permutation(
    num_samples: int, seed: int, epoch: Any, batch_size: int = 1, shuffle: Shuffle = True
) -> tf.Tensor:
    """The row order of pass ``epoch``: a stateless shuffle keyed by ``(seed, epoch)``."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return shuffled_order(num_samples, batch_size, shuffle, key)


def pass_counter() -> tf.Variable:
    """A CPU variable holding the index of the next pass over a shuffled input."""
    with tf.device("/CPU:0"):
        return tf.Variable(0, dtype=tf.int64, trainable=False)


def index_batches(
    num_samples: int,
    batch_size: int,
    shuffle: Shuffle,
    seed: int,
    passes: tf.Variable | None = None,
    in_numpy: bool = False,
) -> tf.data.Dataset:
    """Returns a dataset of index vectors (int32 or int64), one per batch, last partial batch kept.

    A shuffled pass draws one permutation of all rows (one vector, not one element per row,
    so memory stays at 8 bytes a row), keyed by the seed and the pass index read from
    ``passes`` (which each new iteration advances): setting ``passes`` to ``n`` replays pass
    ``n``'s order, as resuming mid-epoch needs.

    Args:
        num_samples: Rows.
        batch_size: Rows per batch.
        shuffle: Reshuffle the rows on every iteration of the dataset (``"batch"``: in
            batch-sized chunks, see :func:`shuffled_order`).
        seed: Seed of the shuffle (drawn from TensorFlow's global seed by the caller,
            :func:`fitpipe.seeds.shuffle_seed`, so ``tf.random.set_seed`` repeats runs).
        passes: The pass counter (see :func:`pass_counter`); a new one when None.
        in_numpy: Draw each pass's permutation in NumPy, in place (4 bytes a row, no
            TensorFlow copies): for arrays too large to hold, whose batches are read from
            NumPy anyway.
    """
    if shuffle:
        counter = passes if passes is not None else pass_counter()

        @tf.autograph.experimental.do_not_convert
        def next_pass(_: tf.Tensor) -> tf.Tensor:
            return counter.assign_add(1) - 1

        @tf.autograph.experimental.do_not_convert
        def permute(epoch: tf.Tensor) -> tf.data.Dataset:
            if in_numpy:
                order = NumpyOrder(num_samples, batch_size, seed, shuffle == "batch")
                return numpy_batches(order, epoch)
            rows = permutation(num_samples, seed, epoch, batch_size, shuffle)
            return _split_batches(rows, num_samples, batch_size)

        start = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
        return start.map(next_pass).flat_map(permute)
    num_batches = math.ceil(num_samples / batch_size)

    @tf.autograph.experimental.do_not_convert
    def span(i: tf.Tensor) -> tf.Tensor:
        start = i * batch_size
        return tf.range(start, tf.minimum(start + batch_size, num_samples), dtype=tf.int64)

    return tf.data.Dataset.range(num_batches).map(span)


def _hold(leaf: Any) -> Any:
    """Keeps a dense leaf in a CPU variable: the dataset graph refers to it by handle.

    A tensor captured by a ``tf.data`` function is copied into the graph whenever tf.data
    serializes it (as it does at every iteration of a shuffled pipeline); a variable is not.
    Rows stacked by TensorFlow fill it from their tensor
    (:func:`~fitpipe.columnar.backing_tensor`), not from a converted copy: converting
    64,000 x 512 stacked float32 rows cost 0.39 s of a 1.2 s ``fit``. A caller's array is
    copied once (:func:`~fitpipe.columnar.owned_tensor`), so the variable never shares the
    caller's memory; TensorFlow's own conversion cost 0.15-0.87 s for those rows the first
    time in a process (memory faulted in as huge pages), 0.08-0.11 s now.
    """
    if isinstance(leaf, (tf.RaggedTensor, tf.SparseTensor)):
        return leaf
    tensor = backing_tensor(leaf)
    with tf.device("/CPU:0"):
        if tensor is None:
            tensor = owned_tensor(leaf)
        return rows_variable(tensor)


def _streams(leaf: Any, numpy_bytes: int) -> bool:
    return (
        isinstance(leaf, np.ndarray)
        and leaf.dtype.kind not in "US"
        and numpy_bytes > limits.RESIDENT_BYTES_LIMIT
    )


def _make_gather(
    parts: tuple[Any, ...],
) -> tuple[Callable[[tf.Tensor], Any] | None, list[Any], Packing | None]:
    """Holds the leaves that stay in memory; large NumPy leaves are streamed.

    Returns:
        ``rows -> batch`` reading the streamed leaves from NumPy, or None when every leaf is
        held; the held leaves (all of them, in flat order, narrow ones side by side, when
        none is streamed); and how a batch is split back into its leaves (``pack_leaves``).
    """
    flat = tf.nest.flatten(parts)
    numpy_bytes = sum(leaf.nbytes for leaf in flat if isinstance(leaf, np.ndarray))
    streamed = [i for i, leaf in enumerate(flat) if _streams(leaf, numpy_bytes)]
    if not streamed:
        packed, packing = pack_leaves(flat)
        return None, [_hold(leaf) for leaf in packed], packing
    resident = {i: _hold(leaf) for i, leaf in enumerate(flat) if i not in streamed}
    streamed_arrays = [flat[i] for i in streamed]
    picks = {i: picked_from(leaf) for i, leaf in resident.items()}

    def read_rows(rows: np.ndarray) -> list[np.ndarray]:
        return [np.take(array, rows, axis=0) for array in streamed_arrays]

    @tf.autograph.experimental.do_not_convert
    def gather(rows: tf.Tensor) -> Any:
        out: list[Any] = [None] * len(flat)
        for i, leaf in picks.items():
            out[i] = gather_leaf(leaf, rows)
        dtypes = [tf.as_dtype(a.dtype) for a in streamed_arrays]
        taken = tf.numpy_function(read_rows, [rows], dtypes, stateful=False)
        for i, tensor, array in zip(streamed, taken, streamed_arrays, strict=True):
            tensor.set_shape([None, *array.shape[1:]])
            out[i] = tensor
        return tf.nest.pack_sequence_as(parts, out)

    return gather, list(resident.values()), None


def _structure(parts: Any) -> Any:
    """The nesting of ``parts`` with every leaf replaced by None (holds no data)."""
    return tf.nest.map_structure(lambda _: None, parts)


def _slice_batch(
    structure: Any, arguments: Any, index: tf.Tensor, packing: Packing | None = None
) -> Any:
    """Graph function: batch ``index`` of the order in ``arguments`` (see ``loop_arguments``)."""
    return take_rows(structure, arguments[0], batch_rows(arguments, index), packing)


def _leaf_key(leaf: Any) -> tuple[str, str, int | None]:
    return type(leaf).__name__, leaf.dtype.name, leaf.shape.rank


@dataclasses.dataclass(frozen=True)
class ResidentRows:
    """Rows held in memory as tensors, so a trainer can slice batches in its compiled loop.

    What a trainer uses: :meth:`loop_arguments` (what its loop over one epoch takes as
    arguments), :meth:`fetch_function` (the graph function slicing batch ``i`` from them),
    :meth:`batch` (the same, eagerly), :meth:`batch_spec` (the spec its loop is traced
    for), :attr:`num_batches`, :attr:`key` and :meth:`as_batch`. A compiled loop captures
    no data, so one loop serves every pipeline with the same :attr:`key`: repeated ``fit``
    calls do not retrace.

    Attributes:
        leaves: The held leaves (variables, ragged or sparse tensors), flat: in host memory,
            or copied to the step's accelerator (``fitpipe.pipeline.device_rows``).
        structure: The nesting of one batch, leaves replaced by None.
        num_samples: Rows.
        batch_size: Rows per batch (the last batch may be smaller).
        shuffle: Whether each epoch uses a new permutation (``"batch"``: of batch-sized
            chunks).
        seed: Seed of the permutations.
        class_weights: The class weight table applied to each batch (a dict of tables by
            target key for a per-output ``class_weight``), or None.
        packing: Which held leaf holds which of a batch's leaves, when narrow ones are held
            side by side (``fitpipe.pipeline.leaf_packing``); None: one each, in order.
    """

    leaves: tuple[Any, ...]
    structure: Any
    num_samples: int
    batch_size: int
    shuffle: Shuffle
    seed: int
    class_weights: Any = None
    packing: Packing | None = None

    @property
    def tensors(self) -> tuple[tuple[Any, ...], Any]:
        """What batches are picked from: the leaves and the class weights.

        A sparse leaf is grouped by row once (:class:`~fitpipe.pipeline.row_picks.SparseRows`).
        """
        return self._picked_from, self.class_weights

    @functools.cached_property
    def _picked_from(self) -> tuple[Any, ...]:
        with tf.init_scope():  # made once, eagerly, even when first asked for while tracing
            return tuple(picked_from(leaf) for leaf in self.leaves)

    @functools.cached_property
    def key(self) -> tuple[Any, ...]:
        """What a loop compiled for these rows depends on besides :attr:`tensors`' values."""
        table = None
        if self.class_weights is not None:  # one table, or a dict of tables by target key
            table = repr(tf.nest.map_structure(lambda t: int(t.shape[0]), self.class_weights))
        leaves = tuple(_leaf_key(leaf) for leaf in self.leaves)
        return repr(self.structure), leaves, table, self.packing

    @tf.autograph.experimental.do_not_convert
    def gather(self, rows: tf.Tensor) -> Any:
        """Graph function from a vector of row indices to one batch."""
        return take_rows(self.structure, self.tensors, rows, self.packing)

    @property
    def num_batches(self) -> int:
        """Batches per epoch."""
        return math.ceil(self.num_samples / self.batch_size)

    def order(self, epoch: int) -> tf.Tensor:
        """The rows of ``epoch`` in the order they are read: a permutation when shuffling."""
        if not self.shuffle:
            return tf.range(self.num_samples, dtype=index_dtype(self.num_samples))
        return permutation(self.num_samples, self.seed, epoch, self.batch_size, self.shuffle)

    def loop_arguments(self, epoch: int) -> tuple[Any, tf.Tensor, tf.Tensor]:
        """What a compiled loop over ``epoch`` takes as arguments.

        The held tensors (:attr:`tensors`, each variable's value: the same memory), the
        epoch's row order (:meth:`order`) and the batch size: everything
        :meth:`fetch_function` slices a batch from. A loop traced for a variable passed as
        an argument and read inside kept that variable (and its memory) for as long as the
        loop lived; a tensor argument is not kept.
        """
        leaves = tuple(held_value(leaf) for leaf in self._picked_from)
        batch = tf.constant(self.batch_size, tf.int64)
        return (leaves, self.class_weights), self.order(epoch), batch

    @staticmethod
    def full_rows(arguments: Any) -> tf.Tensor:
        """Graph function: a full batch's rows, from ``arguments`` of :meth:`loop_arguments`."""
        return arguments[2]

    def fetch_function(self) -> Callable[[Any, tf.Tensor], Any]:
        """The graph function ``(loop_arguments, i) -> Optional(batch i)`` of a compiled loop.

        It captures only the batch's nesting, never data, so the loop serves any rows with
        the same :attr:`key`.
        """
        structure, packing = self.structure, self.packing

        def fetch(arguments: Any, index: tf.Tensor) -> Any:
            batch = _slice_batch(structure, arguments, index, packing)
            return tf.experimental.Optional.from_value(batch)

        return fetch

    def chunk_functions(self) -> Chunks | None:
        """The graph functions of a loop gathering chunks of batches (see ``row_chunks``).

        None when a leaf is sparse or ragged (sliced a batch at a time). Like
        :meth:`fetch_function`, they capture only the batch's nesting: the chunk size is
        computed from the loop's arguments.
        """
        if any(isinstance(leaf, (tf.RaggedTensor, tf.SparseTensor)) for leaf in self.leaves):
            return None
        structure, packing = self.structure, self.packing
        return chunk_functions(
            lambda tensors, rows: [gather_leaf(leaf, rows) for leaf in tensors[0]],
            lambda tensors, start, stop: [held_value(leaf)[start:stop] for leaf in tensors[0]],
            lambda picked, tensors: batch_of(structure, picked, tensors[1], packing),
        )

    def batch(self, arguments: Any, index: Any) -> Any:
        """Batch ``index`` sliced from ``arguments`` (of :meth:`loop_arguments`), eagerly."""
        return _slice_batch(self.structure, arguments, index, self.packing)

    def dataset_spec(self) -> Any:
        """The element spec of the dataset of these rows (``array_dataset``), unbuilt.

        Known when every leaf is dense (a held variable) and no class weight is applied;
        else None. Its batch dimension is the batch size when a shuffled pass is cut into
        whole batches only (``index_batches``), else unknown.
        """
        if self.class_weights is not None or not all(
            isinstance(leaf, tf.Variable) for leaf in self.leaves
        ):
            return None
        whole = bool(self.shuffle) and self.num_samples % self.batch_size == 0
        rows = self.batch_size if whole else None
        if self.packing is not None:
            return tf.nest.pack_sequence_as(self.structure, self.packing.specs(self.leaves, rows))
        specs = [tf.TensorSpec([rows, *leaf.shape[1:]], leaf.dtype) for leaf in self.leaves]
        return tf.nest.pack_sequence_as(self.structure, specs)

    def as_batch(self, parts: Collection[int] | None = None) -> Any:
        """Every held row as one batch, without class weights (what data checks read).

        With ``parts`` (of a batch ``(x, y, sample_weight)``), the leaves of the other parts
        are None: narrow leaves held side by side are split back out only where a check
        reads them (all split out, 32 one-column inputs of 183 MiB held a second copy).
        """
        if self.packing is None:
            return tf.nest.pack_sequence_as(self.structure, list(self.leaves))
        picked = [held_value(leaf) for leaf in self.leaves]  # narrow leaves split back out
        if parts is None:
            return batch_of(self.structure, picked, None, self.packing)
        wanted = set(leaf_indices(self.structure, parts))
        return tf.nest.pack_sequence_as(self.structure, self.packing.unpack(picked, wanted))

    @staticmethod
    def batch_spec(element_spec: Any) -> Any:
        """``element_spec`` with any batch size: the spec of the batches sliced from rows.

        A pipeline whose batches are all full declares their size; the compiled loop's
        slices do not, and tracing the step for the declared size would trace it a second
        time (about a second before the first step) for the slices.

        Args:
            element_spec: The pipeline's spec of one batch.

        Returns:
            The same spec, its batch dimension unknown.
        """

        def relaxed(spec: Any) -> Any:
            if isinstance(spec, tf.TensorSpec) and spec.shape.rank:
                return tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)
            if isinstance(spec, tf.SparseTensorSpec) and spec.shape.rank:
                return tf.SparseTensorSpec([None, *spec.shape[1:]], spec.dtype)
            return spec

        return tf.nest.map_structure(relaxed, element_spec)


def array_dataset(
    source: ArraySource, batch_size: int, shuffle: Shuffle, seed: int
) -> tuple[
    Callable[[], tf.data.Dataset], ResidentRows | None, Callable[[int], None], ArrayBlocks | None
]:
    """Holds the rows and returns how to build the dataset of Keras batches of one epoch.

    The dataset is built only when asked for: a trainer slices the batches of rows held in
    memory from :class:`ResidentRows` inside its compiled loop and never iterates it, and
    building it traces its ``tf.data`` functions (about 20 ms), whose graphs capture the
    held variables in reference cycles (the rows stayed in memory until Python's next
    garbage collection, and the next ``fit`` over 64,000 x 512 float32 rows faulted in 128 MB
    of fresh pages to hold them again: 50-100 ms).

    Args:
        source: The rows.
        batch_size: Rows per batch.
        shuffle: Reshuffle rows on every iteration (``"batch"``: in batch-sized chunks).
        seed: Shuffle seed.

    Returns:
        A function building the dataset (iterate it once per epoch), the resident rows when
        every leaf is held in memory (None when some are streamed from NumPy), ``seek(n)``,
        which makes the next iteration read pass ``n`` (its shuffle order), and, when some
        are streamed and every leaf is a NumPy array of numbers, the same passes' rows in
        blocks (an ``ArrayBlocks``), else None.
    """
    parts = pack_roles(source.x, source.y, source.sample_weight)
    streamed, leaves, packing = _make_gather(parts)
    rows = None
    if streamed is None:
        rows = ResidentRows(
            tuple(leaves),
            _structure(parts),
            source.num_samples,
            batch_size,
            shuffle,
            seed,
            packing=packing,
        )
    passes = pass_counter()
    gather = rows.gather if rows is not None else streamed
    assert gather is not None

    def make_dataset() -> tf.data.Dataset:
        in_numpy = rows is None
        indices = index_batches(source.num_samples, batch_size, shuffle, seed, passes, in_numpy)
        return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    blocks = None
    if rows is None and ArrayBlocks.takes(parts):
        blocks = ArrayBlocks(parts, source.num_samples, batch_size, shuffle, seed, passes)

    def seek(n: int) -> None:
        passes.assign(n)

    return make_dataset, rows, seek, blocks
