"""Is training waiting on the input? The per-epoch report ``fit`` prints and keeps.

What is measured, per training epoch (validation is not counted):

* ``seconds``: the epoch's wall time in the step loop (callbacks included), less the calls
  during which the step was traced and compiled;
* ``waited_seconds``: the time the compiled loop blocked on its input. The loop fetches each
  batch while the previous step runs (``fitpipe.training.step_loops``) and counts, with two
  ``tf.timestamp`` ops, the seconds from that step's end to the batch (none when the batch
  came first), so an input read ahead counts nothing and only real waiting counts.
  Rows held in memory are sliced inside the loop: nothing to wait for (0);
* ``stages``: the busy seconds of the input's Python stages (``read``, ``convert``,
  ``python``: see ``fitpipe.adapters.stages``), and ``transfer``: the wait that the Python
  stages do not account for (the ``tf.data`` pipeline, its prefetch, host to device).

An epoch is input-bound when it waited more than :data:`INPUT_BOUND_SHARE` of its time; the
report then names the stage with the most seconds, with a hint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["INPUT_BOUND_SHARE", "LINE_PREFIX", "EpochTiming", "InputReport"]

#: How the printed line of the report starts (tests comparing output with Keras' skip it).
LINE_PREFIX = "input ("

#: An epoch that waited more than this share of its time for input is input-bound.
INPUT_BOUND_SHARE = 0.2

_WHAT = {
    "read": "reading Parquet",
    "convert": "converting Arrow columns or Python batches to arrays",
    "python": "your Python code (generator `next()` or `PyDataset.__getitem__`)",
    "transfer": "the tf.data pipeline and its transfer to the step",
}
_HINTS = {
    "read": (
        "read fewer, larger row groups (write the Parquet files with `row_group_size` of "
        "100k+ rows), read only the columns the schema needs, or use faster storage"
    ),
    "convert": (
        "pass a larger `batch_size`, and store numeric columns (fixed-size lists for "
        "vectors) that convert without copies"
    ),
    "python": (
        "give a `keras.utils.PyDataset` `workers=N` (with `use_multiprocessing=True` for "
        "CPU-bound code), yield larger batches, or precompute the work"
    ),
    "transfer": "pass a larger `batch_size`",
}
#: For inputs that come in batches (``tf.data``, generators, ``PyDataset``), which refuse
#: ``batch_size``: their batches are their own to make larger.
_BATCHED_HINTS = {
    **_HINTS,
    "convert": (
        "make the input's batches larger, and store numeric columns (fixed-size lists for "
        "vectors) that convert without copies"
    ),
    "transfer": (
        "make the input's batches larger (`.batch(n)` of a `tf.data` dataset, larger "
        "batches from a generator or `PyDataset`: `batch_size` is the input's own), and "
        "give a `tf.data` pipeline `num_parallel_calls=tf.data.AUTOTUNE` in its `map` and "
        "`.prefetch(tf.data.AUTOTUNE)`"
    ),
}


@dataclasses.dataclass(frozen=True)
class EpochTiming:
    """What one run of an epoch measured.

    Attributes:
        steps: Steps run.
        seconds: Wall time of the step loop, less the calls that traced the step.
        waited: Seconds the compiled loop blocked on its input.
        stages: Busy seconds of the input's Python stages during the epoch.
        in_memory: The batches were sliced from rows held in memory.
    """

    steps: int
    seconds: float
    waited: float
    stages: dict[str, float]
    in_memory: bool


def _dominant(waited: float, stages: dict[str, float]) -> tuple[str, dict[str, float]]:
    """The stage with most seconds, and the stages with ``transfer`` (unexplained wait)."""
    shown = {name: round(value, 6) for name, value in stages.items() if value > 0}
    shown["transfer"] = round(max(0.0, waited - sum(stages.values())), 6)
    return max(shown, key=lambda name: shown[name]), shown


class InputReport:
    """Collects the epochs of one ``fit`` and says whether it waited on its input.

    Args:
        adapter: The adapter that took the training input.
        timed: Whether the timing was on (``fitpipe.adapters.timing``).
        batched: The input comes in batches of its own (no ``batch_size``): the hints say
            how to make those larger.
    """

    def __init__(self, adapter: str, timed: bool, batched: bool = False) -> None:
        self.adapter = adapter
        self.timed = timed
        self.hints = _BATCHED_HINTS if batched else _HINTS
        self.epochs: list[dict[str, Any]] = []
        self.in_memory = False

    def add(self, epoch: int, timing: EpochTiming) -> None:
        """Records one epoch's timing."""
        self.in_memory = timing.in_memory
        seconds = max(timing.seconds, 1e-9)
        share = min(1.0, timing.waited / seconds)
        dominant, stages = _dominant(timing.waited, timing.stages)
        bound = self.timed and share > INPUT_BOUND_SHARE
        self.epochs.append(
            {
                "epoch": epoch,
                "steps": timing.steps,
                "seconds": round(timing.seconds, 6),
                "waited_seconds": round(timing.waited, 6),
                "waited_share": round(share, 4),
                "stages": stages,
                "input_bound": bound,
                "stage": dominant if bound else None,
                "hint": self.hints[dominant] if bound else None,
            }
        )

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values (``history.input_report``)."""
        seconds = sum(e["seconds"] for e in self.epochs)
        waited = sum(e["waited_seconds"] for e in self.epochs)
        stages: dict[str, float] = {}
        for record in self.epochs:
            for name, value in record["stages"].items():
                stages[name] = stages.get(name, 0.0) + value
        share = min(1.0, waited / seconds) if seconds > 0 else 0.0
        bound = self.timed and share > INPUT_BOUND_SHARE
        dominant = max(stages, key=lambda name: stages[name]) if stages else "transfer"
        return {
            "input": self.adapter,
            "timed": self.timed,
            "in_memory": self.in_memory,
            "threshold": INPUT_BOUND_SHARE,
            "seconds": round(seconds, 6),
            "waited_seconds": round(waited, 6),
            "waited_share": round(share, 4),
            "input_bound": bound,
            "stage": dominant if bound else None,
            "hint": self.hints[dominant] if bound else None,
            "stages": {name: round(value, 6) for name, value in stages.items()},
            "epochs": list(self.epochs),
        }

    def line(self) -> str:
        """One line for a person: the share waited, and when input-bound, where and what to do."""
        data = self.as_dict()
        if not self.timed:
            return f"{LINE_PREFIX}{self.adapter}): not timed (FITPIPE_INPUT_TIMING=0)"
        if not self.epochs:
            return f"{LINE_PREFIX}{self.adapter}): no epoch ran"
        shares = ", ".join(f"{e['waited_share']:.0%}" for e in self.epochs)
        where = "rows in memory" if self.in_memory else self.adapter
        head = (
            f"{LINE_PREFIX}{where}): the step waited {data['waited_share']:.0%} of "
            f"{data['seconds']:.2f} s (per epoch: {shares})"
        )
        if not data["input_bound"]:
            return head + "; not input-bound"
        stage = data["stage"]
        return (
            f"{head}; input-bound, mostly {_WHAT[stage]} ({data['stages'][stage]:.2f} s): "
            f"{data['hint']}"
        )
