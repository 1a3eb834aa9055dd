"""Run by test_dist_multi_worker.py: one worker of a MultiWorkerMirroredStrategy cluster.

``TF_CONFIG`` names the cluster and this worker's index. The worker trains on two Parquet
folders sharded at the source: ``even`` (every worker gets the same rows) and ``uneven`` (the
second worker is padded); then on an Arrow table, shuffled (sharded by row blocks, one seed
for all workers), and on NumPy arrays (the strategy's own distribution). Prints one JSON
line: per input the History, the steps of each epoch, the row groups this worker read while
training, and the final weights.
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

READ: list[tuple[str, int]] = []
TRAINING = [False]


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
    return {
        "history": history.history,
        "steps": steps.steps,
        "read": sorted(set(READ)),
        "weights": [w.ravel().tolist() for w in built.get_weights()],
    }


def main() -> None:
    """Trains on the two folders given as arguments."""
    out = {
        "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": STRATEGY.num_replicas_in_sync,
        "even": train(sys.argv[1]),
        "uneven": train(sys.argv[2]),
        "arrow_shuffled": train(table(44), shuffle=True),
        "numpy": train(*arrays(48), schema=None),
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
