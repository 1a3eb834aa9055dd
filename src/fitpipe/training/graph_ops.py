"""What a traced step's graph holds, for the XLA tuner (``tuning.XlaChoice``).

A step whose gradient scatters (an embedding's) tries XLA at once, and a step that runs a
loop of its own (a recurrent layer's) sooner than others: on CPU the plain graph runs both
several times slower than XLA's fused step (figures in ``XlaChoice``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BRANCH_OPS",
    "CASE_OPS",
    "LOOP_OPS",
    "SWITCHES",
    "control_flow",
    "loops",
    "op_types",
    "scatters",
    "switches",
]

#: The op types of a loop in a traced step (``tf.while_loop``, Keras' recurrent layers).
LOOP_OPS = frozenset({"While", "StatelessWhile"})
#: The op types of a ``tf.switch_case`` (``keras.ops.switch``) in a traced step.
CASE_OPS = frozenset({"Case", "StatelessCase"})
#: Why a step with :data:`CASE_OPS` is not compiled with XLA (see :func:`switches`).
SWITCHES = (
    "its step has a `tf.switch_case` (`keras.ops.switch`), on which XLA aborted or crashed "
    "the process when compiled for batches of any size (TensorFlow 2.21, CPU)"
)
#: The op types of a branch in a traced step (``tf.cond``, ``keras.ops.cond``, and
#: :data:`CASE_OPS`).
BRANCH_OPS = frozenset({"If", "StatelessIf"}) | CASE_OPS


def _scatter_op(op: str) -> bool:
    """Whether an op type scatters a gathered gradient back (an embedding's).

    Whatever the optimizer: ``UnsortedSegmentSum`` under Adam, ``ResourceScatterSub`` under
    SGD, ``ResourceScatterAdd`` under Adagrad.
    """
    return "Scatter" in op or op.startswith("UnsortedSegment")


def op_types(concrete: Any) -> frozenset[str]:
    """The op types of a traced step and of every function it calls (loop bodies included)."""
    graph = concrete.graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return frozenset(node.op for node in nodes)


def scatters(ops: frozenset[str]) -> bool:
    """Whether a step's ops (:func:`op_types`) scatter into a variable or segments.

    TensorFlow's CPU kernels for these run several times slower than XLA's fused step (see
    :class:`~fitpipe.training.tuning.XlaChoice`, which tries XLA early for such steps).
    """
    return any(_scatter_op(op) for op in ops)


def loops(ops: frozenset[str]) -> bool:
    """Whether a step's ops (:func:`op_types`) run a loop of their own (a recurrent layer's).

    The plain graph runs a loop's small ops one at a time, every iteration; XLA fuses them
    (see :class:`~fitpipe.training.tuning.XlaChoice`, which tries XLA sooner for such steps).
    """
    return not ops.isdisjoint(LOOP_OPS)


def control_flow(ops: frozenset[str]) -> bool:
    """Whether a step's ops (:func:`op_types`) loop or branch.

    TensorFlow builds their gradients one way inside an XLA function and another outside
    (outside: shapes read at run time, intermediates kept as optionals), and XLA compiles
    only the first. So a plain trace of such a step cannot be reused inside an XLA one: an
    LSTM's plain trace called from XLA's failed ("BroadcastGradientArgs must be a
    compile-time constant"), where the step traced inside XLA's function compiles.
    """
    return not ops.isdisjoint(LOOP_OPS | BRANCH_OPS)


#: Op types that draw random numbers and say neither "Random" nor "TruncatedNormal".
RANDOM_OPS = frozenset({"Multinomial", "StatelessMultinomial"})


def draws_random(ops: frozenset[str]) -> bool:
    """Whether a step's ops (:func:`op_types`) draw random numbers (stateless or not).

    Keras' random layers draw through ``StatelessRandom*`` ops (``Dropout``: a uniform,
    ``GaussianNoise``: a normal) while training; an ``LSTM`` without dropout draws none,
    though it tracks a seed generator. XLA draws other numbers from the same seeds.
    """
    return any("Random" in op or "TruncatedNormal" in op for op in ops) or not ops.isdisjoint(
        RANDOM_OPS
    )


def switches(ops: frozenset[str]) -> bool:
    """Whether a step's ops (:func:`op_types`) hold a ``tf.switch_case``.

    Such a step runs the plain graph (with a warning under ``jit_compile=True``; Keras'
    own ``fit`` crashed too, from a ``tf.data.Dataset``). TensorFlow 2.21's XLA on CPU ran a
    ``tf.switch_case`` step traced for batches of any size into memory corruption: in a bare
    ``tf.function(jit_compile=True)`` of a two-branch switch in a dense step, traced for
    ``[None, 4]`` batches, 7 processes of 7 aborted (``free(): corrupted unsorted
    chunks``), segfaulted or hung within 2,000 steps; traced for ``[8, 4]``, 0 of 6.
    """
    return not ops.isdisjoint(CASE_OPS)
