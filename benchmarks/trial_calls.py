"""An XLA trial in a later ``fit``: on the calls of the settled size, or the lengthened ones.

``jit_compile="auto"`` tries XLA once a run is long enough (``XlaChoice``). A trial that comes
in a later ``fit``, after the steps per call were lengthened to calls of about 0.5 s, used to
compile and time XLA on those long calls; it now runs on calls of the size that settled
(``ExecutionSize.shorten``). Each variant is a fresh model: a warm-up ``fit`` of one epoch
(no trial in it), then a timed ``fit`` of two epochs, in turns for ``--repeats`` rounds,
beside Keras' plain graph at 32 steps a call given the same fits; CPU seconds of the timed
``fit`` and samples per CPU second:

    python benchmarks/trial_calls.py --rows 200000 --features 512 --batch 256 --model conv \\
        --at-once
    python benchmarks/trial_calls.py --rows 640000 --features 512 --batch 256 --model conv

``--at-once``: the timed ``fit`` tries XLA as soon as its plain timing is stable, whatever
its length (else the default threshold decides, as in the grid).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from xla_cpu import build, cell_arguments, data

import fitpipe
from fitpipe.training.tuning import ExecutionSize, XlaChoice

SHORTEN = ExecutionSize.shorten
THRESHOLDS = XlaChoice.TRIAL_AFTER_SECONDS, XlaChoice.TRIAL_AFTER_TRACES


def keep_long_calls(self: ExecutionSize) -> None:
    """``ExecutionSize.shorten`` as before it existed: a trial runs on the calls it finds."""


def timed_fit(args: argparse.Namespace, variant: str, x: Any, y: Any) -> tuple[float, str]:
    """A fresh model's warm-up ``fit``, then the timed one: its CPU seconds and the choice."""
    keras.utils.set_random_seed(0)
    model = build(args.features, args.model)
    fit_kwargs = {"batch_size": args.batch, "verbose": 0}
    if variant == "keras":
        model.compile("adam", "mse", jit_compile=False, steps_per_execution=32)
        model.fit(x, y, epochs=1, **fit_kwargs)
        begin = time.process_time()
        model.fit(x, y, epochs=2, **fit_kwargs)
        return time.process_time() - begin, ""
    ExecutionSize.shorten = SHORTEN if variant == "settled" else keep_long_calls  # type: ignore[method-assign]
    trainer = fitpipe.Trainer(model)
    trainer.compile("adam", "mse")
    XlaChoice.TRIAL_AFTER_SECONDS, XlaChoice.TRIAL_AFTER_TRACES = 1e9, 1e9  # none yet
    trainer.fit(x, y, epochs=1, **fit_kwargs)
    XlaChoice.TRIAL_AFTER_SECONDS, XlaChoice.TRIAL_AFTER_TRACES = (
        (0.0, 0.0) if args.at_once else THRESHOLDS
    )
    begin = time.process_time()
    trainer.fit(x, y, epochs=2, **fit_kwargs)
    seconds = time.process_time() - begin
    xla = trainer.tuning["xla"]["train"]
    return seconds, f"xla={xla['xla']} ({xla['reason']})"


def main() -> None:
    parser = cell_arguments(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--at-once", action="store_true")
    args = parser.parse_args()
    x, y = data(args.rows, args.features, args.model)
    names = {
        "keras": "Keras, plain, 32 a call",
        "lengthened": "fitpipe, trial on long calls",
        "settled": "fitpipe, trial on settled calls",
    }
    figures: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for variant, label in names.items():
            seconds, choice = timed_fit(args, variant, x, y)
            figures[variant].append(seconds)
            print(f"{label:32s} {seconds:6.2f} s CPU {choice}", flush=True)
    print(f"{args.rows} x {args.features}, batch {args.batch}, {args.model}: medians (range)")
    keras_rate = 2 * args.rows / statistics.median(figures["keras"])
    for variant, label in names.items():
        runs = figures[variant]
        rate = 2 * args.rows / statistics.median(runs)
        print(
            f"{label:32s} {statistics.median(runs):6.2f} s ({min(runs):.2f}-{max(runs):.2f})"
            f"  {rate / 1e3:.1f}k/CPU s  {rate / keras_rate:.2f}x Keras'"
        )


if __name__ == "__main__":
    main()
