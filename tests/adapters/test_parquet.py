"""Parquet paths, directories, globs, lists and ``pyarrow.dataset`` sources."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest_arrow import (
    batch_sizes,
    batches,
    column_of,
    expected_sizes,
    linear_model,
    numbered_table,
    weights_equal,
    write_null_parts,
    write_parts,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters import parquet as parquet_module
from fitpipe.errors import SchemaError


@pytest.fixture(autouse=True)
def _streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the streaming reader: small data is not read into memory here
    (tests/adapters/test_parquet_in_memory.py covers that path)."""
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)


IDS = fitpipe.Schema("id")
SCHEMA = fitpipe.Schema(["a", "b"], "y", passthrough=["id"])


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    """130 rows in 3 files (50, 37, 43 rows), row groups of 16: ragged groups, partial batch."""
    folder = tmp_path / "data"
    write_parts(folder, numbered_table(130), [50, 37, 43], row_group_size=16)
    return folder


def _trainer(d: int = 2) -> tuple[keras.Model, fitpipe.Trainer]:
    model = linear_model(d)
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    return model, trainer


# ----------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    "make",
    [
        lambda d: d,
        lambda d: str(d),
        lambda d: str(d / "*.parquet"),
        lambda d: str(d / "**" / "*.parquet"),
        lambda d: sorted(d.glob("*.parquet")),
        lambda d: [str(p) for p in sorted(d.glob("*.parquet"), reverse=True)],
        lambda d: tuple(str(p) for p in sorted(d.glob("*.parquet"))),
        lambda d: pads.dataset(d),
        lambda d: pads.dataset(d, format="parquet"),
    ],
    ids=["path", "str", "glob", "recursive-glob", "list", "reversed-list", "tuple", "ds", "ds-fmt"],
)
def test_every_source_form_reads_all_rows_in_order(parts, make, request):
    pipeline = fitpipe.adapt(make(parts), schema=IDS, batch_size=16)
    assert pipeline.adapter == "parquet"
    assert pipeline.num_batches == math.ceil(130 / 16)
    files = [np.arange(0, 50), np.arange(50, 87), np.arange(87, 130)]
    if request.node.callspec.id == "reversed-list":  # a list's files in the list's order
        files.reverse()
    np.testing.assert_array_equal(column_of(pipeline), np.concatenate(files))


def test_single_file(parts):
    pipeline = fitpipe.adapt(parts / "part-001.parquet", schema=IDS, batch_size=10)
    assert pipeline.num_batches == 4
    np.testing.assert_array_equal(column_of(pipeline), np.arange(50, 87))


def test_files_read_in_sorted_path_order_not_creation_order(tmp_path):
    folder = tmp_path / "d"
    # Written first but sorted last, and the reverse.
    write_parts(folder, numbered_table(60), [20, 20, 20], 8, names=["c.parquet", "a.parquet", "b"])
    (folder / "b").rename(folder / "b.parquet")
    ids = column_of(fitpipe.adapt(folder, schema=IDS, batch_size=7))
    expected = np.concatenate([np.arange(20, 40), np.arange(40, 60), np.arange(0, 20)])
    np.testing.assert_array_equal(ids, expected)


def test_batches_are_full_but_the_last(parts):
    pipeline = fitpipe.adapt(parts, schema=SCHEMA, batch_size=16)
    assert batch_sizes(pipeline) == expected_sizes(130, 16)
    got = batches(pipeline)
    t = numbered_table(130)
    x = np.concatenate([b[0] for b in got])
    y = np.concatenate([b[1] for b in got])
    np.testing.assert_array_equal(x, np.stack([t["a"], t["b"]], axis=-1))
    np.testing.assert_array_equal(y, t["y"].to_numpy())


def test_default_batch_size_is_32(parts):
    pipeline = fitpipe.adapt(parts, schema=IDS)
    assert pipeline.num_batches == 5
    assert batch_sizes(pipeline) == expected_sizes(130, 32)


