"""A seeded 3-epoch ``fit`` of an LSTM(32, dropout=0.2): what the random-step rule costs.

``jit_compile="auto"`` keeps Keras' choice (the plain graph on a CPU) for a step that draws
random numbers in a seeded run, where XLA would draw other masks (``fitpipe.training.
xla_rules``). 64,000 sequences of 20 x 8, batch 32. One process per side:

    python benchmarks/seeded_dropout.py {fitpipe,keras,keras-xla}

Prints the CPU and wall seconds of the fit, the final weights' absolute sum (equal across
runs of one side when the run repeats) and fitpipe's XLA choice.
"""

import os
import sys
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("FITPIPE_CACHE_DIR", "off")

import keras
import numpy as np

import fitpipe

side = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((64000, 20, 8)).astype("float32")
y = x[:, -1, :1] * 0.5
keras.utils.set_random_seed(0)
inputs = keras.Input((20, 8))
m = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(32, dropout=0.2)(inputs)))
if side == "fitpipe":
    t: object = fitpipe.Trainer(m)
    t.compile(optimizer="adam", loss="mse")  # type: ignore[attr-defined]
else:
    m.compile(optimizer="adam", loss="mse", jit_compile=side == "keras-xla")
    t = m
c, w = time.process_time(), time.perf_counter()
t.fit(x, y, batch_size=32, epochs=3, verbose=0)  # type: ignore[attr-defined]
c, w = time.process_time() - c, time.perf_counter() - w
xla = t.tuning["xla"]["train"] if isinstance(t, fitpipe.Trainer) else {}
total = sum(float(np.abs(v).sum()) for v in m.get_weights())
choice = f"xla {xla.get('xla')}: {xla.get('reason')}"
print(f"{side}: {c:.1f} s CPU, {w:.1f} s wall, |w| {total:.4f}, {choice}")
