"""Rows read in order, cut from the held leaves or gathered: ``fit``, ``evaluate``, ``predict``.

The compiled loop over rows in memory takes a chunk of batches at a time; a chunk whose rows
are consecutive (``evaluate``, ``predict``, a block of NumPy rows over the in-memory limit,
gathered in the pass's order on the reading thread) is a slice of the held leaves
(``fitpipe.pipeline.row_chunks.consecutive``), not a second gather. Each variant below is a
fresh model (``jit_compile=False``: no XLA trial), one warm-up call, then the timed ones, in
turns for ``--repeats`` rounds; CPU milliseconds a step for ``fit`` (2 epochs) and samples
per CPU second for two ``evaluate`` and two ``predict`` calls:

    python benchmarks/cut_rows.py --rows 200000 --features 512 --batch 256 --model mlp

"gathered" replaces the check by ``False`` (every chunk gathered, as before the cut).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf
from xla_cpu import build, cell_arguments, data

import fitpipe
from fitpipe import limits
from fitpipe.pipeline import row_chunks

LIMIT = limits.RESIDENT_BYTES_LIMIT
CUT = row_chunks.consecutive


def gathered(rows: tf.Tensor) -> tf.Tensor:
    """The check that never finds a chunk in order: every chunk gathered."""
    return tf.constant(False)


#: name -> (resident limit, the in-order check)
VARIANTS: dict[str, tuple[int, Callable[[tf.Tensor], tf.Tensor]]] = {
    "held, cut": (2**62, CUT),
    "held, gathered": (2**62, gathered),
    "over the limit, cut": (LIMIT, CUT),
    "over the limit, gathered": (LIMIT, gathered),
}


def trainer(args: argparse.Namespace) -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    made = fitpipe.Trainer(build(args.features, args.model))
    made.compile("adam", "mse", jit_compile=False)
    return made


def timed(call: Callable[[], Any], times: int = 1) -> float:
    begin = time.process_time()
    for _ in range(times):
        call()
    return time.process_time() - begin


def one_round(args: argparse.Namespace, x: Any, y: Any, figures: dict[str, list[Any]]) -> None:
    steps = 2 * -(-args.rows // args.batch)
    kwargs = {"batch_size": args.batch, "verbose": 0}
    for name, (limit, check) in VARIANTS.items():
        limits.RESIDENT_BYTES_LIMIT, row_chunks.consecutive = limit, check
        made = trainer(args)
        made.fit(x, y, epochs=1, **kwargs)
        fit = timed(lambda m=made: m.fit(x, y, epochs=2, **kwargs)) / steps * 1e3
        evaluate = 2 * args.rows / timed(lambda m=made: m.evaluate(x, y, **kwargs), 2)
        predict = 2 * args.rows / timed(lambda m=made: m.predict(x, **kwargs), 2)
        figures[name].append((fit, evaluate, predict))
        print(
            f"{name:26s} fit {fit:.3f} ms/step  evaluate {evaluate / 1e3:.0f}k/s  "
            f"predict {predict / 1e3:.0f}k/s",
            flush=True,
        )


def main() -> None:
    parser = cell_arguments(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x, y = data(args.rows, args.features, args.model)
    figures: dict[str, list[Any]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        one_round(args, x, y, figures)
    print(f"{args.rows} x {args.features}, batch {args.batch}, {args.model}: medians (range)")
    for name, runs in figures.items():
        cells = []
        for i, unit in enumerate(("ms/step fit", "k/CPU s evaluate", "k/CPU s predict")):
            values = [run[i] / (1 if i == 0 else 1e3) for run in runs]
            digits = 3 if i == 0 else 0
            spread = f"{min(values):.{digits}f}-{max(values):.{digits}f}"
            cells.append(f"{statistics.median(values):.{digits}f} {unit} ({spread})")
        print(f"{name:26s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