def test_each_epoch_reads_again(parts):
    pipeline = fitpipe.adapt(parts, schema=IDS, batch_size=32)
    for _ in range(3):
        np.testing.assert_array_equal(column_of(pipeline), np.arange(130))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    row_group=st.integers(1, 17),
    batch_size=st.integers(1, 50),
)
def test_order_and_batch_count_from_metadata(tmp_path_factory, sizes, row_group, batch_size):
    folder = tmp_path_factory.mktemp("prop")
    rows = sum(sizes)
    write_parts(folder, numbered_table(rows), sizes, row_group_size=row_group)
    pipeline = fitpipe.adapt(folder, schema=IDS, batch_size=batch_size)
    assert pipeline.num_batches == math.ceil(rows / batch_size)
    got = batches(pipeline)
    assert [len(b[0]) for b in got] == expected_sizes(rows, batch_size)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), np.arange(rows))


def test_missing_path_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.parquet"):
        fitpipe.adapt(tmp_path / "nope.parquet", schema=IDS)
    with pytest.raises(ValueError):
        fitpipe.adapt(str(tmp_path / "*.parquet"), schema=IDS)


def test_parquet_needs_a_schema(parts):
    with pytest.raises(TypeError, match="schema"):
        fitpipe.adapt(parts)


def test_zero_rows_is_an_error(parts):
    dataset = pads.dataset(parts).filter(pads.field("id") < 0)
    with pytest.raises(ValueError, match="0 rows"):
        fitpipe.adapt(dataset, schema=IDS)


# -------------------------------------------------------------------- shuffling


def _epochs(source, seed: int, epochs: int = 2, batch_size: int = 16) -> list[np.ndarray]:
    keras.utils.set_random_seed(seed)
    pipeline = fitpipe.adapt(source, schema=IDS, batch_size=batch_size, shuffle=True)
    assert pipeline.num_batches == math.ceil(130 / batch_size)
    return [column_of(pipeline) for _ in range(epochs)]


def test_shuffle_every_row_once_per_epoch_and_epochs_differ(parts):
    first, second = _epochs(parts, seed=1)
    for epoch in (first, second):
        assert sorted(epoch.tolist()) == list(range(130))
    assert not np.array_equal(first, np.arange(130))
    assert not np.array_equal(first, second)


def test_shuffle_reproducible_under_set_random_seed(parts):
    one = _epochs(parts, seed=5)
    two = _epochs(parts, seed=5)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _epochs(parts, seed=6)
    assert not np.array_equal(one[0], other[0])


def _row_group_of(ids: np.ndarray) -> np.ndarray:
    """Row group index of each id in the ``parts`` fixture (files of 50, 37, 43; groups of 16)."""
    starts = [0, 16, 32, 48, 50, 66, 82, 87, 103, 119]
    return np.searchsorted(starts, ids, side="right") - 1


def test_shuffle_with_a_small_buffer(parts, monkeypatch):
    monkeypatch.setattr(parquet_module, "SHUFFLE_BUFFER_ROWS", 20)
    first, second = _epochs(parts, seed=2)
    for epoch in (first, second):
        assert sorted(epoch.tolist()) == list(range(130))
    assert not np.array_equal(first, second)
    # The buffer holds about 20 rows: the first rows out come from the first few row groups
    # read, not from all 10.
    for epoch in (first, second):
        assert len(set(_row_group_of(epoch[:16]).tolist())) <= 3


def test_shuffle_mixes_rows_across_row_groups(parts):
    (ids,) = _epochs(parts, seed=0, epochs=1)
    assert len(set(_row_group_of(ids[:16]).tolist())) > 3


# ----------------------------------------------------------------- hive partitions


