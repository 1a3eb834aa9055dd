"""Models of one input per column: the first step and a 2-epoch ``fit`` against Keras.

A model taking ``--inputs`` float32 scalars by name (Keras' structured-data examples build
such dicts) is fitted from a dict of NumPy columns (held rows), from a generator of dict
batches (streamed in blocks) or from a batched ``tf.data.Dataset`` of them. fitpipe holds
such narrow leaves side by side and gathers one matrix a batch
(``fitpipe.pipeline.leaf_packing``); the finite checks of their values are one reduction
for all of them (``fitpipe.training.check_rules.first_broken``). Per side, a fresh model:
the CPU seconds from ``fit`` to the first finished step, then of a 2-epoch ``fit``; one
process, sides in turns for ``--repeats`` rounds, medians; Keras at its defaults and at 32
steps a call:

    python benchmarks/narrow_inputs.py --inputs 1 10 50 100 --form numpy generator tf.data
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import fitpipe

ROWS, BATCH = 64000, 256
SIDES = ("keras", "keras 32 a call", "fitpipe")


def model(inputs: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    named = {f"c{i}": keras.Input((1,), name=f"c{i}") for i in range(inputs)}
    joined = list(named.values())
    hidden = keras.layers.Concatenate()(joined) if inputs > 1 else joined[0]
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    return keras.Model(named, keras.layers.Dense(1)(hidden))


class _First(keras.callbacks.Callback):
    """Stops training after the first step."""

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.model.stop_training = True


def _batches(columns: dict[str, np.ndarray], y: np.ndarray) -> Iterator[Any]:
    while True:
        for start in range(0, ROWS, BATCH):
            rows = slice(start, start + BATCH)
            yield {name: column[rows] for name, column in columns.items()}, y[rows]


def fit_kwargs(form: str, columns: dict[str, np.ndarray], y: np.ndarray) -> dict[str, Any]:
    if form == "numpy":
        return {"x": columns, "y": y, "batch_size": BATCH}
    if form == "tf.data":
        import tensorflow as tf

        return {"x": tf.data.Dataset.from_tensor_slices((columns, y)).batch(BATCH)}
    return {"x": _batches(columns, y), "steps_per_epoch": ROWS // BATCH}


def one_side(side: str, inputs: int, form: str, data: Any) -> tuple[float, float]:
    """``(first step, 2-epoch fit)`` CPU seconds of a fresh model on ``side``."""
    made = model(inputs)
    runner: Any = fitpipe.Trainer(made) if side == "fitpipe" else made
    runner.compile("adam", "mse", steps_per_execution=32 if side == "keras 32 a call" else 1)
    begin = time.process_time()
    runner.fit(epochs=1, verbose=0, callbacks=[_First()], **fit_kwargs(form, *data))
    first = time.process_time() - begin
    begin = time.process_time()
    runner.fit(epochs=2, verbose=0, **fit_kwargs(form, *data))
    return first, time.process_time() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, nargs="+", default=[1, 10, 50, 100])
    forms = ["numpy", "generator", "tf.data"]
    parser.add_argument("--form", nargs="+", choices=forms, default=["numpy"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = rng.normal(size=(ROWS, 1)).astype("float32")
    one_side("fitpipe", 2, "numpy", ({"c0": y, "c1": y}, y))  # the process's one-time costs
    one_side("keras", 2, "numpy", ({"c0": y, "c1": y}, y))
    for form in args.form:
        for inputs in args.inputs:
            columns = {f"c{i}": rng.normal(size=(ROWS, 1)).astype("float32") for i in range(inputs)}
            runs: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
            for _ in range(args.repeats):
                for side in SIDES:
                    runs[side].append(one_side(side, inputs, form, (columns, y)))
            cells = []
            for side in SIDES:
                first = statistics.median(r[0] for r in runs[side])
                whole = statistics.median(r[1] for r in runs[side])
                cells.append(f"{side}: first step {first:.3f} s, 2 epochs {whole:.3f} s")
            print(f"{form}, {inputs} inputs: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
