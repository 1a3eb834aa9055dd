"""Where a source spends its time: seconds per input stage, measured as batches are made.

The input-bound report of ``fit`` (``fitpipe.training.input_report``) needs to know, when the
step waits for its input, which stage of the input is slow. Sources that run stages in Python
time them with ``time.perf_counter`` (a fraction of a microsecond per call) into a
:class:`StageClock`, and expose it as the :class:`Timed` capability:

==============  =============================================================================
Stage           What is timed
==============  =============================================================================
``read``        reading Arrow record batches from Parquet files (``read_span``)
``convert``     Arrow columns to arrays, a Python batch to the checked arrays of its spec
``python``      the user's Python code: ``next()`` of a generator, ``PyDataset.__getitem__``
                (inline, or waiting on its workers)
==============  =============================================================================

The stages run on whatever thread makes the batches (a generator's reader, ``tf.data``'s), so
their seconds are busy time, which read-ahead may hide behind the step; the report compares
them with the time the step actually waited (measured in the compiled loop).

Timing is on unless the environment sets ``FITPIPE_INPUT_TIMING=0``; :func:`set_timing`
switches it for a process (the benchmark of its cost does).
"""

from __future__ import annotations

import os
import threading
from typing import Protocol, runtime_checkable

__all__ = ["STAGES", "StageClock", "Timed", "set_timing", "timing"]

#: The stages timed in Python, in the order the report lists them.
STAGES = ("read", "convert", "python")

_TIMING = [os.environ.get("FITPIPE_INPUT_TIMING", "1").strip().lower() not in ("0", "false")]


def timing() -> bool:
    """Whether inputs and compiled loops are timed for the input-bound report."""
    return _TIMING[0]


def set_timing(on: bool) -> bool:
    """Switches the timing for sources and loops made from now on; returns the old value."""
    old, _TIMING[0] = _TIMING[0], bool(on)
    return old


class StageClock:
    """Seconds spent per stage, added from any thread."""

    def __init__(self) -> None:
        self._seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Adds ``seconds`` to ``stage``."""
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    def seconds(self) -> dict[str, float]:
        """The seconds of each stage so far (a copy)."""
        with self._lock:
            return dict(self._seconds)


@runtime_checkable
class Timed(Protocol):
    """Times its stages (see :mod:`fitpipe.adapters.stages`)."""

    def stage_seconds(self) -> dict[str, float]:
        """Seconds spent so far in each stage, by stage name (totals since the start)."""
        ...