@pytest.fixture
def hive(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """k=1 and k=2 partitions, 60 rows each with positive and negative x, 2 row groups."""
    folder = tmp_path / "hive"
    rng = np.random.default_rng(7)
    xs, ks = [], []
    for k in (1, 2):
        x = rng.normal(size=60)
        (folder / f"k={k}").mkdir(parents=True)
        table = pa.table({"x": x, "y": 3 * x + k, "n": np.arange(60) + 100 * k})
        pq.write_table(table, folder / f"k={k}" / "part-0.parquet", row_group_size=32)
        xs.append(x)
        ks.append(np.full(60, k))
    return folder, np.concatenate(xs), np.concatenate(ks)


@pytest.mark.parametrize(
    "make",
    [lambda d: d, lambda d: pads.dataset(d, partitioning="hive")],
    ids=["directory", "dataset"],
)
def test_partition_key_as_a_feature(hive, make):
    folder, xs, ks = hive
    pipeline = fitpipe.adapt(make(folder), schema=fitpipe.Schema("k", "y"), batch_size=16)
    got = batches(pipeline)
    k = np.concatenate([b[0] for b in got])
    assert np.issubdtype(k.dtype, np.integer)
    np.testing.assert_array_equal(k, ks)
    np.testing.assert_allclose(np.concatenate([b[1] for b in got]), 3 * xs + ks)


def test_partition_key_stacked_with_a_column(hive):
    folder, xs, ks = hive
    schema = fitpipe.Schema(["x", "k"], "y")
    x = column_of(fitpipe.adapt(folder, schema=schema, batch_size=50))
    np.testing.assert_allclose(x, np.stack([xs, ks], axis=-1))


def test_fit_on_partition_key(hive):
    folder, _, _ = hive
    _, trainer = _trainer(2)
    history = trainer.fit(
        folder, schema=fitpipe.Schema(["x", "k"], "y"), batch_size=16, epochs=1, verbose=0
    )
    assert history.params["steps"] == math.ceil(120 / 16)


def test_filtered_dataset_counts_and_order(hive):
    folder, xs, _ = hive
    dataset = pads.dataset(folder, partitioning="hive").filter(pads.field("x") > 0)
    keep = xs > 0
    pipeline = fitpipe.adapt(dataset, schema=fitpipe.Schema(["x", "k"], "n"), batch_size=16)
    assert pipeline.num_batches == math.ceil(keep.sum() / 16)
    got = batches(pipeline)
    assert [len(b[0]) for b in got] == expected_sizes(int(keep.sum()), 16)
    n = np.concatenate([b[1] for b in got])
    all_n = np.concatenate([np.arange(60) + 100, np.arange(60) + 200])
    np.testing.assert_array_equal(n, all_n[keep])
    x = np.concatenate([b[0] for b in got])
    np.testing.assert_array_equal(x[:, 0], xs[keep])


def test_filtered_on_partition_key(hive):
    folder, _, _ = hive
    dataset = pads.dataset(folder, partitioning="hive").filter(pads.field("k") == 2)
    pipeline = fitpipe.adapt(dataset, schema=fitpipe.Schema("k", "n"), batch_size=16)
    assert pipeline.num_batches == math.ceil(60 / 16)
    np.testing.assert_array_equal(column_of(pipeline, 1), np.arange(60) + 200)


def test_filtered_dataset_with_validation_split(hive):
    folder, xs, _ = hive
    dataset = pads.dataset(folder, partitioning="hive").filter(pads.field("x") > 0)
    rows = int((xs > 0).sum())
    _, trainer = _trainer(2)
    history = trainer.fit(
        dataset,
        schema=fitpipe.Schema(["x", "k"], "y"),
        batch_size=8,
        validation_split=0.25,
        epochs=1,
        verbose=0,
    )
    train_rows = int(rows * (1 - 0.25))
    assert history.params["steps"] == math.ceil(train_rows / 8)
    assert set(history.history) == {"loss", "val_loss"}


# -------------------------------------------------------------- validation_split


@pytest.mark.parametrize("split", [0.1, 0.25, 0.5])
def test_validation_split_batches_known_up_front(parts, split):
    _, trainer = _trainer(2)
    seen: list[int] = []

    class Count(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append(batch)

    history = trainer.fit(
        parts,
        schema=SCHEMA,
        batch_size=16,
        validation_split=split,
        epochs=1,
        verbose=0,
        callbacks=[Count()],
    )
    train_rows = int(130 * (1 - split))
    assert history.params["steps"] == math.ceil(train_rows / 16)
    assert len(seen) == math.ceil((130 - train_rows) / 16)


# ---------------------------------------------------------------- class weights


def test_class_weight_applies_to_the_target_column(parts):
    schema = fitpipe.Schema(["a", "b"], "label")
    pipeline = fitpipe.adapt(parts, schema=schema, batch_size=16, class_weight={0: 2.0, 1: 0.25})
    got = batches(pipeline)
    y = np.concatenate([b[1] for b in got])
    w = np.concatenate([b[2] for b in got])
    np.testing.assert_array_equal(y, numbered_table(130)["label"].to_numpy())
    np.testing.assert_allclose(w, np.where(y == 1, 0.25, 2.0))


def test_sample_weight_column(parts):
    schema = fitpipe.Schema(["a", "b"], "y", sample_weight="w")
    w = column_of(fitpipe.adapt(parts, schema=schema, batch_size=16), 2)
    np.testing.assert_array_equal(w, numbered_table(130)["w"].to_numpy())


# ---------------------------------------------------------------- nulls and fill


@pytest.fixture
def null_parts(tmp_path: Path) -> Path:
    """Two files; a null in column ``a`` at global row 77 (row 17 of the second file)."""
    return write_null_parts(tmp_path / "nulls")


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_null_names_column_file_and_row_of_the_file(null_parts, method):
    model, trainer = _trainer(2)
    before = model.get_weights()
    with pytest.raises(SchemaError) as info:
        getattr(trainer, method)(null_parts, schema=SCHEMA, batch_size=8, verbose=0)
    text = str(info.value)
    assert "'a'" in text
    assert "at row 17 of" in text  # the row of part-001.parquet (row 77 of the folder)
    assert "part-001.parquet" in text
    if method == "evaluate":
        assert weights_equal(before, model)


def test_null_fill_across_files(null_parts):
    schema = fitpipe.Schema(["a", "b"], "y", fill={"a": -9.0})
    x = column_of(fitpipe.adapt(null_parts, schema=schema, batch_size=8))
    assert x.shape == (100, 2)
    assert x[77, 0] == -9.0
    assert np.count_nonzero(x[:, 0] == -9.0) == 1


def test_null_only_in_unused_column_is_fine(null_parts):
    schema = fitpipe.Schema("b", "y")
    assert len(column_of(fitpipe.adapt(null_parts, schema=schema, batch_size=8))) == 100


# ----------------------------------------------------------------- schema checks


@pytest.mark.parametrize("form", ["dir", "dataset", "list"])
def test_missing_column_names_the_column_and_source(parts, form):
    source = {
        "dir": str(parts),
        "dataset": pads.dataset(parts),
        "list": sorted(str(p) for p in parts.glob("*.parquet")),
    }[form]
    model, trainer = _trainer(2)
    before = model.get_weights()
    with pytest.raises(ValueError) as info:
        trainer.fit(source, schema=fitpipe.Schema(["a", "zz"], "y"), verbose=0)
    assert isinstance(info.value, SchemaError)
    assert "'zz'" in str(info.value)
    if form == "dir":
        assert str(parts) in str(info.value)
    assert weights_equal(before, model)


@pytest.mark.parametrize(
    ("column", "found"),
    [
        (pa.array([{"q": 1}] * 20), "struct<q: int64>"),
        (pa.array([[("k", 1)]] * 20, pa.map_(pa.string(), pa.int64())), "map<string, int64"),
        (pa.array([["s"]] * 20), "list<element: string>"),
    ],
    ids=["struct", "map", "list-of-string"],
)
def test_unconvertible_parquet_column(tmp_path, column, found):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": np.ones(20, "float32"), "bad": column}), path)
    model, trainer = _trainer(1)
    before = model.get_weights()
    with pytest.raises(SchemaError) as info:
        trainer.fit(str(path), schema=fitpipe.Schema("a", "bad"), verbose=0)
    text = str(info.value)
    assert "'bad'" in text and found in text and "bad.parquet" in text
    assert weights_equal(before, model)


def test_string_stacked_with_number_in_parquet(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"a": np.ones(8), "s": ["x"] * 8, "y": np.ones(8)}), path)
    with pytest.raises(SchemaError, match=r"'s' of type string"):
        fitpipe.adapt(str(path), schema=fitpipe.Schema(["a", "s"], "y"))


