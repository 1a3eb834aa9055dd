"""``predict(output=)`` runs one ``predict``: Keras' batches, one callback lifecycle, its stop.

Each chunk of the input (a Parquet row group) used to run a whole ``predict`` of its own:
``on_predict_begin`` and ``on_predict_end`` once per chunk, batch numbers from 0 in each, a
short batch at each chunk's end, and a callback's ``model.stop_predicting`` lost at the
next chunk. Keras' ``predict`` of the same rows is the oracle, drawn over row counts,
row-group sizes, batch sizes and the batch a callback stops at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe

FEATURES = ["f0", "f1", "f2"]


class Recorder(keras.callbacks.Callback):
    """Records the predict events; sets ``stop_predicting`` after batch ``stop``."""

    def __init__(self, stop: int | None) -> None:
        super().__init__()
        self.stop = stop
        self.events: list[tuple[str, int | None]] = []

    def on_predict_begin(self, logs: Any = None) -> None:
        self.events.append(("begin", None))

    def on_predict_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.events.append(("batch_begin", batch))

    def on_predict_batch_end(self, batch: int, logs: Any = None) -> None:
        self.events.append(("batch_end", batch))
        if batch == self.stop:
            self.model.stop_predicting = True

    def on_predict_end(self, logs: Any = None) -> None:
        self.events.append(("end", None))


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((len(FEATURES),))
    return keras.Model(inputs, keras.layers.Dense(2, name="score")(inputs))


@settings(deadline=None)
@given(
    rows=st.integers(1, 90),
    group=st.integers(1, 40),
    batch=st.integers(1, 16),
    stop=st.one_of(st.none(), st.integers(0, 8)),
)
def test_predict_to_a_file_runs_keras_batches_and_one_lifecycle(
    tmp_path_factory: Any, rows: int, group: int, batch: int, stop: int | None
) -> None:
    folder: Path = tmp_path_factory.mktemp("predict")
    x = np.random.default_rng(rows).normal(size=(rows, len(FEATURES))).astype("float32")
    table = pa.table({"id": np.arange(rows), **{f: x[:, i] for i, f in enumerate(FEATURES)}})
    pq.write_table(table, folder / "in.parquet", row_group_size=group)
    keras_model, ours = _model(), _model()
    theirs = Recorder(stop)
    expected = keras_model.predict(x, batch_size=batch, callbacks=[theirs], verbose=0)
    trainer = fitpipe.Trainer(ours)
    recorder = Recorder(stop)
    trainer.predict(
        folder / "in.parquet",
        schema=fitpipe.Schema(FEATURES, passthrough=["id"]),
        batch_size=batch,
        callbacks=[recorder],
        output=folder / "out.parquet",
        verbose=0,
    )
    assert recorder.events == theirs.events
    written = pq.read_table(folder / "out.parquet")
    assert written.column("id").to_pylist() == list(range(len(expected)))
    np.testing.assert_allclose(np.stack(written.column("score").to_numpy(False)), expected)
