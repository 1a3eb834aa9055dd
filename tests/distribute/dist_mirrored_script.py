"""Run by test_dist_mirrored.py in a subprocess: two logical CPU devices, MirroredStrategy.

The logical devices must be configured before TensorFlow initializes its devices, so this
runs in its own process. Prints one JSON line: the runs to compare. ``fit`` with
``data_service=`` under the strategy runs here too (a dispatcher and one worker in this
process), rather than in a cluster of its own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from dist_data import SCHEMA, table, write  # noqa: E402

import fitpipe  # noqa: E402
from fitpipe.training.sharing import share_bytes  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _model(strategy: Any, rate: float = 0.05) -> keras.Model:
    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)]
        )
        model.compile(keras.optimizers.SGD(rate), "mse", metrics=["mae"], jit_compile=False)
        return model

    if strategy is None:
        return build()
    with strategy.scope():
        return build()


def arrays(strategy: Any, with_keras: bool) -> dict[str, Any]:
    """In-memory arrays: fit with validation data, evaluate, predict."""
    data = table(64).to_pydict()
    x = np.stack([np.array(data["a"]) / 64, data["b"]], axis=1).astype("float32")
    y = np.array(data["y"], "float32")[:, None]
    model = _model(strategy)
    runner: Any = model if with_keras else fitpipe.Trainer(model)
    history = runner.fit(
        x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_data=(x[:32], y[:32])
    )
    evaluated = runner.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    predicted = runner.predict(x[:60], batch_size=16, verbose=0)  # last batch 12: split 6/6
    on_batch = {
        "train": runner.train_on_batch(x[:16], y[:16], return_dict=True),
        "test": runner.test_on_batch(x[:16], y[:16], return_dict=True),
        "predict": np.asarray(runner.predict_on_batch(x[:10])).ravel().tolist(),
    }
    return {
        "history": history.history,
        "evaluate": evaluated,
        "predict": np.asarray(predicted).ravel().tolist(),
        "on_batch": on_batch,
    }


def predistributed(with_keras: bool, from_function: bool) -> dict[str, Any]:
    """A dataset distributed by the strategy before `fit`, `evaluate` and `predict`."""
    data = table(64).to_pydict()
    x = np.stack([np.array(data["a"]) / 64, data["b"]], axis=1).astype("float32")
    y = np.array(data["y"], "float32")[:, None]

    def distribute(*parts: np.ndarray) -> Any:
        dataset = tf.data.Dataset.from_tensor_slices(parts)
        if from_function:  # per-replica batches of 8: global batches of 16
            return STRATEGY.distribute_datasets_from_function(lambda _: dataset.batch(8))
        return STRATEGY.experimental_distribute_dataset(dataset.batch(16))

    model = _model(STRATEGY)
    runner: Any = model if with_keras else fitpipe.Trainer(model)
    history = runner.fit(distribute(x, y), epochs=2, verbose=0)
    evaluated = runner.evaluate(distribute(x, y), verbose=0, return_dict=True)
    predicted = runner.predict(distribute(x), verbose=0)
    return {
        "history": history.history,
        "evaluate": evaluated,
        "predict": np.sort(np.asarray(predicted).ravel()).tolist(),
        "weights": [w.ravel().tolist() for w in model.get_weights()],
    }


def no_strategy(with_keras: bool) -> str:
    """The error of a model built under no strategy, fed a dataset split over two replicas."""
    parts = (np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32"))
    dataset = tf.data.Dataset.from_tensor_slices(parts).batch(4)
    model = _model(None)
    runner: Any = model if with_keras else fitpipe.Trainer(model)
    try:
        runner.fit(STRATEGY.experimental_distribute_dataset(dataset), verbose=0)
    except ValueError as error:
        return f"{type(error).__name__}: {error}"
    return "trained"


def columnar(strategy: Any, source: Any) -> dict[str, Any]:
    """Arrow table or Parquet folder, sharded at the source under a strategy."""
    model = _model(strategy, rate=5e-4)  # feature `a` is the row index: small steps
    history = fitpipe.Trainer(model).fit(
        source, schema=SCHEMA, batch_size=8, epochs=2, shuffle=False, verbose=0
    )
    return {"history": history.history}


def uneven(source: Any, with_keras: bool) -> dict[str, Any]:
    """37 rows in batches of 8 (the last 5, split 3/2): ``fit`` and ``evaluate``.

    One worker reads every row: an Arrow table or a Parquet folder is split over the
    replicas as Keras splits arrays (its last batch was padded to 8 with zero-weight rows,
    which counted in ``mae`` and in the loss's mean). ``with_keras``: Keras' own ``fit`` on
    the same rows as arrays.
    """
    data = table(37).to_pydict()
    x = np.stack([data["a"], data["b"]], axis=1).astype("float32")
    y = np.array(data["y"], "float32")[:, None]
    model = _model(STRATEGY, rate=5e-4)
    if with_keras:
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        evaluated = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    else:
        trainer = fitpipe.Trainer(model)
        kw: dict[str, Any] = {"schema": SCHEMA, "batch_size": 8, "verbose": 0}
        history = trainer.fit(source, epochs=2, shuffle=False, **kw)
        evaluated = trainer.evaluate(source, return_dict=True, **kw)
    return {"history": history.history, "evaluate": evaluated}


def too_few_rows() -> list[str]:
    """``fit`` of batches of fewer rows than replicas: a replica would get none."""
    data = table(9).to_pydict()
    x = np.stack([data["a"], data["b"]], axis=1).astype("float32")
    y = np.array(data["y"], "float32")[:, None]
    found = []
    for rows, batch in [(9, 1), (1, 32)]:
        try:
            fitpipe.Trainer(_model(STRATEGY)).fit(x[:rows], y[:rows], batch_size=batch, verbose=0)
            found.append("trained")
        except ValueError as error:
            found.append(f"{type(error).__name__}: {error}")
    return found


def on_service() -> dict[str, Any]:
    """``fit`` under the strategy on a tf.data service; and on one device, without.

    One service worker produces the batches in order, so with ``shuffle=False`` both runs
    take the same steps: every row once per epoch, each global batch split 4/4 over the
    replicas (56 rows, batches of 16: the last one 8 rows).
    """
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer(
        service.DispatcherConfig(job_gc_check_interval_ms=200, job_gc_timeout_ms=500)
    )
    host = dispatcher.target.split("://", 1)[1]
    worker = service.WorkerServer(
        service.WorkerConfig(dispatcher_address=host, heartbeat_interval_ms=200)
    )
    data = table(56).to_pydict()
    x = np.stack([np.array(data["a"]) / 56, data["b"]], axis=1).astype("float32")
    y = np.array(data["y"], "float32")[:, None]
    runs = {}
    for name, strategy, address in [("one", None, None), ("mirrored", STRATEGY, dispatcher.target)]:
        model = _model(strategy)
        history = fitpipe.Trainer(model).fit(
            x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, data_service=address
        )
        runs[name] = {
            "history": history.history,
            "weights": [w.ravel().tolist() for w in model.get_weights()],
        }
    worker._stop()
    dispatcher._stop()
    return runs


def shared() -> list[bool]:
    """Whether bytes of several lengths come back whole through two replicas' all-reduce.

    Only one replica gives the bytes (4 per int32 word): a sum over both must not double.
    """
    sizes = (0, 1, 4091, 4092, 4093, 100_003)
    return [share_bytes(STRATEGY, data) == data for data in map(os.urandom, sizes)]


def main() -> None:
    """Runs every case on one device and under the strategy; prints the results."""
    folder = write(Path(sys.argv[1]), 48, row_group=8)
    arrow = table(48)
    out = {
        "devices": STRATEGY.num_replicas_in_sync,
        "arrays_one": arrays(None, False),
        "arrays_mirrored": arrays(STRATEGY, False),
        "arrays_keras_mirrored": arrays(STRATEGY, True),
        "predistributed": predistributed(False, False),
        "predistributed_keras": predistributed(True, False),
        "from_function": predistributed(False, True),
        "from_function_keras": predistributed(True, True),
        "no_strategy": no_strategy(False),
        "no_strategy_keras": no_strategy(True),
        "arrow_one": columnar(None, arrow),
        "arrow_mirrored": columnar(STRATEGY, arrow),
        "parquet_one": columnar(None, folder),
        "parquet_mirrored": columnar(STRATEGY, folder),
        "uneven_keras": uneven(None, True),
        "uneven_arrow": uneven(table(37), False),
        "uneven_parquet": uneven(write(Path(sys.argv[1] + "-37"), 37, row_group=8), False),
        "too_few_rows": too_few_rows(),
        "service": on_service(),
        "shared": shared(),
    }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