@pytest.mark.parametrize("fill", [None, {"b": 0.0}], ids=["no-fill", "fill"])
def test_column_missing_from_a_later_file_is_caught_before_training(tmp_path, fill):
    folder = tmp_path / "d"
    table = numbered_table(60)
    write_parts(folder, table.slice(0, 30), [30], 8, names=["part-0.parquet"])
    write_parts(folder, table.slice(30).drop_columns(["b"]), [30], 8, names=["part-1.parquet"])
    with pytest.raises(SchemaError) as info:
        fitpipe.adapt(folder, schema=fitpipe.Schema(["a", "b"], "y", fill=fill))
    assert "'b'" in str(info.value) and "part-1.parquet" in str(info.value)


def test_unconvertible_type_in_a_later_file_is_caught_before_training(tmp_path):
    folder = tmp_path / "d"
    table = numbered_table(60)
    write_parts(folder, table.slice(0, 30), [30], 8, names=["part-0.parquet"])
    later = table.slice(30)
    later = later.set_column(
        later.schema.get_field_index("b"), "b", pa.array([{"q": v} for v in later["b"].to_pylist()])
    )
    pq.write_table(later, folder / "part-1.parquet", row_group_size=8)
    model, trainer = _trainer(2)
    before = model.get_weights()
    with pytest.raises(SchemaError) as info:
        trainer.fit(folder, schema=fitpipe.Schema(["a", "b"], "y"), batch_size=8, verbose=0)
    assert "'b'" in str(info.value) and "part-1.parquet" in str(info.value)
    assert weights_equal(before, model)


