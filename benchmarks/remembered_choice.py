"""What a remembered ``jit_compile="auto"`` choice is worth to the next run of a script.

fitpipe keeps each step's measured choice of XLA in a folder (``fitpipe.training.remembered``):
a later process that builds the same step tries XLA at once where it pays back within the
run (or never compiles it where the plain graph won). This times one script, run the way
users re-run theirs: a fresh process per run, default ``compile`` (``jit_compile="auto"``).

    python benchmarks/remembered_choice.py --model conv --batch 32 --epochs 3 --learn-epochs 25

It runs, each in a fresh process: a *learning* run long enough for the trial to come by the
usual rule (its choice stored in a temporary folder), then ``--repeats`` pairs of the short
run with that folder and with ``FITPIPE_CACHE_DIR=off`` (nothing remembered), alternating.
Prints each short run's CPU and wall seconds of ``fit``, the tuner's choice, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

_RUN = """
import json, os, sys, time
import numpy as np, keras, fitpipe
model_kind, rows, features, batch, epochs = sys.argv[1], *map(int, sys.argv[2:6])
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, features)).astype("float32"); y = x[:, :1] * 0.5
keras.utils.set_random_seed(0)
inputs = keras.Input((features,))
if model_kind == "conv":
    hidden = keras.layers.Reshape((features, 1))(inputs)
    hidden = keras.layers.Conv1D(16, 5, activation="relu")(hidden)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
elif model_kind == "lstm":
    hidden = keras.layers.LSTM(32)(keras.layers.Reshape((features // 8, 8))(inputs))
else:
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(hidden)))
trainer.compile("adam", "mse")
cpu, wall = sum(os.times()[:2]), time.perf_counter()
trainer.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
cpu, wall = sum(os.times()[:2]) - cpu, time.perf_counter() - wall
choice = trainer._state.functions["train"].xla_choice.report()
keys = ("xla", "reason", "remembered", "plain_seconds_per_step", "xla_seconds_per_step")
print(json.dumps({"cpu": round(cpu, 2), "wall": round(wall, 2), **{k: choice[k] for k in keys}}))
"""


def _run(args: argparse.Namespace, epochs: int, folder: str) -> dict[str, object]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FITPIPE_CACHE_DIR": folder}
    command = [sys.executable, "-c", _RUN, args.model, str(args.rows), str(args.features)]
    command += [str(args.batch), str(epochs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("conv", "lstm", "mlp"), default="conv")
    parser.add_argument("--rows", type=int, default=64_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learn-epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        learned = _run(args, args.learn_epochs, folder)
        print(f"learning run ({args.learn_epochs} epochs): {learned}")
        runs: dict[str, list[dict[str, object]]] = {"remembered": [], "off": []}
        for _ in range(args.repeats):
            for side, where in (("remembered", folder), ("off", "off")):
                result = _run(args, args.epochs, where)
                runs[side].append(result)
                print(f"{side:>10}: {result}")
    cpu = {side: statistics.median(float(r["cpu"]) for r in rs) for side, rs in runs.items()}  # type: ignore[arg-type]
    wall = {side: statistics.median(float(r["wall"]) for r in rs) for side, rs in runs.items()}  # type: ignore[arg-type]
    print(
        f"median fit seconds, remembered / nothing remembered: CPU {cpu['remembered']:.2f} / "
        f"{cpu['off']:.2f} ({cpu['off'] / cpu['remembered']:.2f}x), wall "
        f"{wall['remembered']:.2f} / {wall['off']:.2f} ({wall['off'] / wall['remembered']:.2f}x)"
    )


if __name__ == "__main__":
    main()
