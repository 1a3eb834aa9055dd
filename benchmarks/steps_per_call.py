"""fitpipe's tuned steps per call against fixed ones and Keras', in one process.

For one cell (rows x features x batch x model, NumPy input), each run builds a fresh model,
trains one warm-up epoch, then times two epochs; samples per CPU second (all threads) and
per wall second are printed, in this order: Keras (no XLA, 32 steps per call), fitpipe at
its defaults, fitpipe without XLA at each ``--fixed`` steps per call, then Keras and
fitpipe's defaults again (to see the drift within the process):

    python benchmarks/steps_per_call.py --rows 64000 --features 512 --batch 256 --model conv
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import xla_cpu  # benchmarks/xla_cpu.py, beside this script: the grid's models

import fitpipe


def parse() -> argparse.Namespace:
    parser = xla_cpu.cell_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--fixed", type=int, nargs="*", default=[2, 32])
    return parser.parse_args()


def main() -> None:
    args = parse()
    x, y = xla_cpu.data(args.rows, args.features, args.model)

    def timed(fit: Callable[[int], object]) -> str:
        fit(1)
        cpu, wall = time.process_time(), time.perf_counter()
        fit(2)
        per_cpu = 2 * args.rows / (time.process_time() - cpu) / 1e3
        per_wall = 2 * args.rows / (time.perf_counter() - wall) / 1e3
        return f"{per_cpu:7.1f}k samples/CPU s {per_wall:7.1f}k samples/s"

    def keras_run() -> Callable[[int], object]:
        keras.utils.set_random_seed(0)
        model = xla_cpu.build(args.features, args.model)
        model.compile("adam", "mse", jit_compile=False, steps_per_execution=32)
        return lambda epochs: model.fit(x, y, batch_size=args.batch, epochs=epochs, verbose=0)

    def fitpipe_run(
        steps_per_execution: int | str = 1, jit_compile: bool | str = "auto"
    ) -> Callable[[int], object]:
        keras.utils.set_random_seed(0)
        trainer = fitpipe.Trainer(xla_cpu.build(args.features, args.model))
        trainer.compile(
            "adam", "mse", steps_per_execution=steps_per_execution, jit_compile=jit_compile
        )
        return lambda epochs: trainer.fit(x, y, batch_size=args.batch, epochs=epochs, verbose=0)

    runs: list[tuple[str, Callable[[], Callable[[int], object]]]] = [
        ("Keras, no XLA, 32 steps per call", keras_run),
        ("fitpipe at its defaults", fitpipe_run),
    ]
    for size in args.fixed:

        def fixed(size: int = size) -> Callable[[int], object]:
            return fitpipe_run(steps_per_execution=size, jit_compile=False)

        runs.append((f"fitpipe, no XLA, {size} steps per call", fixed))
    runs += [("Keras again", keras_run), ("fitpipe's defaults again", fitpipe_run)]
    print(f"{args.rows} x {args.features}, batch {args.batch}, {args.model}")
    for name, make in runs:
        print(f"{name:40s} {timed(make())}", flush=True)


if __name__ == "__main__":
    main()
