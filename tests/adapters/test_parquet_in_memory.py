"""Small Parquet data is read once into memory; larger or variable-width data is streamed.

The in-memory path gives the same rows, batches and errors as the streamed one (which
tests/adapters/test_parquet.py covers), with rows held like an Arrow table.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pytest
from conftest_arrow import numbered_table, write_null_parts, write_parts

import fitpipe
from fitpipe import limits
from fitpipe.adapters import AdaptRequest
from fitpipe.errors import SchemaError
from fitpipe.pipeline import adapt_source

SCHEMA = fitpipe.Schema(["a", "b"], "y")


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_parts(folder, numbered_table(130), [50, 37, 43], row_group_size=16)
    return folder


def ids(pipeline: fitpipe.Pipeline) -> list[int]:
    return [int(i) for batch in pipeline.dataset for i in batch[1].numpy().ravel()]


def test_small_data_is_held_in_memory_with_the_streamed_batches(parts, monkeypatch):
    held = fitpipe.adapt(parts, schema=fitpipe.Schema(["a", "b"], "id"), batch_size=16)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    streamed = fitpipe.adapt(parts, schema=fitpipe.Schema(["a", "b"], "id"), batch_size=16)
    assert held.rows is not None and streamed.rows is None
    assert ids(held) == ids(streamed) == list(range(130))
    assert held.num_batches == streamed.num_batches == 9


def test_the_limit_is_the_converted_size(parts, monkeypatch):
    # 2 features + 1 target, float32: 4 bytes each once converted: 130 * 12 = 1560 bytes.
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 1560)
    assert fitpipe.adapt(parts, schema=SCHEMA).rows is not None
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 1559)
    assert fitpipe.adapt(parts, schema=SCHEMA).rows is None


def test_variable_width_columns_are_streamed(tmp_path):
    table = pa.table({"s": pa.array([[1.0], [2.0, 3.0]] * 5), "y": np.arange(10.0)})
    folder = tmp_path / "lists"
    write_parts(folder, table, [10], row_group_size=4)
    pipeline = fitpipe.adapt(folder, schema=fitpipe.Schema("s", "y"))
    assert pipeline.rows is None


def test_not_held_when_the_caller_streams(parts):
    request = AdaptRequest(x=parts, schema=SCHEMA, hold_in_memory=False)
    assert type(adapt_source(request)[1]).__name__ == "BatchSource"
    request = AdaptRequest(x=parts, schema=SCHEMA)
    assert type(adapt_source(request)[1]).__name__ == "ArraySource"


def test_shuffle_each_row_once_and_epochs_differ(parts):
    keras.utils.set_random_seed(1)
    pipeline = fitpipe.adapt(parts, schema=fitpipe.Schema(["a", "b"], "id"), shuffle=True)
    first, second = ids(pipeline), ids(pipeline)
    assert sorted(first) == sorted(second) == list(range(130))
    assert first != second


def test_validation_split_takes_the_last_rows(parts):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    seen: list[int] = []
    callback = keras.callbacks.LambdaCallback(on_test_batch_end=lambda b, logs: seen.append(b))
    history = trainer.fit(
        parts, schema=SCHEMA, validation_split=0.2, batch_size=13, verbose=0, callbacks=[callback]
    )
    assert "val_loss" in history.history
    assert len(seen) == 2  # the last 26 rows, 13 per batch


def test_null_names_column_row_and_file(tmp_path):
    folder = write_null_parts(tmp_path / "nulls")
    with pytest.raises(SchemaError, match=r"(?s)'a' at row 17 of .*part-001\.parquet"):
        fitpipe.adapt(folder, schema=SCHEMA)


def test_corrupt_file_is_named_before_training(parts):
    bad = parts / "part-001.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[:4] + b"\x00" * (len(data) - 8) + data[-4:])
    with pytest.raises(ValueError, match=r"part-001\.parquet"):
        fitpipe.adapt(parts, schema=SCHEMA)
