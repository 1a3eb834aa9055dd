"""Training on columnar sources against Keras on the same rows in NumPy, and Parquet output.

Each differential case trains a Keras model on NumPy arrays and a fitpipe twin on the same
rows read from Parquet files (several files, several row groups per file, a partial last
batch), an Arrow table, a ``pyarrow.dataset``, a ``RecordBatchReader``, a Polars DataFrame or
a DuckDB result, with ``shuffle=False``, and compares History, weights and ``evaluate``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import keras
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from differential import classification_data, dense_model, regression_data

import fitpipe
from fitpipe.errors import SchemaError
from fitpipe.testing.keras_diff import (
    assert_histories_close,
    assert_weights_close,
    make_twins,
    run_both,
)

N = 150
BATCH = 16  # 150 rows: 9 full batches and one of 6
FEATURES = ["f0", "f1", "f2"]
SCHEMA = fitpipe.Schema(FEATURES, "y", passthrough=["id"])
COMPILE = {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]}


def _table(x: np.ndarray, y: np.ndarray, **extra: Any) -> pa.Table:
    columns: dict[str, Any] = {"id": np.arange(len(x), dtype="int64")}
    columns.update({f"f{i}": x[:, i] for i in range(x.shape[1])})
    columns["y"] = y.reshape(len(y), -1)[:, 0]
    columns.update(extra)
    return pa.table(columns)


def _write(folder: Path, table: pa.Table, sizes=(70, 45, 35), row_group_size=20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        pq.write_table(
            table.slice(start, size), folder / f"part-{i}.parquet", row_group_size=row_group_size
        )
        start += size
    assert start == table.num_rows
    return folder


@pytest.fixture
def data(tmp_path: Path) -> tuple[np.ndarray, np.ndarray, pa.Table, Path]:
    x, y = regression_data(n=N, d=3)
    table = _table(x, y)
    return x, y, table, _write(tmp_path / "data", table)


SOURCES: dict[str, Callable[[pa.Table, Path], Any]] = {
    "directory": lambda t, d: d,
    "table": lambda t, d: t,
    "dataset": lambda t, d: pads.dataset(d),
    "polars": lambda t, d: pl.from_arrow(t),
    "duckdb-arrow": lambda t, d: duckdb.arrow(t),
    "duckdb-sql": lambda t, d: duckdb.sql("select * from t order by id"),
    "pandas": lambda t, d: t.to_pandas(),
}


def _sides(x, y, source: Callable[[], Any], schema=SCHEMA, **kwargs):
    def spec(side: str) -> dict[str, Any]:
        if side == "keras":
            return {"x": x, "y": y, **kwargs}
        return {"x": source(), "schema": schema, **kwargs}

    return spec


@pytest.mark.parametrize(
    ("name", "split", "evaluate"),
    [
        ("directory", None, True),
        ("directory", 0.2, True),
        ("table", 0.2, True),
        ("dataset", 0.3, False),
        ("polars", 0.2, False),
        ("duckdb-arrow", None, True),
        ("duckdb-sql", 0.2, False),
        ("pandas", 0.2, True),
    ],
)
def test_fit_and_evaluate_match_keras(data, name, split, evaluate):
    x, y, table, folder = data
    source = lambda: SOURCES[name](table, folder)  # noqa: E731
    extra = {"validation_split": split} if split else {}
    run_both(
        lambda: dense_model(d=3),
        COMPILE,
        _sides(x, y, source, batch_size=BATCH, epochs=2, **extra),
        eval_kwargs=_sides(x, y, source, batch_size=BATCH) if evaluate else None,
    )


@pytest.mark.parametrize("resident", [True, False], ids=["in-memory", "streamed"])
def test_wide_parquet_stacked_by_tensorflow_matches_keras(tmp_path, resident, monkeypatch):
    # From WIDE_COLUMNS feature columns on, rows are stacked by TensorFlow and held (or
    # streamed in blocks) from the stacked tensor itself: the same training as Keras' arrays.
    from fitpipe import limits
    from fitpipe.columnar.convert import WIDE_COLUMNS

    width = WIDE_COLUMNS + 6
    x, y = regression_data(n=N, d=width)
    folder = _write(tmp_path / "wide", _table(x, y), sizes=(N,), row_group_size=N)  # one block
    if not resident:
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    schema = fitpipe.Schema([f"f{i}" for i in range(width)], "y")
    run_both(
        lambda: dense_model(d=width),
        COMPILE,
        _sides(x, y, lambda: folder, schema, batch_size=BATCH, epochs=2, shuffle=False),
        eval_kwargs=_sides(x, y, lambda: folder, schema, batch_size=BATCH),
    )


def test_record_batch_reader_matches_keras_for_one_epoch(data):
    x, y, table, _ = data
    run_both(
        lambda: dense_model(d=3),
        COMPILE,
        _sides(x, y, lambda: table.to_reader(max_chunksize=23), batch_size=BATCH, epochs=1),
        eval_kwargs=_sides(x, y, lambda: table.to_reader(max_chunksize=11), batch_size=BATCH),
        # A stream has no length: like a Keras generator, History.params["steps"] is None.
        check_params=False,
    )


def test_hive_partitioned_dataset_matches_keras(tmp_path):
    x, y = regression_data(n=120, d=2, seed=3)
    k = np.repeat([1, 2, 3], 40)
    for key in (1, 2, 3):
        rows = k == key
        part = tmp_path / "hive" / f"k={key}"
        part.mkdir(parents=True)
        pq.write_table(
            pa.table({"f0": x[rows, 0], "f1": x[rows, 1], "y": y[rows, 0]}),
            part / "data.parquet",
            row_group_size=15,
        )
    x_np = np.concatenate([x, k[:, None].astype("float32")], axis=1)
    schema = fitpipe.Schema(["f0", "f1", "k"], "y")
    run_both(
        lambda: dense_model(d=3),
        COMPILE,
        _sides(
            x_np,
            y,
            lambda: pads.dataset(tmp_path / "hive", partitioning="hive"),
            schema=schema,
            batch_size=BATCH,
            epochs=2,
            validation_split=0.25,
        ),
    )


def test_filtered_dataset_matches_keras_on_the_same_rows(data):
    x, y, _, folder = data
    keep = x[:, 0] > 0
    run_both(
        lambda: dense_model(d=3),
        COMPILE,
        _sides(
            x[keep],
            y[keep],
            lambda: pads.dataset(folder).filter(pads.field("f0") > 0),
            batch_size=BATCH,
            epochs=2,
            validation_split=0.3,
        ),
    )


def test_sample_weight_column_matches_keras(tmp_path):
    x, y = regression_data(n=N, d=3, seed=1)
    w = np.linspace(0.2, 2.0, N).astype("float32")
    folder = _write(tmp_path / "w", _table(x, y, w=w))
    schema = fitpipe.Schema(FEATURES, "y", sample_weight="w")

    def spec(side: str) -> dict[str, Any]:
        if side == "keras":
            return {"x": x, "y": y, "sample_weight": w, "batch_size": BATCH, "epochs": 2}
        return {"x": folder, "schema": schema, "batch_size": BATCH, "epochs": 2}

    run_both(lambda: dense_model(d=3), COMPILE, spec)


def test_class_weight_matches_keras(tmp_path):
    x, labels = classification_data(n=N, d=3, classes=2, seed=2)
    folder = _write(tmp_path / "c", _table(x, labels.astype("int64")))
    schema = fitpipe.Schema(FEATURES, "y")
    weights = {0: 0.3, 1: 2.5}
    compile_kwargs = {
        "optimizer": "sgd",
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
    }

    def spec(side: str) -> dict[str, Any]:
        common = {"batch_size": BATCH, "epochs": 2, "class_weight": weights}
        if side == "keras":
            return {"x": x, "y": labels.astype("float32"), **common}
        return {"x": folder, "schema": schema, **common}

    run_both(lambda: dense_model(d=3, activation="sigmoid"), compile_kwargs, spec)


def test_dict_features_match_keras_two_input_model(data):
    x, y, _, folder = data

    def build() -> keras.Model:
        a = keras.Input((2,), name="pair")
        b = keras.Input((1,), name="single")
        h = keras.layers.Concatenate()([a, b])
        return keras.Model({"pair": a, "single": b}, keras.layers.Dense(1)(h))

    schema = fitpipe.Schema({"pair": ["f0", "f1"], "single": ["f2"]}, "y")
    x_dict = {"pair": x[:, :2], "single": x[:, 2:]}

    def spec(side: str) -> dict[str, Any]:
        if side == "keras":
            return {"x": x_dict, "y": y, "batch_size": BATCH, "epochs": 2}
        return {"x": folder, "schema": schema, "batch_size": BATCH, "epochs": 2}

    run_both(build, COMPILE, spec)


def test_predict_in_memory_matches_keras(data):
    x, _, table, folder = data
    ref, twin = make_twins(lambda: dense_model(d=3))
    expected = ref.predict(x, batch_size=BATCH, verbose=0)
    trainer = fitpipe.Trainer(twin)
    for source in (folder, table, table.to_reader(max_chunksize=9), pl.from_arrow(table)):
        got = trainer.predict(source, schema=SCHEMA, batch_size=BATCH, verbose=0)
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_shuffled_parquet_training_is_reproducible(data):
    _, _, _, folder = data
    results = []
    for _ in range(2):
        _, twin = make_twins(lambda: dense_model(d=3))
        trainer = fitpipe.Trainer(twin)
        trainer.compile("sgd", "mse")
        keras.utils.set_random_seed(11)
        history = trainer.fit(
            folder, schema=SCHEMA, batch_size=BATCH, epochs=2, shuffle=True, verbose=0
        )
        results.append((history, twin))
    (h1, m1), (h2, m2) = results
    assert h1.params["steps"] == math.ceil(N / BATCH)
    assert_histories_close(h1, h2, rtol=0, atol=0)
    assert_weights_close(m1, m2, rtol=0, atol=0)
    _, unshuffled = make_twins(lambda: dense_model(d=3))
    plain = fitpipe.Trainer(unshuffled)
    plain.compile("sgd", "mse")
    h3 = plain.fit(folder, schema=SCHEMA, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert h3.history["loss"] != h1.history["loss"]


# ------------------------------------------------------------------ predict(output=)


def _predict_sources() -> dict[str, Callable[[pa.Table, Path], Any]]:
    return {
        "directory": lambda t, d: d,
        "file-list": lambda t, d: sorted(d.glob("*.parquet")),
        "dataset": lambda t, d: pads.dataset(d),
        "table": lambda t, d: t,
        "reader": lambda t, d: t.to_reader(max_chunksize=13),
        "polars": lambda t, d: pl.from_arrow(t),
        "duckdb": lambda t, d: duckdb.sql("select * from t order by id"),
        "pandas": lambda t, d: t.to_pandas(),
    }


@pytest.mark.parametrize("name", list(_predict_sources()))
def test_predict_to_parquet_with_passthrough(data, tmp_path, name):
    x, _, table, folder = data
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(1, name="score")(inp))
    expected = model.predict(x, verbose=0)
    out = tmp_path / "out" / "predictions.parquet"
    out.parent.mkdir()
    source = _predict_sources()[name](table, folder)
    path = fitpipe.Trainer(model).predict(
        source, schema=SCHEMA, output=out, batch_size=BATCH, verbose=0
    )
    assert os.fspath(path) == os.fspath(out)
    written = pq.read_table(path)
    assert written.column_names == ["id", "score"]
    assert written.schema.field("id").type == pa.int64()
    np.testing.assert_array_equal(written["id"].to_numpy(), np.arange(N))
    np.testing.assert_allclose(written["score"].to_numpy(), expected[:, 0], rtol=1e-5, atol=1e-6)
    assert sorted(os.listdir(out.parent)) == ["predictions.parquet"]


def test_predict_to_parquet_without_passthrough(data, tmp_path):
    x, _, _, folder = data
    model = dense_model(d=3, units=4)
    out = tmp_path / "p.parquet"
    fitpipe.Trainer(model).predict(folder, schema=fitpipe.Schema(FEATURES), output=out, verbose=0)
    written = pq.read_table(out)
    assert written.num_columns == 1
    field = written.schema.field(0)
    assert pa.types.is_fixed_size_list(field.type)
    assert field.type.list_size == 4
    np.testing.assert_allclose(
        np.array(written.column(0).to_pylist()), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("structure", ["dict", "list"])
def test_predict_two_output_model_to_parquet(data, tmp_path, structure):
    x, _, _, folder = data
    inp = keras.Input((3,))
    score = keras.layers.Dense(1, name="score")(inp)
    vector = keras.layers.Dense(3, name="vector")(inp)
    outputs = {"score": score, "vector": vector} if structure == "dict" else [score, vector]
    model = keras.Model(inp, outputs)
    expected = model.predict(x, verbose=0)
    if structure == "list":
        expected = dict(zip(["score", "vector"], expected, strict=True))
    out = tmp_path / "two.parquet"
    path = fitpipe.Trainer(model).predict(folder, schema=SCHEMA, output=out, verbose=0)
    written = pq.read_table(path)
    assert written.column_names == ["id", "score", "vector"]
    assert pa.types.is_floating(written.schema.field("score").type)
    vector_type = written.schema.field("vector").type
    assert pa.types.is_fixed_size_list(vector_type) and vector_type.list_size == 3
    np.testing.assert_array_equal(written["id"].to_numpy(), np.arange(N))
    np.testing.assert_allclose(
        written["score"].to_numpy(), expected["score"][:, 0], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.array(written["vector"].to_pylist()), expected["vector"], rtol=1e-5, atol=1e-6
    )


def test_predict_to_parquet_with_hive_partition_passthrough(tmp_path):
    for key in (1, 2):
        part = tmp_path / "hive" / f"k={key}"
        part.mkdir(parents=True)
        pq.write_table(
            pa.table({"f0": np.full(10, key, "float32"), "f1": np.zeros(10, "float32")}),
            part / "data.parquet",
        )
    model = dense_model(d=2)
    out = tmp_path / "o.parquet"
    schema = fitpipe.Schema(["f0", "f1"], passthrough=["k"])
    fitpipe.Trainer(model).predict(tmp_path / "hive", schema=schema, output=out, verbose=0)
    written = pq.read_table(out)
    assert written["k"].to_pylist() == [1] * 10 + [2] * 10


class _FailOnThirdBatch(keras.layers.Layer):
    """Identity that raises when called for the third time (third predicted batch)."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, dtype="int32")

    def call(self, inputs):
        self.calls.assign_add(1)
        tf.debugging.assert_less(self.calls, 3, message="third batch")
        return inputs


