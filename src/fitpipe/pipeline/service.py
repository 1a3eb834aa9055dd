"""Running an input pipeline on tf.data service workers.

``fitpipe.adapt(..., data_service="grpc://host:port")`` (and ``fit(..., data_service=...)``)
sends the pipeline's dataset graph to a tf.data service dispatcher; its workers produce the
batches and this process only receives them. The processing mode is
``"distributed_epoch"``: the dispatcher hands the pipeline's source splits (batch indices
for in-memory rows) to the workers, so every batch of an epoch is produced exactly once, by
some worker, as in a local epoch; only the order in which batches arrive is not fixed.
(``"parallel_epochs"`` would make every worker produce the whole epoch, each row once per
worker.)

A worker runs a serialized graph, in another process: stages that call back into Python in
this process (``tf.py_function``, ``tf.numpy_function``, ``Dataset.from_generator``: Python
generators, ``PyDataset``, Parquet and Arrow streams, NumPy arrays too large to hold in
memory) cannot run there. fitpipe finds them in the graph and says so before training.
In-memory rows are embedded in the graph as constants, so they run remotely.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe import limits
from fitpipe.adapters import ArraySource
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message
from fitpipe.pipeline.arrays import index_batches
from fitpipe.pipeline.row_picks import picked_from, take_rows
from fitpipe.schemas import pack_roles

__all__ = [
    "PROCESSING_MODE",
    "PYTHON_OPS",
    "check_address",
    "constant_array_dataset",
    "on_service",
    "python_stages",
]

#: Graph ops that call back into the Python interpreter of the process that built them.
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

#: Each element of an epoch is produced once, by one of the workers.
PROCESSING_MODE = "distributed_epoch"


def check_address(address: Any, caller: str) -> str:
    """Checks a dispatcher address (``"grpc://host:port"`` or ``"host:port"``)."""
    if not isinstance(address, str) or not address.strip():
        raise FitpipeTypeError(
            message(
                caller,
                "got an invalid `data_service`",
                "`data_service` is the address of a tf.data service dispatcher",
                'Pass e.g. `data_service="grpc://dispatcher:5050"`',
                data_service=address,
            )
        )
    return address


def python_stages(dataset: tf.data.Dataset) -> list[str]:
    """The ops of ``dataset``'s graph that call into Python (empty when it can run remotely).

    Reads the serialized dataset graph (``Dataset._as_serialized_graph``: tf.data has no
    public accessor) and its function library.
    """
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    return sorted({node.op for node in nodes if node.op in PYTHON_OPS})


def on_service(
    dataset: tf.data.Dataset,
    address: str,
    caller: str,
    adapter: str,
    reshuffle: tuple[int, int, int] | None = None,
) -> tf.data.Dataset:
    """Sends ``dataset`` to the tf.data service at ``address`` (after checking it can run).

    Args:
        dataset: The pipeline's batches.
        address: The dispatcher.
        caller: The public method, for errors.
        adapter: The adapter that took the input, named in errors.
        reshuffle: ``(rows, batch_size, seed)`` to shuffle in-memory rows on this side.
            Workers split an epoch's batches between them, so they cannot agree on one
            fresh permutation per epoch; the batches they return are regrouped here
            through a buffer of all rows (new order every epoch, every row once).

    Raises:
        FitpipeValueError: When the pipeline has stages that run Python in this process.
    """
    stages = python_stages(dataset)
    if stages:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot run the input on tf.data service workers: its pipeline (adapter "
                f"{adapter!r}) calls back into Python in this process ({', '.join(stages)})",
                "Service workers run the pipeline's graph in other processes; Python "
                "generators, PyDataset, Parquet and Arrow streams and NumPy arrays over "
                f"{limits.RESIDENT_BYTES_LIMIT // 2**20} MiB are read by Python here",
                "Pass in-memory arrays, Arrow tables or a graph-only `tf.data.Dataset` "
                "(e.g. from TFRecord files), or drop `data_service`",
                data_service=address,
            )
        )
    remote = dataset.apply(
        tf.data.experimental.service.distribute(processing_mode=PROCESSING_MODE, service=address)
    )
    if reshuffle is None:
        return remote
    rows, batch_size, seed = reshuffle
    mixed = remote.unbatch().shuffle(rows, seed=seed, reshuffle_each_iteration=True)
    return mixed.batch(batch_size)


def _constant(leaf: Any) -> Any:
    """A leaf as the graph carries it: a sparse one grouped by row once (``SparseRows``)."""
    if isinstance(leaf, (tf.RaggedTensor, tf.SparseTensor)):
        return picked_from(leaf)
    return tf.constant(leaf)


def constant_array_dataset(source: ArraySource, batch_size: int, caller: str) -> tf.data.Dataset:
    """Batches of in-memory rows, in order, with the rows embedded as graph constants.

    The local pipeline holds rows in variables (referred to by handle), which a remote
    worker cannot read; constants travel with the graph. The source is
    ``Dataset.range(batches)``, which the dispatcher splits between the workers (shuffling
    happens on this side, see :func:`on_service`).

    Raises:
        FitpipeValueError: For NumPy data over :data:`fitpipe.limits.RESIDENT_BYTES_LIMIT`.
    """
    parts = pack_roles(source.x, source.y, source.sample_weight)
    flat = tf.nest.flatten(parts)
    size = sum(leaf.nbytes for leaf in flat if isinstance(leaf, np.ndarray))
    if size > limits.RESIDENT_BYTES_LIMIT:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot send {size // 2**20} MiB of in-memory rows to tf.data service workers",
                "Rows travel to the workers inside the pipeline's graph, up to "
                f"{limits.RESIDENT_BYTES_LIMIT // 2**20} MiB",
                "Write the data to TFRecord files and pass a `tf.data.Dataset` reading them, "
                "or drop `data_service`",
                bytes=size,
            )
        )
    tensors = (tuple(_constant(leaf) for leaf in flat), None)
    structure = tf.nest.map_structure(lambda _: None, parts)

    @tf.autograph.experimental.do_not_convert
    def gather(rows: tf.Tensor) -> Any:
        return take_rows(structure, tensors, rows)

    indices = index_batches(source.num_samples, batch_size, shuffle=False, seed=0)
    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
