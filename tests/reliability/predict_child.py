"""``predict(..., output=)`` killed while writing, run as a child process.

Usage: ``python predict_child.py OUTPUT READY [named]``. Predicts 150,000 rows of an Arrow
table to ``OUTPUT`` (three row groups of up to 65,536 rows); once the first row group is
written it creates ``READY`` and waits for the parent to kill it. With ``named``, the
portable path (a named temporary file, renamed when complete) is used instead of Linux's
unnamed file.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pyarrow as pa

import fitpipe
from fitpipe.columnar import write as columnar_write

ROWS = 150_000


#: The first batch of the second row group: the first is written by then.
SECOND_CHUNK = 65_536 // 4096


class WaitForKill(keras.callbacks.Callback):
    """On the second chunk (the first row group is written), signals and waits to be killed."""

    def __init__(self, ready: str) -> None:
        super().__init__()
        self.ready = ready

    def on_predict_batch_begin(self, batch: int, logs: object = None) -> None:
        if batch == SECOND_CHUNK:
            with open(self.ready, "w") as file:
                file.write("ready")
            time.sleep(120)
            raise SystemExit("not killed")


def main(output: str, ready: str, named: bool) -> None:
    if named:
        columnar_write._open_unnamed = lambda folder: None  # type: ignore[assignment]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    values = np.arange(ROWS * 2, dtype="float32").reshape(ROWS, 2)
    table = pa.table({"id": np.arange(ROWS), "a": values[:, 0], "b": values[:, 1]})
    schema = fitpipe.Schema(features=["a", "b"], passthrough=["id"])
    trainer.predict(
        table,
        schema=schema,
        output=output,
        batch_size=4096,
        verbose=0,
        callbacks=[WaitForKill(ready)],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], len(sys.argv) > 3)
