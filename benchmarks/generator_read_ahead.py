"""A generator's read-ahead: batches taken beyond a stop, and the speed it buys, against Keras.

Two parts, each fitpipe and Keras 3 in the same process:

* ``--beyond``: a callback raises at batch ``stop`` of a ``fit`` (or ``predict``) over an
  endless numbered generator, after the reading threads settled; prints how many batches
  the generator gave beyond the last one used (lost for good: a generator cannot give
  them again).
* ``--speed``: 640,000 x 32 float32 rows from a generator of batches of 256 into the grid's
  MLP (32 -> 64 -> 64 -> 1, Adam, MSE), 2 epochs, with and without a callback on every
  batch; CPU time per sample and the ratio Keras / fitpipe (above 1: fitpipe faster).

    python benchmarks/generator_read_ahead.py --beyond
    python benchmarks/generator_read_ahead.py --speed --rounds 3
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

STOPS = (0, 4, 31, 32, 33, 63, 64, 65, 70, 127, 128, 300)


def _numbered(read: list[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    i = 0
    while True:
        read.append(i)
        yield np.full((2, 4), i, "float32"), np.full((2, 1), i, "float32")
        i += 1


def _settle(read: list[int]) -> None:
    """Waits until the generator has not been read for 0.2 s (the read-ahead settled)."""
    last, still = -1, 0.0
    while still < 0.2:
        still = still + 0.02 if len(read) == last else 0.0
        last = len(read)
        time.sleep(0.02)


def _beyond(runner: str, call: str, stop: int) -> int:
    read: list[int] = []

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == stop:
                _settle(read)
                raise RuntimeError("stop here")

        on_predict_batch_end = on_train_batch_end

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    target: Any = fitpipe.Trainer(model) if runner == "fitpipe" else model
    target.compile(optimizer="sgd", loss="mse", jit_compile=False)
    steps = {"steps_per_epoch" if call == "fit" else "steps": 2000}
    try:
        getattr(target, call)(_numbered(read), verbose=0, callbacks=[Stop()], **steps)
    except RuntimeError:
        pass
    return len(read) - stop - 1


def beyond() -> None:
    for call in ("fit", "predict"):
        for runner in ("fitpipe", "keras"):
            taken = [_beyond(runner, call, stop) for stop in STOPS]
            print(f"{call:8} {runner:8} beyond stops {STOPS}: {taken} (most {max(taken)})")


def _speed(runner: str, callback: bool) -> float:
    rows, features, batch = 640_000, 32, 256
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    y = x[:, :1] * 0.5 + rng.standard_normal((rows, 1), dtype=np.float32) * 0.1

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _ in range(2):
            for i in range(0, rows, batch):
                yield x[i : i + batch], y[i : i + batch]

    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    target: Any = fitpipe.Trainer(model) if runner == "fitpipe" else model
    target.compile(optimizer="adam", loss="mse")
    hook = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: None)
    start = time.process_time()
    target.fit(
        batches(),
        steps_per_epoch=rows // batch,
        epochs=2,
        verbose=0,
        callbacks=[hook] if callback else [],
    )
    return 1e6 * (time.process_time() - start) / (2 * rows)


def speed(rounds: int) -> None:
    for callback in (False, True):
        times: dict[str, list[float]] = {"fitpipe": [], "keras": []}
        for _ in range(rounds):
            for runner in times:  # in turns
                times[runner].append(_speed(runner, callback))
        median = {k: statistics.median(v) for k, v in times.items()}
        spread = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in times.items()}
        print(
            f"callback on every batch: {callback}; CPU us/sample fitpipe {median['fitpipe']:.2f}"
            f" ({spread['fitpipe']}), Keras {median['keras']:.2f} ({spread['keras']}); "
            f"Keras/fitpipe {median['keras'] / median['fitpipe']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beyond", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.beyond or not args.speed:
        beyond()
    if args.speed:
        speed(args.rounds)


if __name__ == "__main__":
    main()