def test_predict_to_parquet_is_atomic_when_the_model_fails(data, tmp_path):
    _, _, _, folder = data
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(1)(_FailOnThirdBatch()(inp)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "predictions.parquet"
    with pytest.raises(Exception, match="third batch"):
        # Row groups of 20 rows, batches of 16: the first row group (2 batches) is written
        # before the third batch fails.
        fitpipe.Trainer(model).predict(folder, schema=SCHEMA, output=out, batch_size=16, verbose=0)
    assert not out.exists()
    assert os.listdir(out_dir) == []


def test_predict_to_parquet_is_atomic_on_a_null_in_a_later_file(tmp_path):
    x, y = regression_data(n=N, d=3)
    f0 = x[:, 0].tolist()
    f0[120] = None  # in the last file
    table = _table(x, y).set_column(1, "f0", pa.array(f0, pa.float32()))
    folder = _write(tmp_path / "d", table)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "predictions.parquet"
    with pytest.raises(SchemaError) as info:
        fitpipe.Trainer(dense_model(d=3)).predict(folder, schema=SCHEMA, output=out, verbose=0)
    assert "'f0'" in str(info.value) and "row 120" in str(info.value)
    assert "part-2.parquet" in str(info.value)
    assert not out.exists()
    assert os.listdir(out_dir) == []


def test_predict_to_parquet_schema_error_writes_nothing(data, tmp_path):
    _, _, table, _ = data
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(SchemaError, match="'nope'"):
        fitpipe.Trainer(dense_model(d=3)).predict(
            table,
            schema=fitpipe.Schema(FEATURES, passthrough=["nope"]),
            output=out_dir / "o.parquet",
            verbose=0,
        )
    assert os.listdir(out_dir) == []


def test_predict_reader_missing_passthrough_is_a_schema_error(data, tmp_path):
    _, _, table, _ = data
    reader = table.drop_columns(["id"]).to_reader()
    with pytest.raises(SchemaError, match="'id'"):
        fitpipe.Trainer(dense_model(d=3)).predict(
            reader, schema=SCHEMA, output=tmp_path / "o.parquet", verbose=0
        )
