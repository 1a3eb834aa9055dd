"""The seed of a shuffled order: drawn from TensorFlow's global seed, only when shuffling.

Keras shuffles rows with TensorFlow's random ops, so ``tf.random.set_seed`` (which
``keras.utils.set_random_seed`` calls) makes a shuffled ``fit`` repeat. fitpipe keys its
orders by one integer per pipeline (a stateless shuffle keyed by the seed and the pass);
that integer comes from one TensorFlow random draw, made only for a pipeline that shuffles.
Before, every array pipeline, ``evaluate`` and ``predict`` included, drew it from NumPy's
global generator: a call that shuffled nothing moved the user's ``np.random`` stream, an
extra ``evaluate`` before ``fit`` changed the weights ``fit`` trained to under
``keras.utils.set_random_seed``, and ``tf.random.set_seed`` alone did not repeat a run.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["shuffle_seed"]

#: Seeds are drawn from ``[0, SEED_BOUND)``.
SEED_BOUND = 2**31 - 1


def shuffle_seed() -> int:
    """A seed for one pipeline's shuffled orders, from TensorFlow's global seed.

    Repeats under ``tf.random.set_seed`` (the same draws in the same order after it), and
    differs between runs without a global seed, as TensorFlow's own random ops do. Drawn
    eagerly (``tf.init_scope``), so a pipeline made while a function traces draws it once.
    """
    with tf.init_scope():
        return int(tf.random.uniform([], maxval=SEED_BOUND, dtype=tf.int64))
