"""fitpipe at fixed steps per call (no XLA), timed in turns in one process.

Each size gets its own trainer (a fresh model, one warm-up epoch); then the sizes run one
epoch each in turn, ``--rounds`` times, so drift of the shared machine hits every size
alike. Samples per CPU second (all threads) and per wall second of each epoch are printed,
and the steps per call the tuner settled at for ``auto``:

    python benchmarks/interleaved_sizes.py --rows 64000 --features 512 --batch 256 \
        --model conv --sizes 2 8 32 auto
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import xla_cpu  # benchmarks/xla_cpu.py, beside this script: the grid's models

import fitpipe


def parse() -> argparse.Namespace:
    parser = xla_cpu.cell_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--sizes", nargs="+", default=["2", "8", "32", "auto"])
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def main() -> None:
    args = parse()
    x, y = xla_cpu.data(args.rows, args.features, args.model)
    trainers = {}
    for size in args.sizes:
        keras.utils.set_random_seed(0)
        trainer = fitpipe.Trainer(xla_cpu.build(args.features, args.model))
        spe = size if size == "auto" else int(size)
        trainer.compile("adam", "mse", steps_per_execution=spe, jit_compile=False)
        trainer.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
        trainers[size] = trainer
    rates: dict[str, list[tuple[float, float]]] = {size: [] for size in args.sizes}
    for _ in range(args.rounds):
        for size, trainer in trainers.items():
            cpu, wall = time.process_time(), time.perf_counter()
            trainer.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
            rates[size].append(
                (args.rows / (time.process_time() - cpu), args.rows / (time.perf_counter() - wall))
            )
    print(f"{args.rows} x {args.features}, batch {args.batch}, {args.model}, no XLA")
    for size, trainer in trainers.items():
        settled = trainer.tuning["steps_per_execution"]["steps_per_execution"]
        figures = " ".join(f"{c / 1e3:.1f}k/{w / 1e3:.1f}k" for c, w in rates[size])
        median = sorted(w for _, w in rates[size])[len(rates[size]) // 2]
        line = f"{size:>5s} (runs {settled:>4}): per CPU s / per s {figures}"
        print(f"{line}; median {median / 1e3:.1f}k/s")


if __name__ == "__main__":
    main()
