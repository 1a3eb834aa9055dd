"""``shuffle="batch"``: rows shuffled in batch-sized chunks, where rows are addressed by index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.testing import epoch_batches


def epoch_ids(pipeline: Any) -> list[list[int]]:
    return [np.asarray(b[1]).ravel().astype(int).tolist() for b in epoch_batches(pipeline)]


def check_blocks(batches: list[list[int]], rows: int, batch_size: int) -> list[int]:
    """Every batch is one batch-sized block (the partial one last); returns the block order."""
    blocks = []
    for i, ids in enumerate(batches):
        first = min(ids)
        assert first % batch_size == 0
        assert sorted(ids) == list(range(first, min(first + batch_size, rows)))
        assert len(ids) == batch_size or i == len(batches) - 1
        blocks.append(first // batch_size)
    assert sorted(blocks) == list(range(len(batches)))
    return blocks


@given(st.integers(1, 60), st.integers(1, 9), st.integers(0, 2**16), st.booleans())
def test_batches_are_contiguous_blocks_in_a_new_order_every_epoch(
    rows: int, batch_size: int, seed: int, streamed: bool
) -> None:
    limit = 0 if streamed else limits.RESIDENT_BYTES_LIMIT
    keras.utils.set_random_seed(seed)
    old, limits.RESIDENT_BYTES_LIMIT = limits.RESIDENT_BYTES_LIMIT, limit
    try:
        x = np.arange(rows, dtype="float32")[:, None]
        pipeline = fitpipe.adapt(x, np.arange(rows), batch_size=batch_size, shuffle="batch")
        assert (pipeline.rows is None) == streamed
        epochs = [epoch_ids(pipeline) for _ in range(3)]
        keras.utils.set_random_seed(seed)
        again = fitpipe.adapt(x, np.arange(rows), batch_size=batch_size, shuffle="batch")
        assert epoch_ids(again) == epochs[0]  # reproducible under the seed
    finally:
        limits.RESIDENT_BYTES_LIMIT = old
    orders = [check_blocks(batches, rows, batch_size) for batches in epochs]
    if rows // batch_size >= 6:  # 720 orders of the full blocks: 3 epochs alike by chance 1e-5
        assert len({tuple(o) for o in orders}) > 1
    if rows // batch_size and batch_size >= 6:
        assert any(ids != sorted(ids) for batches in epochs for ids in batches)


def test_compiled_loop_order_matches_the_dataset(seeded: Any) -> None:
    seeded(3)
    x = np.arange(23, dtype="float32")[:, None]
    pipeline = fitpipe.adapt(x, np.arange(23), batch_size=5, shuffle="batch")
    assert pipeline.rows is not None
    for epoch in range(3):
        order = pipeline.rows.order(epoch).numpy().tolist()
        from_dataset = [i for ids in epoch_ids(pipeline) for i in ids]
        assert order == from_dataset
        check_blocks([order[i : i + 5] for i in range(0, 23, 5)], 23, 5)


def test_arrow_tables_and_frames_in_memory_take_it() -> None:
    table = pa.table({"x": np.arange(10.0), "y": np.arange(10)})
    schema = fitpipe.Schema(features=["x"], targets="y")
    check_blocks(
        epoch_ids(fitpipe.adapt(table, schema=schema, batch_size=4, shuffle="batch")), 10, 4
    )
    frame = pd.DataFrame({"x": np.arange(10.0)})
    pipeline = fitpipe.adapt(frame, np.arange(10), batch_size=3, shuffle="batch")
    check_blocks(epoch_ids(pipeline), 10, 3)


def _batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    yield np.zeros((2, 1)), np.zeros(2)


def _refused_inputs(tmp_path: Path) -> list[tuple[str, Any]]:
    class Batches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> Any:
            return np.zeros((2, 1)), np.zeros(2)

    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": np.arange(8.0), "y": np.arange(8.0)}), path)
    return [
        ("tf.data", tf.data.Dataset.from_tensor_slices((np.zeros((4, 1)), np.zeros(4))).batch(2)),
        ("generator", _batches()),
        ("pydataset", Batches()),
        ("parquet", str(path)),
    ]


def test_inputs_read_in_their_own_batches_refuse_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed Parquet
    schema = fitpipe.Schema(features=["x"], targets="y")
    for name, x in _refused_inputs(tmp_path):
        kwargs = {"schema": schema} if name == "parquet" else {}
        refused = rf'^`adapt` does not support `shuffle="batch"` when `x` is .*\(adapter {name!r}\)'
        with pytest.raises(ValueError, match=refused):
            fitpipe.adapt(x, shuffle="batch", **kwargs)


@pytest.mark.parametrize("value", ["rows", "Batch", 1, None, [True]])
def test_other_values_are_a_type_error(value: Any) -> None:
    with pytest.raises(
        TypeError, match=r'^`adapt` got an invalid `shuffle`.*True, False, or "batch"'
    ):
        fitpipe.adapt(np.zeros((4, 1)), shuffle=value)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(loss="mse")
    with pytest.raises(TypeError, match=r"^`fit` got an invalid `shuffle`"):
        trainer.fit(np.zeros((4, 1)), np.zeros(4), shuffle=value, verbose=0)


def test_data_service_refuses_it() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` cannot shuffle in batch-sized chunks"):
        fitpipe.adapt(np.zeros((4, 1)), shuffle="batch", data_service="grpc://localhost:1")
