"""Grouped validation splits (``split_by``): the key hash, one side per key, every form alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe import limits
from fitpipe.adapters import AdaptRequest, ArraySource
from fitpipe.columnar import key_array, key_hashes, validation_mask
from fitpipe.errors import DataMismatchError, UnsupportedArgumentError
from fitpipe.pipeline import PipelineOptions, adapt_source, pipeline_from_source, split_validation
from fitpipe.testing import epoch_batches
from fitpipe.testing.strategies import split_keys

_M = 2**64


def reference_hash(data: bytes) -> int:
    """FNV-1a 64 of the bytes, then SplitMix64's finalizer, in plain Python."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % _M
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) % _M
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) % _M
    return h ^ (h >> 31)


def key_bytes(key: Any) -> bytes:
    if isinstance(key, str):
        return key.encode()
    return (int(key) % _M).to_bytes(8, "little")


@given(st.lists(st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1)), min_size=1))
def test_key_hash_is_fnv1a_then_splitmix_of_the_keys_bytes(keys: list[Any]) -> None:
    strings = [k for k in keys if isinstance(k, str)]
    ints = [k for k in keys if isinstance(k, int)]
    for part in (strings, ints):
        if part:
            got = key_hashes(key_array(part, "keys"))
            assert [int(h) for h in got] == [reference_hash(key_bytes(k)) for k in part]


def test_key_hash_is_pinned() -> None:
    """The hash is part of the contract: a change moves every user's split."""
    assert [hex(int(h)) for h in key_hashes(key_array(["", "user_1", "héllo"], "k"))] == [
        "0xf52a15e9a9b5e89b",
        "0xe49e1dd6e92e836f",
        "0x18e366c2ac71cbbe",
    ]
    assert [hex(int(h)) for h in key_hashes(key_array(np.array([0, 1, -1]), "k"))] == [
        "0x813f0174a2367c13",
        "0x5ca6bbcbb1e85355",
        "0x9795737c4a2dacd5",
    ]


def test_same_key_same_hash_whatever_its_type() -> None:
    ints = [0, 7, 100, 2**31 - 1]
    want = key_hashes(key_array(np.array(ints, dtype=np.int64), "k"))
    for values in (
        np.array(ints, dtype=np.int32),
        np.array(ints, dtype=np.uint64),
        pd.Series(ints, dtype="Int64"),
        pa.chunked_array([pa.array(ints[:2], pa.int32()), pa.array(ints[2:], pa.int32())]),
        pa.array(ints).dictionary_encode(),
    ):
        np.testing.assert_array_equal(key_hashes(key_array(values, "k")), want)
    text = ["a", "bé", "a", ""]
    want = key_hashes(key_array(text, "k"))
    for values in (
        np.array(text),
        pd.Series(text, dtype="category"),
        pa.array(text, pa.large_string()),
        pa.array(["x", *text]).slice(1),
        [t.encode() for t in text],
    ):
        np.testing.assert_array_equal(key_hashes(key_array(values, "k")), want)


def source_of(x: Any, y: Any = None, split_by: Any = None, schema: Any = None) -> Any:
    request = AdaptRequest(x=x, y=y, split_by=split_by, schema=schema, caller="fit")
    return adapt_source(request, PipelineOptions(validation_split=0.5, caller="fit"))


def split(x: Any, fraction: float, split_by: Any, y: Any = None, schema: Any = None) -> Any:
    adapter, source = source_of(x, y, split_by, schema)
    request = AdaptRequest(x=x, y=y, split_by=split_by, schema=schema, caller="fit")
    options = PipelineOptions(validation_split=fraction, caller="fit")
    return (adapter, *split_validation(source, request, options, None))


@settings(deadline=None)
@given(st.integers(2, 60).flatmap(lambda rows: st.tuples(split_keys(rows), st.floats(0.05, 0.95))))
def test_no_key_on_both_sides(drawn: tuple[np.ndarray, float]) -> None:
    keys, fraction = drawn
    rows = len(keys)
    ids = np.arange(rows, dtype="float32")[:, None]
    hashes = key_hashes(key_array(keys, "k"))
    side = validation_mask(hashes, fraction)
    if side.all() or not side.any():
        with pytest.raises(DataMismatchError, match=r"^`fit` cannot split .* every key fell"):
            split(ids, fraction, keys, np.zeros(rows))
        return
    _, train, val, how = split(ids, fraction, keys, np.zeros(rows))
    train_ids = train.x[:, 0].astype(int)
    val_ids = val.x[:, 0].astype(int)
    assert not set(keys[train_ids]) & set(keys[val_ids])
    np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, val_ids])), np.arange(rows))
    np.testing.assert_array_equal(val_ids, np.flatnonzero(side))  # row order kept
    np.testing.assert_array_equal(train.y, np.zeros(len(train_ids)))
    counts = how.counts
    assert (counts.train_rows, counts.validation_rows) == (len(train_ids), len(val_ids))
    assert counts.train_keys == len(set(keys[train_ids]))
    assert counts.validation_keys == len(set(keys[val_ids]))


