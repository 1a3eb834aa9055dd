"""A user's script at many sizes: fitpipe against Keras from 200 rows to 300,000, 1 to 2,000 wide.

The grid and ``user_scripts.py`` time one size (64,000 rows) each. Here the same plain
script (compile; ``fit`` with ``validation_split=0.2`` and ``EarlyStopping``; ``evaluate``;
``predict``, all at Keras' defaults) runs on float64 NumPy data of other sizes, widths and
batch sizes (1, 8, 1024, the whole data), and loops of ``train_on_batch`` (batches of
varying sizes) and ``predict_on_batch`` time the per-call costs. A cell builds a fresh
three-layer model per side with the same seed; one untimed run of each side first, then
sides in turns (Keras, fitpipe, Keras, ...) for ``--repeats`` rounds; medians of the
process's CPU seconds and of the wall seconds. Ratios are Keras' time over fitpipe's
(above 1: fitpipe is faster).

    python benchmarks/user_sizes.py --repeats 3
    python benchmarks/user_sizes.py --cells n200_d8 pob --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import fitpipe

#: Cells of the user script: rows, features, epochs, batch size (None: Keras' 32).
SCRIPT_CELLS: dict[str, tuple[int, int, int, int | None]] = {
    "n200_d8": (200, 8, 20, None),
    "n200_d2000": (200, 2000, 20, None),
    "n5k_d1": (5000, 1, 5, None),
    "n5k_d100": (5000, 100, 5, None),
    "n5k_d2000": (5000, 2000, 3, None),
    "n50k_d8": (50000, 8, 2, None),
    "n50k_d100": (50000, 100, 2, None),
    "n300k_d8_b1024": (300000, 8, 3, 1024),
    "n2k_d8_b1": (2000, 8, 1, 1),
    "n5k_d8_b8": (5000, 8, 2, 8),
    "n50k_d100_b1024": (50000, 100, 5, 1024),
    "n5k_d8_ball": (5000, 8, 30, 5000),
    "n50k_d100_ball": (50000, 100, 10, 50000),
}


def _data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features))  # float64, as users' arrays are
    return x, x[:, :1] * 0.5 + rng.standard_normal((rows, 1)) * 0.1


def _model(features: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


def _user_script(x: np.ndarray, y: np.ndarray, epochs: int, batch: int | None) -> Any:
    sized = {} if batch is None else {"batch_size": batch}

    def script(runner: Any) -> None:
        runner.compile(optimizer="adam", loss="mse", metrics=["mae"])
        stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
        runner.fit(x, y, epochs=epochs, validation_split=0.2, verbose=0, callbacks=[stop], **sized)
        runner.evaluate(x, y, verbose=0, **sized)
        runner.predict(x, verbose=0, **sized)

    return script


def _loops() -> dict[str, tuple[int, Callable[[Any], None]]]:
    """Per-call cells: features and a script run on a compiled (and fitted) runner."""
    x, y = _data(20000, 16)
    sizes = np.random.default_rng(0).integers(16, 48, 300)
    varying = [(x[:s], y[:s]) for s in sizes]
    batches = [x[i : i + 32] for i in range(0, 2000 * 32, 32) if i + 32 <= len(x)][:500]

    def tob(runner: Any) -> None:
        runner.compile("adam", "mse", metrics=["mae"])
        for xb, yb in varying:
            runner.train_on_batch(xb, yb)

    def pob(runner: Any) -> None:
        runner.compile("adam", "mse")
        for xb in batches:
            runner.predict_on_batch(xb)

    return {"tob_varying": (16, tob), "pob": (16, pob)}


def _timed(script: Callable[[Any], None], runner: Any) -> tuple[float, float]:
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    script(runner)
    return time.process_time() - cpu, time.perf_counter() - wall


def run_cell(name: str, features: int, script: Callable[[Any], None], repeats: int) -> None:
    """Times ``script`` on Keras and on fitpipe in turns and prints medians and ratios."""

    def runner(side: str) -> Any:
        keras.utils.set_random_seed(0)
        model = _model(features)
        return model if side == "keras" else fitpipe.Trainer(model)

    for side in ("keras", "fitpipe"):
        script(runner(side))  # untimed: traces, the tuner's first choices
    times: dict[str, list[tuple[float, float]]] = {"keras": [], "fitpipe": []}
    for _ in range(repeats):
        for side in ("keras", "fitpipe"):
            times[side].append(_timed(script, runner(side)))
    k_cpu, k_wall = (statistics.median(t[i] for t in times["keras"]) for i in (0, 1))
    f_cpu, f_wall = (statistics.median(t[i] for t in times["fitpipe"]) for i in (0, 1))
    print(
        f"{name:18s} keras cpu {k_cpu:7.2f} wall {k_wall:7.2f} | fitpipe cpu {f_cpu:7.2f} "
        f"wall {f_wall:7.2f} | ratio cpu {k_cpu / f_cpu:5.2f} wall {k_wall / f_wall:5.2f}",
        flush=True,
    )


def main() -> None:
    """Runs the cells named (default: all) and prints one line per cell."""
    loops = _loops()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="*", default=[*SCRIPT_CELLS, *loops])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name in args.cells:
        if name in loops:
            features, script = loops[name]
        else:
            rows, features, epochs, batch = SCRIPT_CELLS[name]
            script = _user_script(*_data(rows, features), epochs, batch)
        run_cell(name, features, script, args.repeats)


if __name__ == "__main__":
    main()
