"""Does the plain graph's time per op tell where XLA wins? fitpipe's step with and without XLA.

For each cell (model, features, batch, rows) in a fresh process: four 1-epoch ``fit`` calls
of a fresh model per variant (the first traces and compiles; the median of the other three
is the step's CPU time), and the op count of the model's plain train step (ops other than
constants, identities, variable reads and arguments, in the step and every function it
calls). Printed: microseconds a step of each variant, XLA's speed-up, microseconds per op of
the plain step, and the first call of each (CPU seconds, trace and compile included).

    python benchmarks/xla_per_op.py                 # the cells of benchmarks/RESULTS.md
    python benchmarks/xla_per_op.py --cell conv 32 256 64000

Models: ``mlp`` (features -> 64 -> 64 -> 1), ``wide`` (-> 512 -> 512 -> 1), ``deep`` (8
layers of 32), ``conv`` (Conv1D of 16 filters, width 5), ``text`` (Embedding + pooling),
``lstm`` (LSTM(32) over the features 8 at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CELLS = [
    ("mlp", 32, 32, 16000),
    ("mlp", 32, 256, 64000),
    ("mlp", 32, 1024, 128000),
    ("mlp", 512, 256, 32000),
    ("wide", 32, 256, 32000),
    ("deep", 32, 256, 64000),
    ("conv", 32, 32, 16000),
    ("conv", 32, 256, 64000),
    ("conv", 32, 1024, 128000),
    ("conv", 128, 256, 16000),
    ("conv", 512, 256, 8000),
    ("text", 32, 256, 64000),
    ("lstm", 32, 32, 8000),
    ("lstm", 160, 256, 8000),
]
TRIVIAL = {"Const", "Identity", "IdentityN", "NoOp", "Placeholder", "ReadVariableOp"}
TRIVIAL |= {"_Arg", "_Retval", "StopGradient"}


def build(kind: str, features: int, **compile_kwargs: object) -> Any:
    """A fresh model of ``kind``, compiled for MSE under Adam."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,), dtype="int32" if kind == "text" else "float32")
    layers = keras.layers
    if kind in ("mlp", "wide", "deep"):
        widths = {"mlp": [64, 64], "wide": [512, 512], "deep": [32] * 8}[kind]
        hidden = inputs
        for width in widths:
            hidden = layers.Dense(width, activation="relu")(hidden)
    elif kind == "conv":
        hidden = layers.Conv1D(16, 5, activation="relu")(layers.Reshape((features, 1))(inputs))
        hidden = layers.GlobalAveragePooling1D()(hidden)
    elif kind == "lstm":
        hidden = layers.LSTM(32)(layers.Reshape((features // 8, 8))(inputs))
    else:
        hidden = layers.GlobalAveragePooling1D()(layers.Embedding(1000, 16)(inputs))
    model = keras.Model(inputs, layers.Dense(1)(hidden))
    model.compile("adam", "mse", **compile_kwargs)
    return model


def op_count(kind: str, features: int, dtype: str) -> int:
    """The ops of the model's plain train step, :data:`TRIVIAL` ones left out."""
    import tensorflow as tf

    model = build(kind, features)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)
        return loss

    specs = (tf.TensorSpec([None, features], dtype), tf.TensorSpec([None, 1], "float32"))
    graph = step.get_concrete_function(*specs).graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return sum(node.op not in TRIVIAL for node in nodes)


def measure(kind: str, features: int, batch: int, rows: int) -> dict[str, object]:
    """The cell's figures (run in a child process)."""
    import numpy as np

    import fitpipe

    rng = np.random.default_rng(0)
    if kind == "text":
        x = rng.integers(0, 1000, (rows, features)).astype("int32")
    else:
        x = rng.standard_normal((rows, features)).astype("float32")
    y = rng.standard_normal((rows, 1)).astype("float32")
    steps = -(-rows // batch)
    out: dict[str, object] = {"cell": [kind, features, batch, rows]}
    for xla in (False, True):
        trainer = fitpipe.Trainer(build(kind, features, jit_compile=xla))
        seconds = []
        for _ in range(4):
            start = time.process_time()
            trainer.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
            seconds.append(time.process_time() - start)
        out["xla" if xla else "plain"] = seconds
    plain = statistics.median(out["plain"][1:]) / steps * 1e6  # type: ignore[index]
    compiled = statistics.median(out["xla"][1:]) / steps * 1e6  # type: ignore[index]
    ops = op_count(kind, features, str(x.dtype))
    out.update(plain_us=plain, xla_us=compiled, speedup=plain / compiled, ops=ops)
    out.update(us_per_op=plain / ops)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", nargs=4, metavar=("MODEL", "FEATURES", "BATCH", "ROWS"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, features, batch, rows = args.cell
        print(json.dumps(measure(kind, int(features), int(batch), int(rows))))
        return
    cells = [tuple(args.cell)] if args.cell else CELLS
    print(
        "| model | features | batch | plain us/step | XLA us/step | XLA speed-up | ops | "
        "plain us/op | first call plain / XLA, CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in cells:
        command = [sys.executable, __file__, "--child", "--cell", *map(str, cell)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {cell[0]} | {cell[1]} | {cell[2]} | {row['plain_us']:.0f} | {row['xla_us']:.0f}"
            f" | {row['speedup']:.2f} | {row['ops']} | {row['us_per_op']:.1f}"
            f" | {row['plain'][0]:.2f} / {row['xla'][0]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
