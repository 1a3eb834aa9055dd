"""What ``jit_compile="auto"`` decides by rule, before it times anything.

``"auto"`` otherwise times the plain graph and XLA and keeps the faster
(:class:`~fitpipe.training.tuning.XlaChoice`). Timing makes the choice depend on the machine's
load and on what earlier runs remembered, so it is not made where the run must repeat:

* **a seeded run** (TensorFlow's global seed is set, as ``keras.utils.set_random_seed`` sets
  it). The two variants never compute quite the same numbers: XLA fuses and reorders the
  floating-point work (the last bits of a loss differ, even for an MLP), and a step that
  draws random numbers (``Dropout``, ``GaussianNoise``, the random augmentation layers, a
  recurrent layer's dropout, a layer's own ``keras.random`` calls) draws other masks and
  noise from the same seed. A seeded script therefore trained to different weights in
  different processes, by which variant the timing chose (and when: the trial steps train
  too), and remembered, chose again in later runs. A seeded step runs what Keras' own
  ``"auto"`` resolves to on its device (the plain graph on the host, XLA on an
  accelerator), and a seeded run repeats, as it does in Keras, with Keras' numbers.
  Unseeded, a run does not repeat whatever the variant, and the faster one is measured;
* **op determinism** (``tf.config.experimental.enable_op_determinism()``): Keras turns XLA
  off, since not every op is deterministic under XLA; so does fitpipe.

Inputs XLA cannot take (sparse or ragged batches) and steps XLA failed to compile run the
plain graph too. ``jit_compile=True`` or ``False`` is kept as given, except that a step XLA
cannot compile, sparse or ragged batches included, runs the plain graph with a warning.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from fitpipe.training import graph_ops, placement
from fitpipe.training.tuning import XlaChoice

__all__ = [
    "COMPOSITE",
    "RANDOM",
    "SEEDED",
    "by_ops",
    "first_choice",
    "global_seed",
    "op_determinism",
]

#: The reason shown in ``Trainer.tuning`` for a step that draws random numbers.
RANDOM = "a seeded step draws random numbers (XLA draws others): Keras' choice on this device"
#: The reason shown for any other step of a seeded run.
SEEDED = "a seeded run repeats only with one variant (XLA rounds otherwise): Keras' choice here"
#: The warning (less its fix) for sparse or ragged batches under ``jit_compile=True``: XLA has
#: no kernels for sparse inputs, and compiles few ops on ragged ones (their sizes change
#: from batch to batch). ``"auto"`` runs them on the plain graph silently (:func:`first_choice`).
COMPOSITE = (
    "`{caller}` cannot compile the model with XLA for sparse or ragged batches (XLA has no "
    "kernels for sparse tensors and compiles few ops on ragged ones)"
)


def op_determinism() -> bool:
    """Whether ``tf.config.experimental.enable_op_determinism()`` is in force.

    TensorFlow has no public reader for it; Keras' ``model_supports_jit`` reads the same
    function. Without it (another TensorFlow), determinism is taken to be off.
    """
    try:
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:  # pragma: no cover - TensorFlow without the reader
        return False
    return bool(is_op_determinism_enabled())


def first_choice(composite: bool, xla_fails: bool) -> XlaChoice:
    """The choice for a step's new input under ``"auto"``: decided by rule, or to be timed.

    Args:
        composite: The input has sparse or ragged leaves.
        xla_fails: XLA could not compile the step before.

    Returns:
        The choice, decided when a rule applies (see also :func:`by_ops`).
    """
    choice = XlaChoice(early=placement.step_device() is not None)
    if composite:
        choice.decide(False, "sparse or ragged input")
    elif xla_fails:
        choice.decide(False, "XLA cannot compile the step")
    elif op_determinism():
        choice.decide(False, "op determinism is enabled (Keras turns XLA off too)")
    return choice


def global_seed() -> int | None:
    """TensorFlow's global seed (``tf.random.set_seed``), or None; nothing is drawn.

    Read where TensorFlow hands it to a function it traces (a trace of an empty function,
    about a millisecond): TensorFlow has no public reader of the eager seed.
    """
    seen: list[int | None] = []

    def probe() -> Any:
        seen.append(tf.compat.v1.get_default_graph().seed)
        return tf.constant(0)

    tf.function(probe, autograph=False).get_concrete_function()
    return seen[0]


def by_ops(choice: XlaChoice, ops: frozenset[str]) -> None:
    """Decides an undecided choice of a seeded run: Keras' choice on the step's device.

    Read once the step's plain graph is traced (its ops: ``graph_ops.op_types``, which say
    whether it draws random numbers), before any variant is timed.
    """
    if choice.decided is None and global_seed() is not None:
        reason = RANDOM if graph_ops.draws_random(ops) else SEEDED
        choice.decide(placement.step_device() is not None, reason)
