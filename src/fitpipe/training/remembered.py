"""``jit_compile="auto"`` across processes: the choice of XLA, measured once, remembered.

Under ``"auto"`` a step starts as the plain graph and tries XLA once the run is long enough
to pay for its compilation (``tuning.XlaChoice``). Measured once, the answer holds for the
same step on the same machine, so it is kept in a folder on disk (one small JSON file per
step) and read by the next process that builds the same step:

* **plain measured faster**: the next run decides for the plain graph at once and never
  compiles XLA (a trial that loses costs up to a tenth of a run, and more in short ones);
* **XLA measured faster**: the next run tries it as soon as its plain timing is stable,
  when the steps still ahead win back the remembered compilation at the remembered gain
  (without that, a run waits for tens of plain first calls at the slower speed, or never
  tries it when shorter).

The trial still measures both: a remembered choice changes when XLA is tried, never what is
kept. What is written is fitpipe's own (written whole, then renamed; anything unreadable is
measured again). TensorFlow's own cache of compiled XLA programs
(``--tf_xla_persistent_cache_directory``) is not used: a truncated or corrupt entry in it
fails every later compilation of that step (``DataLossError``), and an unwritable folder
fails the first (TensorFlow 2.21).

A step is known by its traced graph (op types, attributes and shapes; names stripped of
the numbers that count earlier layers and functions), the shapes of the variables it
captures, and the machine: TensorFlow and Keras versions, CPU model and count, device.

The folder: ``$FITPIPE_CACHE_DIR`` or ``~/.cache/fitpipe`` (``$XDG_CACHE_HOME/fitpipe``),
one subfolder per TensorFlow version; ``FITPIPE_CACHE_DIR=off`` keeps nothing. Delete the
folder to forget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

if TYPE_CHECKING:
    from fitpipe.training.tuning import XlaChoice

__all__ = [
    "CACHE_ENV",
    "Remembered",
    "cache_folder",
    "recall",
    "recall_for",
    "store",
    "store_choice",
]

#: The environment variable naming the folder, or ``off``.
CACHE_ENV = "FITPIPE_CACHE_DIR"
_OFF = frozenset({"off", "0", "false", "no", "none"})
#: A number that counts earlier objects of a kind: ``dense_2``, ``CustomGradient-601``.
_COUNTERS = re.compile(r"(?<=\w)(?:[_-]\d+)+\b")


@dataclasses.dataclass(frozen=True)
class Remembered:
    """What an earlier process measured for a step."""

    xla: bool
    plain_per_step: float
    xla_per_step: float
    xla_first_call: float | None  # CPU seconds of XLA's first call: its compilation

    def pays_back(self, plain_per_step: float, ahead: int | None) -> bool:
        """Whether XLA, remembered faster, wins back its compilation over ``ahead`` steps.

        The remembered gain is scaled to this run's plain timing (the machine's load moves
        both). Unknown steps ahead (an input of unknown length): tried.
        """
        if not self.xla:
            return False
        if ahead is None:
            return True
        saved = plain_per_step * (1 - self.xla_per_step / self.plain_per_step)
        return ahead * saved >= (self.xla_first_call or 0.0)


def cache_folder() -> Path | None:
    """The folder for this TensorFlow version, or None when ``FITPIPE_CACHE_DIR=off``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _OFF and value:
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fitpipe"
    return (Path(value).expanduser() if value else base) / f"tf-{tf.__version__}"


def step_key(concrete: Any, device: str | None) -> str:
    """The key of a traced step on this machine (see the module)."""
    graph = _COUNTERS.sub("", str(concrete.graph.as_graph_def()))
    variables = sorted(f"{tuple(v.shape)}:{v.dtype.name}" for v in concrete.variables)
    digest = hashlib.sha256()
    for part in (graph, repr(variables), _machine(), str(device)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


@cache
def _machine() -> str:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line for line in info if line.startswith("model name")), model)
    except OSError:
        pass
    versions = f"tf {tf.__version__} keras {keras.__version__}"
    return f"{versions} | {platform.machine()} | {model.strip()} | {os.cpu_count()}"


def recall(key: str) -> Remembered | None:
    """What an earlier process stored for ``key``; None when nothing (or nothing readable)."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        data = json.loads((folder / "choices" / f"{key}.json").read_text(encoding="utf-8"))
        first = data.get("xla_first_call")
        return Remembered(
            xla=bool(data["xla"]),
            plain_per_step=float(data["plain_per_step"]),
            xla_per_step=float(data["xla_per_step"]),
            xla_first_call=None if first is None else float(first),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent, or written by something else: measured again


def store(key: str, memory: Remembered) -> None:
    """Keeps ``memory`` for ``key`` (written whole, then renamed: readers never see half)."""
    folder = cache_folder()
    if folder is None:
        return
    try:
        choices = folder / "choices"
        choices.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=choices, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(dataclasses.asdict(memory), out)
        os.replace(temporary, choices / f"{key}.json")
    except OSError:
        pass  # a read-only or full disk: the next run measures again


def recall_for(choice: XlaChoice, concrete: Any, device: str | None) -> None:
    """Gives an undecided choice what was remembered of its step (read once per choice).

    A plain graph remembered faster decides it at once; XLA remembered faster is kept on
    the choice (``XlaChoice.memory``), which then tries XLA as soon as it pays back.
    """
    if choice.key is not None or choice.decided is not None or cache_folder() is None:
        return
    try:
        choice.key = step_key(concrete, device)
    except Exception:  # a graph that cannot be read so: measured as if never seen
        choice.key = ""
        return
    choice.memory = recall(choice.key)
    if choice.memory is not None and not choice.memory.xla:
        choice.decide(False, "remembered")


def store_choice(choice: XlaChoice) -> None:
    """Keeps a choice just measured (both variants timed) for the next process."""
    plain, xla = choice.per_step.get(False), choice.per_step.get(True)
    if not choice.key or choice.reason != "measured" or plain is None or xla is None:
        return
    decided = bool(choice.decided)
    store(choice.key, Remembered(decided, plain, xla, choice.first_calls.get(True)))
