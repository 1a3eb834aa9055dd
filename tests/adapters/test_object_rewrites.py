"""An object rewritten or deleted while a streamed ``fit`` reads it again, epoch after epoch.

A local file's change is seen by its ``stat``; an object store's modification time has whole
seconds, so an object rewritten with the same size (Parquet written alike for equal rows)
within one trained on the new rows silently, and another layout or a deleted object was
worded as a column of the wrong type. Each object's size and ETag are compared now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fitpipe
from fitpipe import limits
from object_store import S3, s3_server

pytestmark = pytest.mark.slow

SCHEMA = fitpipe.Schema(["x"], "y")
#: Parquet written alike for equal rows: the same bytes long whatever the values.
_PLAIN: dict[str, Any] = {"compression": "none", "use_dictionary": False, "write_statistics": False}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as server:
        yield server


def _put(s3: S3, key: str, start: int, rows: int = 20) -> None:
    table = pa.table({"x": np.arange(start, start + rows, dtype="float64"), "y": np.zeros(rows)})
    with s3.filesystem.open_output_stream(key) as stream:
        pq.write_table(table, stream, row_group_size=10, **_PLAIN)


class _After(keras.callbacks.Callback):
    def __init__(self, change: Callable[[], None]) -> None:
        super().__init__()
        self.change = change

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == 0:
            self.change()


CHANGES: dict[str, tuple[Callable[[S3, str], None], str, type[Exception]]] = {
    "same layout": (lambda s3, key: _put(s3, key, 900), "rewritten after it was planned", OSError),
    "another layout": (
        lambda s3, key: _put(s3, key, 900, rows=35),
        "rewritten after it was planned: ",
        OSError,
    ),
    "deleted": (
        lambda s3, key: s3.filesystem.delete_file(key),
        "deleted after it was planned",
        FileNotFoundError,
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_streamed_object_changed_between_epochs_is_refused_by_name(
    s3: S3, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed: read every epoch
    bucket = f"rewrite-{change.replace(' ', '-')}"
    s3.bucket(bucket)
    _put(s3, f"{bucket}/t/a.parquet", 0)
    _put(s3, f"{bucket}/t/b.parquet", 100)
    act, words, kind = CHANGES[change]
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    callback = _After(lambda: act(s3, f"{bucket}/t/b.parquet"))
    with pytest.raises(kind, match=words) as caught:
        trainer.fit(
            f"s3://{bucket}/t/",
            schema=SCHEMA,
            batch_size=10,
            epochs=2,
            shuffle=False,
            callbacks=[callback],
            verbose=0,
        )
    text = str(caught.value)
    assert f"s3://{bucket}/t/b.parquet" in text and "moves, rewrites, deletes" in text
    # epoch 2 trained on a.parquet (2 steps), then refused b.parquet before its first step
    assert trainer.model.optimizer.iterations.numpy() == 6


def test_an_unchanged_object_trains_every_epoch(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    s3.bucket("unchanged")
    _put(s3, "unchanged/t/a.parquet", 0)
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    history = trainer.fit("s3://unchanged/t/", schema=SCHEMA, batch_size=10, epochs=3, verbose=0)
    assert len(history.epoch) == 3
