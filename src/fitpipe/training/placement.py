"""Where a trainer's step runs: on the host, or on an accelerator (a GPU).

Two things follow from it. Rows in memory are copied to an accelerator for the call
(``Pipeline.rows_on``): gathered on the host, every call copied its batches over. And the
tuners time wall seconds there, not the process's CPU seconds (``fitpipe.training.tuning``):
on a GPU the host's CPU time is its share of the work only (launching kernels, copying), so
an XLA step that launches fewer kernels looked cheap whatever the device did, and the plain
graph's CPU seconds never added up to the trial's threshold (2,000,000 x 512 rows on an H200:
"auto" never tried XLA, which ran Keras' step 2.0x faster there; ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import tensorflow as tf

__all__ = ["ACCELERATORS", "step_clock", "step_device"]

#: Device types whose steps get rows copied to them and wall-clock tuning.
ACCELERATORS = frozenset({"GPU", "TPU"})


def step_device() -> str | None:
    """The accelerator a new tensor is placed on here, now; None when it is the host.

    Read where TensorFlow places an eager op under the caller's device scope (a
    ``with tf.device("/CPU:0")`` around ``fit`` keeps everything on the host), which is
    where Keras creates the model's variables and a single-device step runs.
    """
    device = tf.zeros([]).device
    kind = tf.DeviceSpec.from_string(device).device_type
    return device if kind in ACCELERATORS else None


def step_clock() -> Callable[[], float]:
    """The tuners' clock: wall time when the step runs on an accelerator, else CPU time."""
    return time.perf_counter if step_device() is not None else time.process_time
