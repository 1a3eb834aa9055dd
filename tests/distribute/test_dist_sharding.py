"""Sharding at the source, without a cluster: each shard's rows, padding and step counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from dist_data import SCHEMA, WEIGHTED, table, write

import fitpipe
from fitpipe import limits
from fitpipe.adapters import AdaptRequest
from fitpipe.adapters.sharding import pad_shard, per_replica_batch, plan_shards, with_weights
from fitpipe.errors import FitpipeValueError
from fitpipe.pipeline import adapt_source, split_source
from fitpipe.pipeline.sharding import array_shard


@pytest.fixture(autouse=True)
def _streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards are read by the streaming reader: small data is not read into memory here."""
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)


def _epoch(dataset: tf.data.Dataset) -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.asarray(part) for part in batch) for batch in dataset]


def _rows(batches: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Feature ``a`` (the row index) and the sample weight of every row, in order."""
    a = np.concatenate([b[0][:, 0] for b in batches])
    w = np.concatenate([b[-1] for b in batches])
    return a, w


def test_plan_deals_units_round_robin_and_counts_the_longest_shard() -> None:
    plan = plan_shards([8, 8, 8, 8, 8, 4], shards=2, rows_per_step=4)
    assert plan.units == ((0, 2, 4), (1, 3, 5))
    assert plan.rows == (24, 20)
    assert plan.steps == 6
    assert [plan.padding(0), plan.padding(1)] == [0, 4]


def test_plan_with_more_shards_than_units_pads_whole_shards() -> None:
    plan = plan_shards([5], shards=3, rows_per_step=2)
    assert plan.units == ((0,), (), ())
    assert plan.steps == 3
    assert [plan.padding(s) for s in range(3)] == [1, 6, 6]


def test_a_batch_that_does_not_split_over_the_replicas_is_refused() -> None:
    with pytest.raises(FitpipeValueError, match="cannot split a batch of 6 rows evenly over 4"):
        per_replica_batch(6, 4, "fit")


def test_padding_adds_zero_weight_rows_and_weights_one_to_real_rows() -> None:
    x = np.arange(6, dtype="float32").reshape(3, 2)
    chunks = tf.data.Dataset.from_tensors((x, np.ones(3, "float32")))
    rows = _epoch(pad_shard(with_weights(chunks), 2, "fit").unbatch().batch(5))
    assert rows[0][0].shape == (5, 2)
    np.testing.assert_array_equal(rows[0][2], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(rows[0][0][3:], 0)


def test_variable_length_columns_cannot_be_padded() -> None:
    ragged = tf.ragged.constant([[1.0], [2.0, 3.0]])
    chunks = tf.data.Dataset.from_tensors((ragged, tf.ones([2]), tf.ones([2])))
    with pytest.raises(FitpipeValueError, match="variable-length columns"):
        pad_shard(chunks, 1, "fit")


@pytest.mark.parametrize("shuffle", [False, True])
def test_parquet_shards_read_their_own_row_groups_and_every_row_once(
    tmp_path: Path, shuffle: bool
) -> None:
    folder = write(tmp_path / "d", 44, row_group=8)  # row groups: 8 8 8 8 8 4
    pipeline = fitpipe.adapt(folder, schema=SCHEMA, batch_size=8, shuffle=shuffle)
    assert pipeline.source.shard is not None
    shards = [pipeline.source.shard(i, 2, 2) for i in range(2)]
    assert [steps for _, steps in shards] == [6, 6]
    epochs = [_epoch(dataset) for dataset, _ in shards]
    assert [len(batches) for batches in epochs] == [12, 12]  # steps x replicas per shard
    assert all(b[0].shape == (2, 2) for batches in epochs for b in batches)
    groups = [set(), set()]
    real = []
    for shard, batches in enumerate(epochs):
        a, w = _rows(batches)
        groups[shard] = {int(v) // 8 for v in a[w > 0]}
        real.append(a[w > 0])
        assert np.count_nonzero(w == 0) == (0, 4)[shard]
    assert groups == [{0, 2, 4}, {1, 3, 5}]
    np.testing.assert_array_equal(np.sort(np.concatenate(real)), np.arange(44))


def test_parquet_shards_keep_the_schema_weights_and_class_weights(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", 20, row_group=5)
    schema = fitpipe.Schema(["a", "b"], "label", sample_weight="w")
    pipeline = fitpipe.adapt(folder, schema=schema, batch_size=4, class_weight={0: 1, 1: 3})
    data = table(20).to_pydict()
    expected = np.array(data["w"]) * np.where(np.array(data["label"]) == 1, 3.0, 1.0)
    assert pipeline.shard is not None  # the source's shards, class weights applied
    for index in range(2):
        dataset, _ = pipeline.shard(index, 2, 1)
        a, w = _rows(_epoch(dataset))
        real = w > 0
        np.testing.assert_allclose(w[real], expected[a[real].astype(int)], rtol=1e-6)


def test_parquet_shard_steps_follow_the_validation_split(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", 40, row_group=10)
    request = AdaptRequest(x=folder, batch_size=4, schema=SCHEMA, caller="fit")
    _, source = adapt_source(request)
    train, _ = split_source(source, 0.25, "fit", None)
    dataset, steps = train.shard(1, 2, 1)
    a, w = _rows(_epoch(dataset))
    assert steps == 10  # 30 rows: groups 0 and 2 (20 rows) vs group 1 (10), 2 rows a step
    np.testing.assert_array_equal(np.sort(a[w > 0]), np.arange(10, 20))


@pytest.mark.parametrize("shuffle", [False, True])
def test_arrow_rows_shard_by_blocks_matching_one_device_batches(
    shuffle: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the rows of the table are held in memory (not the fixture's limit)
    pipeline = fitpipe.adapt(table(44), schema=WEIGHTED, batch_size=8, shuffle=shuffle)
    assert pipeline.rows is not None
    build = array_shard(pipeline.rows)
    shards = [build(i, 2, 2) for i in range(2)]
    assert [steps for _, steps in shards] == [6, 6]
    epochs = [_epoch(dataset) for dataset, _ in shards]
    weights = np.linspace(0.5, 1.5, 44).astype("float32")
    real = []
    for batches in epochs:
        a, w = _rows(batches)
        real.append(a[w > 0])
        np.testing.assert_allclose(w[w > 0], weights[a[w > 0].astype(int)])
    np.testing.assert_array_equal(np.sort(np.concatenate(real)), np.arange(44))
    if not shuffle:  # step i of the two shards together: rows [8i, 8i + 8) as on one device
        for step in range(6):
            both = np.concatenate(
                [epochs[s][2 * step + r][0][:, 0] for s in range(2) for r in range(2)]
            )
            w = np.concatenate([epochs[s][2 * step + r][2] for s in range(2) for r in range(2)])
            np.testing.assert_array_equal(both[w > 0], np.arange(8 * step, min(8 * step + 8, 44)))


def test_row_groups_of_the_written_files_are_as_planned(tmp_path: Path) -> None:
    folder = write(tmp_path / "d", 44, row_group=8, files=2)
    groups = [pq.ParquetFile(p).metadata.num_row_groups for p in sorted(folder.iterdir())]
    assert groups == [3, 3]
    pipeline = fitpipe.adapt(folder, schema=SCHEMA, batch_size=4)
    dataset, steps = pipeline.source.shard(0, 2, 1)
    a, w = _rows(_epoch(dataset))
    assert steps == 11  # shard 0: groups 0, 2 of file 0 and 1 of file 1 (8 + 6 + 8 rows)
    np.testing.assert_array_equal(np.sort(a[w > 0]), [*range(8), *range(16, 22), *range(30, 38)])