def test_split_of_many_keys_is_near_the_fraction() -> None:
    keys = np.array([f"user-{i}" for i in range(20_000)])
    _, _, val, how = split(np.zeros((20_000, 1), "float32"), 0.2, keys)
    assert how.counts.validation_keys == val.num_samples
    assert abs(val.num_samples / 20_000 - 0.2) < 0.01


_CHILD = """
import json, sys
import numpy as np
from fitpipe.columnar import key_array, key_hashes, validation_mask
keys = [f"user-{i}" for i in range(500)] + list(range(500))
parts = (keys[:500], keys[500:])
masks = [validation_mask(key_hashes(key_array(part, "k")), 0.3) for part in parts]
print(json.dumps([np.flatnonzero(m).tolist() for m in masks]))
"""


@pytest.mark.subprocess
def test_same_split_on_every_run() -> None:
    """Another process with another string-hash salt puts every key on the same side."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    keys = [f"user-{i}" for i in range(500)]
    here = [
        np.flatnonzero(validation_mask(key_hashes(key_array(part, "k")), 0.3)).tolist()
        for part in (keys, list(range(500)))
    ]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    users = rng.choice([f"u{i:02d}" for i in range(25)], rows)
    return pd.DataFrame(
        {
            "rid": np.arange(rows, dtype="float32"),
            "label": rng.integers(0, 2, rows),
            "user_id": users,
            "seen": pd.date_range("2026-01-01", periods=rows, freq="min"),
        }
    )


def _row_ids(adapter: Any, source: Any) -> list[int]:
    if isinstance(source, ArraySource):
        x = source.x["rid"] if isinstance(source.x, dict) else source.x
        return np.asarray(x).reshape(-1).astype(int).tolist()
    options = PipelineOptions(batch_size=7)
    batches = epoch_batches(pipeline_from_source(adapter.name, source, options))
    return np.concatenate([np.asarray(b[0]).reshape(-1) for b in batches]).astype(int).tolist()


SCHEMA = {"features": "rid", "targets": "label"}


@pytest.mark.parametrize("form", ["pandas", "arrow", "parquet", "parquet-streamed", "dict"])
def test_same_split_for_the_same_rows_in_every_form(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame()
    side = validation_mask(key_hashes(key_array(frame["user_id"], "k")), 0.25)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema: Any = SCHEMA
    y = None
    if form == "pandas":
        x: Any = frame
    elif form == "arrow":
        x = table
    elif form == "dict":
        x = {"rid": frame["rid"].to_numpy(), "user_id": frame["user_id"].to_numpy()}
        schema, y = None, frame["label"].to_numpy()
    else:
        pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=16)
        x = str(tmp_path)
        if form == "parquet-streamed":
            monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    adapter, train, val, how = split(x, 0.25, "user_id", y, schema)
    assert isinstance(train, ArraySource) == (form != "parquet-streamed")
    assert _row_ids(adapter, val) == np.flatnonzero(side).tolist()
    assert _row_ids(adapter, train) == np.flatnonzero(~side).tolist()
    assert how.counts.validation_rows == int(side.sum())
    assert how.counts.validation_keys == frame["user_id"][side].nunique()
    assert how.counts.train_keys == frame["user_id"][~side].nunique()


def _streamed_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """200 rows written as Parquet row groups of 30, streamed (none held in memory)."""
    frame = _frame(200)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "a.parquet", row_group_size=30)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    return frame


def test_streamed_sides_shuffle_and_count_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _streamed_frame(tmp_path, monkeypatch)
    request = AdaptRequest(
        x=str(tmp_path),
        schema=SCHEMA,
        batch_size=8,
        shuffle=True,
        split_by="user_id",
        caller="fit",
    )
    options = PipelineOptions.of(request, validation_split=0.3)
    adapter, source = adapt_source(request, options)
    train, _, how = split_validation(source, request, options, 5)
    pipeline = pipeline_from_source(adapter.name, train, options)
    epochs = [epoch_batches(pipeline) for _ in range(2)]
    side = validation_mask(key_hashes(key_array(frame["user_id"], "k")), 0.3)
    for batches in epochs:
        assert len(batches) == pipeline.num_batches == -(-int((~side).sum()) // 8)
        ids = np.concatenate([np.asarray(b[0]).reshape(-1) for b in batches]).astype(int)
        np.testing.assert_array_equal(np.sort(ids), np.flatnonzero(~side))
    assert how.counts.train_rows == int((~side).sum())


def test_streamed_balanced_class_weight_counts_the_training_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _streamed_frame(tmp_path, monkeypatch)
    request = AdaptRequest(
        x=str(tmp_path),
        schema=SCHEMA,
        split_by="user_id",
        caller="fit",
    )
    options = PipelineOptions.of(request, validation_split=0.3, class_weight="balanced")
    _, source = adapt_source(request, options)
    train, _, _ = split_validation(source, request, options)
    side = validation_mask(key_hashes(key_array(frame["user_id"], "k")), 0.3)
    labels = frame["label"].to_numpy()[~side]
    assert train.count_classes() == {None: {0: int((labels == 0).sum()), 1: int(labels.sum())}}


def test_split_keys_of_tensors_and_sparse_rows() -> None:
    keys = np.array([5, 5, 9, 9, 9, 2, 2, 7])
    dense = np.eye(8, 3, dtype="float32")
    x = {"d": tf.constant(dense), "s": tf.sparse.from_dense(dense)}
    _, train, val, _ = split(x, 0.5, keys, np.arange(8))
    side = validation_mask(key_hashes(key_array(keys, "k")), 0.5)
    np.testing.assert_array_equal(train.x["d"].numpy(), dense[~side])
    np.testing.assert_array_equal(tf.sparse.to_dense(val.x["s"]).numpy(), dense[side])
    np.testing.assert_array_equal(val.y, np.flatnonzero(side))


# ------------------------------------------------------------------------------- errors
def test_missing_key_column_names_the_closest() -> None:
    with pytest.raises(
        DataMismatchError,
        match=r"^`fit` cannot find the `split_by` column 'user' in the pandas\.DataFrame "
        r"\(did you mean 'user_id'\?\)\. .* Received: split_by='user'",
    ):
        split(_frame(), 0.2, "user", schema=SCHEMA)


@pytest.mark.parametrize(
    ("keys", "what"),
    [
        (np.linspace(0, 1, 10), "its keys are of type double"),
        (pd.Series([1, None] * 5, dtype="Int64"), r"it holds 5 null key\(s\)"),
        (pd.date_range("2026", periods=10), r"its keys are of type timestamp\[us\]"),
    ],
)
def test_keys_that_are_not_ids_are_an_error(keys: Any, what: str) -> None:
    with pytest.raises(TypeError, match=rf"^`fit` cannot split by the `split_by` keys: {what}\."):
        split(np.zeros((10, 1)), 0.2, keys)


def test_keys_of_another_length_are_an_error() -> None:
    with pytest.raises(DataMismatchError, match=r"^`fit` got 3 `split_by` keys for 10 rows\."):
        split(np.zeros((10, 1)), 0.2, [1, 2, 3])


def test_a_column_name_for_unnamed_arrays_is_an_error() -> None:
    with pytest.raises(TypeError, match=r"^`fit` cannot find a column 'user_id' in `x`"):
        split(np.zeros((10, 1)), 0.2, "user_id")


def test_parquet_needs_a_column_name(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(_frame()), tmp_path / "a.parquet")
    with pytest.raises(TypeError, match=r"^`fit` needs `split_by` to name a column for Parquet"):
        split(str(tmp_path), 0.2, np.arange(120), schema=SCHEMA)


def test_inputs_read_in_batches_refuse_split_by() -> None:
    data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 1)), np.zeros(4))).batch(2)
    with pytest.raises(
        UnsupportedArgumentError,
        match=r"^`fit` does not support `split_by` when `x` is .* rows are set apart by key "
        r"only from rows in memory",
    ):
        adapt_source(AdaptRequest(x=data, split_by=np.arange(4), caller="fit"))


def test_streamed_split_with_one_key_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame().assign(user_id="solo")
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "a.parquet", row_group_size=16)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    with pytest.raises(
        DataMismatchError,
        match=r"^`fit` cannot split 120 rows of 1 key\(s\) by split_by='user_id' with "
        r"`validation_split=0\.5`: every key fell on the (training|validation) side\.",
    ):
        split(str(tmp_path), 0.5, "user_id", schema=SCHEMA)


@settings(deadline=None, max_examples=10)
@given(st.integers(2, 80).flatmap(lambda rows: st.tuples(split_keys(rows), st.floats(0.1, 0.9))))
def test_every_form_splits_random_keys_alike(drawn: tuple[np.ndarray, float]) -> None:
    keys, fraction = drawn
    rows = len(keys)
    side = validation_mask(key_hashes(key_array(keys, "k")), fraction)
    if side.all() or not side.any():
        return
    frame = pd.DataFrame({"rid": np.arange(rows, dtype="float32"), "label": 0, "user_id": keys})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    old = limits.RESIDENT_BYTES_LIMIT
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(table, Path(folder) / "a.parquet", row_group_size=7)
        forms: list[tuple[Any, Any, Any, int]] = [
            (frame, None, SCHEMA, old),
            (table, None, SCHEMA, old),
            (folder, None, SCHEMA, old),
            (folder, None, SCHEMA, 0),  # streamed
            ({"rid": frame["rid"].to_numpy(), "user_id": keys}, np.zeros(rows), None, old),
        ]
        try:
            for x, y, schema, limit in forms:
                limits.RESIDENT_BYTES_LIMIT = limit
                adapter, train, val, _ = split(x, fraction, "user_id", y, schema)
                assert _row_ids(adapter, val) == np.flatnonzero(side).tolist()
                assert sorted(_row_ids(adapter, train)) == np.flatnonzero(~side).tolist()
        finally:
            limits.RESIDENT_BYTES_LIMIT = old
