"""Sample weights of strings are refused before the first step, however they arrive.

Arrays given as ``sample_weight`` are refused as they are taken in; weights that a schema
reads from a table column (pandas, Arrow, Parquet) or that a dataset yields reach the step
as strings, where TensorFlow's cast failed with a message naming nothing. The check of the
batches' spec refuses them all with one error, whose fixes are run here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.errors import FitpipeTypeError

ROWS = 12
SCHEMA = fitpipe.Schema(["a", "b"], "y", sample_weight="w")


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=ROWS),
            "b": rng.normal(size=ROWS),
            "y": rng.integers(0, 2, ROWS).astype("float32"),
            "w": [str(0.5 + i / ROWS) for i in range(ROWS)],
        }
    )


def _trainer() -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="binary_crossentropy")
    return trainer


def _fit(form: str, frame: pd.DataFrame, folder: Path) -> Any:
    trainer = _trainer()
    if form == "tf.data":
        parts = (frame[["a", "b"]].to_numpy("float32"), frame["y"].to_numpy(), frame["w"])
        data = tf.data.Dataset.from_tensor_slices(tuple(np.asarray(p) for p in parts))
        return trainer.fit(data.batch(5), verbose=0)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    given: Any = {"pandas": frame, "arrow": table}.get(form)
    if form == "parquet":
        given = str(folder / "data.parquet")
        pq.write_table(table, given)
    return trainer.fit(given, schema=SCHEMA, batch_size=5, verbose=0)


@pytest.mark.parametrize("form", ["pandas", "arrow", "parquet", "tf.data"])
def test_string_weights_are_refused_before_the_step(form: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(FitpipeTypeError, match=r"^`fit` got string sample weights\. "):
            _fit(form, _frame(), Path(folder))


def test_the_suggested_casts_work() -> None:
    frame = _frame()
    with pytest.raises(FitpipeTypeError) as caught:
        _fit("pandas", frame, Path("."))
    text = str(caught.value)
    table_fix = text.split("e.g. `")[1].split("`")[0]
    frame_fix = text.split("or `")[1].split("`")[0]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    i = table.schema.get_field_index("w")
    cast = eval(table_fix, {"table": table, "i": i})
    assert cast.schema.field("w").type == pa.float32()
    history = _trainer().fit(cast, schema=SCHEMA, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    fixed = eval(frame_fix, {"frame": frame})
    history = _trainer().fit(fixed, schema=SCHEMA, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
