"""Run by test_dist_multi_worker.py: one worker of a MultiWorkerMirroredStrategy cluster.

``TF_CONFIG`` names the cluster and this worker's index. The worker trains on two Parquet
folders sharded at the source: ``even`` (every worker gets the same rows) and ``uneven`` (the
second worker is padded); then on an Arrow table, shuffled (sharded by row blocks, one seed
for all workers), and on NumPy arrays (the strategy's own distribution). After the first
fit, it predicts (every worker gets every row back, in order): the two folders and NumPy
arrays, returned; and an Arrow table with ``output=`` into the folder given third (the chief
alone writes it). Prints one JSON line: per input the History, the steps of each epoch,
the row groups this worker read while training, and the final weights; the predictions, the
path ``predict`` returned, and the prediction files this worker wrote itself.
"""

from __future__ import annotations

import json
import os
import sys
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

    def __call__(self, columns: list[str]) -> Any:
        if TRAINING[0]:
            READ.append((os.path.basename(self.fragment.path), self.group))
        return super().__call__(columns)


parquet._GroupReader = _RecordingReader  # type: ignore[misc]


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


def train(x: Any, y: Any = None, schema: Any = SCHEMA, shuffle: bool = False) -> dict[str, Any]:
    """Fits on one input; returns what the test compares."""
    READ.clear()
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
        callbacks=[steps],
    )
    MODELS.append(built)
    return {
        "history": history.history,
        "steps": steps.steps,
        "read": sorted(set(READ)),
        "weights": [w.ravel().tolist() for w in built.get_weights()],
    }


def main() -> None:
    """Trains on the two folders given as arguments; predicts into the third."""
    out = {
        "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": STRATEGY.num_replicas_in_sync,
        "even": train(sys.argv[1]),
        "predict": predict(MODELS[-1], sys.argv[1], sys.argv[2], sys.argv[3]),
        "uneven": train(sys.argv[2]),
        "arrow_shuffled": train(table(44), shuffle=True),
        "numpy": train(*arrays(48), schema=None),
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
