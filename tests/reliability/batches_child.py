"""Runs cases of batch sequences through fitpipe (and Keras) in a child process.

Usage: ``python batches_child.py``. Reads one JSON case a line on stdin and writes one line
``RESULT <json>`` on stdout per case, so a crash of one case (SIGSEGV) ends this process, not
the test run. A case describes the batches a generator (or ``PyDataset``) yields, the call
(``fit``, ``evaluate`` or ``predict``) and ``jit_compile``; the result is what fitpipe
returned or raised, next to what a plain NumPy computation of the same steps gives (and, when
asked, what Keras returns).

The model is ``Dense(1)`` on 4 features with fixed initial weights, SGD (no momentum) and MSE,
so the NumPy computation is exact: a batch of 0 rows is a step with a zero gradient, as in
Keras.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import traceback
from typing import Any

faulthandler.enable()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import fitpipe  # noqa: E402
from fitpipe.errors import FitpipeError  # noqa: E402

FEATURES = 4
LEARNING_RATE = 0.1
W0 = np.linspace(-0.5, 0.5, FEATURES).reshape(FEATURES, 1)
B0 = np.array([0.1])


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype.startswith("int"):
        return rng.integers(-2, 3, shape).astype(dtype)
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def _with_none(array: np.ndarray) -> np.ndarray:
    held = array.astype(object)
    if held.size:
        held.flat[0] = None
    return held


def make_batch(desc: dict[str, Any], seed: int, index: int) -> tuple[Any, ...]:
    """The batch a description stands for (its values drawn from ``seed`` and ``index``)."""
    rng = np.random.default_rng(seed * 1000 + index)
    rows = desc["rows"]
    x = _values(rng, (rows, FEATURES), desc["x_dtype"])
    y = _values(rng, (desc.get("y_rows", rows), 1), desc["y_dtype"])
    if desc.get("nan") and rows and x.dtype.kind == "f":
        x[0, 0] = np.nan
    x = {1: x[:, 0], 2: x, 3: x[..., None]}[desc.get("x_rank", 2)]
    y = y[:, 0] if desc.get("y_rank", 2) == 1 else y
    if desc.get("none") == "x":
        x = _with_none(x)
    elif desc.get("none") == "y":
        y = _with_none(y)
    weights = rng.uniform(0.5, 1.5, (rows,)).astype("float32")
    parts = desc["parts"]
    if parts == "x":
        return (x,)
    if parts == "xysw":
        return (x, y, weights)
    if parts == "dict":
        return ({"a": x}, y)
    if parts == "list":
        return ([x], y)
    return (x, y)


def reference(batches: list[tuple[Any, ...]], call: str) -> list[float]:
    """What the call returns, computed with NumPy on the batches' own values (float64)."""
    w, b = W0.copy(), B0.copy()
    if call == "predict":
        outs = [np.asarray(batch[0], "float64") @ w + b for batch in batches]
        return np.concatenate(outs).ravel().tolist()
    total, rows = 0.0, 0
    for batch in batches:
        x = np.asarray(batch[0], "float64")
        y = np.asarray(batch[1], "float64").reshape(-1, 1)
        sw = np.asarray(batch[2], "float64") if len(batch) > 2 else np.ones(len(x))
        n = len(x)
        if not n:
            continue  # loss 0, gradient 0: SGD leaves the weights as they are
        r = (x @ w + b - y)[:, 0]
        total, rows = total + float(np.sum(sw * r * r)), rows + n
        if call == "fit":
            w = w - LEARNING_RATE * (2.0 / n) * (x.T @ (sw * r))[:, None]
            b = b - LEARNING_RATE * (2.0 / n) * np.sum(sw * r)
    if call == "evaluate":
        return [total / rows if rows else 0.0]
    return [*w.ravel(), *b.ravel(), float(len(batches))]


class Batches(keras.utils.PyDataset):
    """A ``PyDataset`` over fixed batches."""

    def __init__(self, batches: list[tuple[Any, ...]]) -> None:
        super().__init__()
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return self.batches[index]


def _model(jit: bool) -> keras.Model:
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
    model.set_weights([W0.astype("float32"), B0.astype("float32")])
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse", jit_compile=jit)
    return model


def _call(target: Any, model: keras.Model, case: dict[str, Any], data: Any) -> list[float]:
    call = case["call"]
    if call == "fit":
        target.fit(data, epochs=1, verbose=0, shuffle=False)
        found = [v.ravel().tolist() for v in model.get_weights()]
        return [*found[0], *found[1], float(model.optimizer.iterations.numpy())]
    if call == "evaluate":
        return [float(target.evaluate(data, verbose=0))]
    return np.asarray(target.predict(data, verbose=0)).ravel().tolist()


def _data(case: dict[str, Any], batches: list[tuple[Any, ...]]) -> Any:
    if case.get("source") == "pydataset":
        return Batches(batches)
    return (batch for batch in batches)


def run(case: dict[str, Any]) -> dict[str, Any]:
    """Runs one case; returns what fitpipe did, the NumPy reference and (if asked) Keras'."""
    if case.get("crash"):  # for the test that checks a crash is reported
        os.kill(os.getpid(), signal.SIGSEGV)
    seed = case.get("seed", 0)
    batches = [make_batch(desc, seed, i) for i, desc in enumerate(case["batches"])]
    result: dict[str, Any] = {}
    try:  # only batches that must train have a reference
        result["want"] = reference(batches, case["call"])
    except (ValueError, TypeError, IndexError):
        result["want"] = None
    model = _model(case["jit"])
    trainer = fitpipe.Trainer(model)
    trainer.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse", jit_compile=case["jit"]
    )
    try:
        result["got"] = _call(trainer, model, case, _data(case, batches))
    except Exception as err:  # reported to the parent, which judges it
        result["error"] = {
            "type": type(err).__name__,
            "fitpipe": isinstance(err, FitpipeError),
            "builtin": isinstance(err, (ValueError, TypeError)),
            "message": str(err),
        }
    if case.get("keras"):
        twin = _model(case["jit"])
        result["keras"] = _call(twin, twin, case, _data(case, batches))
    return result


def main() -> None:
    """Answers every case read from stdin with one ``RESULT`` line."""
    for line in sys.stdin:
        if line.strip():
            try:
                result = run(json.loads(line))
            except Exception:  # a bug of this script, not of fitpipe: say so
                result = {"child_error": traceback.format_exc()}
            print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