# ------------------------------------------------------------- corrupt files


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("form", ["dir", "list", "glob", "file"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_truncated_or_garbage_file_is_named(parts, form, damage):
    bad = parts / "part-001.parquet"
    if damage == "truncated":
        _truncate(bad)
    elif damage == "garbage":
        bad.write_bytes(b"definitely not parquet" * 20)
    else:
        bad.write_bytes(b"")
    source = {
        "dir": parts,
        "list": sorted(parts.glob("*.parquet")),
        "glob": str(parts / "*.parquet"),
        "file": bad,
    }[form]
    model, trainer = _trainer(2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"part-001\.parquet"):
        trainer.fit(source, schema=SCHEMA, batch_size=16, verbose=0)
    assert weights_equal(before, model)


def test_corrupt_data_pages_name_the_file(tmp_path):
    folder = tmp_path / "d"
    write_parts(folder, numbered_table(100), [50, 50], 16)
    bad = folder / "part-001.parquet"
    data = bytearray(bad.read_bytes())
    for i in range(8, 300):
        data[i] ^= 0x5A
    bad.write_bytes(bytes(data))
    _, trainer = _trainer(2)
    with pytest.raises(ValueError, match=r"part-001\.parquet"):
        trainer.evaluate(folder, schema=SCHEMA, verbose=0)
