"""Run by test_dist_multi_worker.py: one worker of a MultiWorkerMirroredStrategy cluster.

``TF_CONFIG`` names the cluster and this worker's index. The worker trains on two Parquet
folders sharded at the source: ``even`` (every worker gets the same rows) and ``uneven`` (the
second worker is padded); then on an Arrow table, shuffled (sharded by row blocks, one seed
for all workers), and on NumPy arrays (the strategy's own distribution). After the first
fit, it predicts (every worker gets every row back, in order): the two folders and NumPy
arrays, returned; and an Arrow table with ``output=`` into the folder given third (the chief
alone writes it). Then what must fail on every worker, each at once: ``predict`` with an
``output=`` only the chief cannot write (the others are given a path they could write),
``fit`` with ``data_service=``, and ``fit`` on a source only the chief cannot plan (a
missing folder, a schema naming a missing column; the others are given what they could
plan: the chief plans for all). Last, a plain ``fit`` (no callback). Prints one JSON line:
per input the History, the steps of each epoch, the row groups this worker read while
training, the Parquet footers it read while planning, and the final weights; the
predictions, the path ``predict`` returned, and the prediction files this worker wrote
itself; each failure's error type, message and seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

# The strategy comes first: it starts the cluster before TensorFlow runs anything else.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy(
    communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=120)
)

import keras  # noqa: E402
from dist_data import SCHEMA, arrays, table, worker_model  # noqa: E402

import fitpipe  # noqa: E402
from fitpipe.columnar import parquet  # noqa: E402
from fitpipe.training import outputs  # noqa: E402

READ: list[tuple[str, int]] = []
FOOTERS: list[str] = []
TRAINING = [False]
WRITTEN: list[str] = []
MODELS: list[keras.Model] = []


def _recording_write(path: Any, tables: Any, progress: Any) -> str:
    """Records each prediction file this worker writes itself."""
    WRITTEN.append(os.fspath(path))
    return WRITE(path, tables, progress)


WRITE = outputs.write_atomically
outputs.write_atomically = _recording_write


class _RecordingReader(parquet._GroupReader):
    """Records which row group is read once training runs (planning reads metadata only)."""

    def __call__(self, columns: list[str], buffered: bool = False) -> Any:
        if TRAINING[0]:
            READ.append((os.path.basename(self.fragment.path), self.group))
        return super().__call__(columns, buffered)


parquet._GroupReader = _RecordingReader  # type: ignore[misc]
FOOTER = parquet._footer


def _recording_footer(fragment: Any, where: str, caller: str) -> Any:
    """Records each footer this worker reads while planning."""
    FOOTERS.append(os.path.basename(where))
    return FOOTER(fragment, where, caller)


parquet._footer = _recording_footer


class Steps(keras.callbacks.Callback):
    """Counts the steps of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def on_train_begin(self, logs: Any = None) -> None:
        TRAINING[0] = True

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.steps.append(0)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.steps[-1] += 1

    def on_train_end(self, logs: Any = None) -> None:
        TRAINING[0] = False


def predict(model: keras.Model, even: str, uneven: str, folder: str) -> dict[str, Any]:
    """Predicts with a trained model: arrays returned, and an Arrow table's rows to a file.

    The file's rows come from a table (one chunk): each chunk of a Parquet folder (a row
    group) is one more ``predict`` call, about a second each under this strategy.
    """
    trainer = fitpipe.Trainer(model)

    def rows(x: Any, schema: Any = SCHEMA) -> list[float]:
        return trainer.predict(x, schema=schema, batch_size=8, verbose=0).ravel().tolist()

    path = os.path.join(folder, "table.parquet")
    returned = trainer.predict(table(44), schema=SCHEMA, batch_size=8, verbose=0, output=path)
    return {
        "even": rows(even),
        "uneven": rows(uneven),  # the last global batch of 4 rows: 2 per worker
        "numpy": rows(arrays(43)[0], None),  # 3 rows: 2 and 1
        "returned": returned,
        "written": list(WRITTEN),
    }


def failure(call: Callable[[], Any]) -> dict[str, Any]:
    """The error ``call`` raises (type and message) and the seconds it took to raise it."""
    start = time.monotonic()
    try:
        call()
    except Exception as error:  # the test checks the type
        return {
            "type": type(error).__name__,
            "message": str(error),
            "seconds": time.monotonic() - start,
        }
    return {"type": None, "message": "", "seconds": time.monotonic() - start}


def refused(model: keras.Model, even: str, folder: str) -> dict[str, Any]:
    """``predict`` into paths the chief alone cannot write; ``fit`` on a tf.data service."""
    trainer = fitpipe.Trainer(model)
    chief = STRATEGY.extended.should_checkpoint
    writable = os.path.join(folder, "table.parquet")
    paths = {
        "no_folder": os.path.join(folder, "missing", "table.parquet"),
        "file_as_folder": os.path.join(even, "part-000.parquet", "table.parquet"),
    }
    out = {
        name: failure(
            lambda path=(path if chief else writable): trainer.predict(
                table(44), schema=SCHEMA, batch_size=8, verbose=0, output=path
            )
        )
        for name, path in paths.items()
    }
    out["data_service"] = failure(
        lambda: trainer.fit(table(44), schema=SCHEMA, verbose=0, data_service="grpc://localhost:1")
    )
    missing = os.path.join(folder, "missing.parquet") if chief else even
    out["plan_missing"] = failure(lambda: trainer.fit(missing, schema=SCHEMA, verbose=0))
    wrong = fitpipe.Schema(["a", "absent"], "y") if chief else SCHEMA
    out["plan_schema"] = failure(lambda: trainer.fit(even, schema=wrong, verbose=0))
    return out


def train(
    x: Any, y: Any = None, schema: Any = SCHEMA, shuffle: bool = False, count: bool = True
) -> dict[str, Any]:
    """Fits on one input (``count``: with a callback counting steps); returns what is compared."""
    READ.clear()
    FOOTERS.clear()
    with STRATEGY.scope():
        built = worker_model()
    steps = Steps()
    history = fitpipe.Trainer(built).fit(
        x,
        y,
        schema=schema,
        batch_size=8,
        epochs=2,
        shuffle=shuffle,
        verbose=0,
        callbacks=[steps] if count else None,
    )
    MODELS.append(built)
    return {
        "history": history.history,
        "steps": steps.steps,
        "read": sorted(set(READ)),
        "footers": sorted(FOOTERS),
        "weights": [w.ravel().tolist() for w in built.get_weights()],
    }


def main() -> None:
    """Trains on the two folders given as arguments; predicts into the third; then fails."""
    out = {
        "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": STRATEGY.num_replicas_in_sync,
        "even": train(sys.argv[1]),
        "predict": predict(MODELS[-1], sys.argv[1], sys.argv[2], sys.argv[3]),
        "refused": refused(MODELS[-1], sys.argv[1], sys.argv[3]),
        "uneven": train(sys.argv[2]),
        "arrow_shuffled": train(table(44), shuffle=True),
        "numpy": train(*arrays(48), schema=None),
        "plain": train(sys.argv[1], count=False),
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
