"""Folders written by real Spark (``tests/data/spark/``, made by ``make_spark_fixtures.py``).

What Spark writes besides the data (``_SUCCESS``, hidden ``.crc`` checksums, Hive partition
folders, ``country=__HIVE_DEFAULT_PARTITION__`` for nulls, an empty part file) and Spark's
types (INT64 and legacy INT96 timestamps, decimals, dates, arrays, maps) are read, trained on
and inspected here; no Spark or Java is needed. The expected values come from the formulas the
fixture script wrote the rows with, not from fitpipe.
"""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest_arrow import batches, linear_model

import fitpipe
from fitpipe import limits
from fitpipe.cli import main
from fitpipe.errors import SchemaError
from fitpipe.testing.keras_diff import run_both

SPARK = Path(__file__).resolve().parents[1] / "data" / "spark"
SALES, EVENTS, INT96 = SPARK / "sales", SPARK / "events", SPARK / "int96"
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _micros(moment: datetime.datetime) -> int:
    return (moment - EPOCH) // datetime.timedelta(microseconds=1)


@pytest.fixture(params=["in-memory", "streamed"])
def held(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both Parquet paths: small data read whole, and streamed by row group."""
    if request.param == "streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    return str(request.param)


def _rows(folder: Path, schema: fitpipe.Schema, batch_size: int = 8) -> list[np.ndarray]:
    pipeline = fitpipe.adapt(str(folder), schema=schema, batch_size=batch_size, shuffle=False)
    got = batches(pipeline)
    assert pipeline.num_batches == len(got)
    join = lambda *parts: np.concatenate(parts)  # noqa: E731
    return [tf.nest.map_structure(join, *[b[i] for b in got]) for i in range(len(got[0]))]


def test_spark_folders_hold_what_spark_writes() -> None:
    names = {p.name for p in SPARK.rglob("*")}
    assert {"_SUCCESS", "._SUCCESS.crc", "country=__HIVE_DEFAULT_PARTITION__"} <= names
    assert any(n.startswith(".part-") and n.endswith(".crc") for n in names)
    empty = [p for p in EVENTS.glob("part-*.snappy.parquet") if pq.read_metadata(p).num_rows == 0]
    assert len(empty) == 1 and pq.read_metadata(empty[0]).num_row_groups == 0
    for folder in (INT96, SALES / "country=DE"):  # legacy INT96: Spark's default
        assert "int96 field_id=-1 ts" in str(pq.ParquetFile(next(folder.glob("part-*"))).schema)


def test_every_row_of_a_partitioned_folder_once(held: str) -> None:
    schema = fitpipe.Schema(["x1", "x2"], "label", sample_weight="weight")
    x, y, w = _rows(SALES, schema)
    i = np.round(x[:, 0] * 4).astype(int)  # the fixture's row number: x1 = i / 4
    assert sorted(i) == list(range(40))
    np.testing.assert_array_equal(x[:, 1], i % 7 - 3.0)
    np.testing.assert_array_equal(y, i % 2)
    np.testing.assert_array_equal(w, 1.0 + i % 3)


def test_an_empty_part_file_is_skipped(held: str) -> None:
    x, y = _rows(EVENTS, fitpipe.Schema("x", "y"), batch_size=5)
    assert sorted(x) == list(range(24))
    np.testing.assert_array_equal(y, 2.0 * x + 1.0)


def test_int96_and_int64_timestamps_convert_to_the_same_microseconds(held: str) -> None:
    """Spark's INT64 timestamps (UTC) and legacy INT96 give int64 microseconds since 1970."""
    schema = fitpipe.Schema({"id": "id", "ts": "ts"}, "y")
    for folder in (EVENTS, INT96):
        x, _ = _rows(folder, schema)
        i = x["id"]
        want = [
            _micros(START + datetime.timedelta(minutes=int(k), microseconds=7 * int(k))) for k in i
        ]
        assert x["ts"].dtype == np.int64
        np.testing.assert_array_equal(x["ts"], want)
    sales, _ = _rows(SALES, fitpipe.Schema({"x1": "x1", "ts": "ts"}, "label"))  # Spark's default
    k = np.round(sales["x1"] * 4).astype(int)
    hours = [_micros(START + datetime.timedelta(hours=int(n), microseconds=int(n))) for n in k]
    np.testing.assert_array_equal(sales["ts"], hours)


def test_decimals_convert_to_float64_and_dates_to_days(held: str) -> None:
    schema = fitpipe.Schema({"x1": "x1", "amount": "amount", "day": "day"}, "label")
    x, _ = _rows(SALES, schema)
    i = np.round(x["x1"] * 4).astype(int)
    assert x["amount"].dtype == np.float64
    want = [float(decimal.Decimal(f"{n * 3}.{n % 100:02d}")) for n in i]
    np.testing.assert_array_equal(x["amount"], want)
    np.testing.assert_array_equal(x["day"], [(START.date() - EPOCH.date()).days + n for n in i])


def test_spark_arrays_are_ragged_features(held: str) -> None:
    pipeline = fitpipe.adapt(
        str(SALES), schema=fitpipe.Schema({"x1": "x1", "tags": "tags"}, "label"), shuffle=False
    )
    for x, _ in pipeline.dataset:
        for x1, tags in zip(x["x1"].numpy(), x["tags"].to_list(), strict=True):
            assert tags == list(range(round(x1 * 4) % 4))


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("attrs", "map<string, int32"),
        ("nested", r"list<element: list<element: int32>>"),
    ],
)
def test_types_fitpipe_cannot_train_on_name_column_and_type(column: str, kind: str) -> None:
    trainer = fitpipe.Trainer(linear_model(2))
    trainer.compile("sgd", "mse")
    with pytest.raises(
        SchemaError,
        match=rf"`fit` cannot convert column '{column}' of type "
        rf"{kind}.* in .*sales\. Columns used for training are .*Cast the column",
    ):
        trainer.fit(str(SALES), schema=fitpipe.Schema(["x1", column], "label"), verbose=0)


def test_a_null_partition_key_is_a_null_of_the_partition_column(tmp_path: Path) -> None:
    """``country=__HIVE_DEFAULT_PARTITION__/`` holds rows whose country is null."""
    filled = fitpipe.Schema({"x1": "x1", "c": "country"}, "label", fill={"country": "??"})
    x, _ = _rows(SALES, filled)
    i = np.round(x["x1"] * 4).astype(int)
    want = [b"??" if n % 10 == 9 else (b"DE" if n % 2 == 0 else b"FR") for n in i]
    assert list(x["c"]) == want
    pipeline = fitpipe.adapt(str(SALES), schema=fitpipe.Schema({"c": "country"}, "label"))
    with pytest.raises(
        (SchemaError, tf.errors.InvalidArgumentError),
        match=r"found a null in column 'country' at row \d+ of \S+__HIVE_DEFAULT_PARTITION__",
    ):
        batches(pipeline)
    trainer = fitpipe.Trainer(linear_model(1))
    trainer.compile("sgd", "mse")
    schema = fitpipe.Schema(["x1"], "label", passthrough=["country"])
    trainer.predict(str(SALES), schema=schema, output=str(tmp_path / "p.parquet"))
    written = pq.read_table(tmp_path / "p.parquet")
    assert written.num_rows == 40
    assert written.column("country").to_pylist().count(None) == 4
    assert sorted(set(written.column("country").to_pylist()) - {None}) == ["DE", "FR"]


def _arrays(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows in fitpipe's documented order (files by path), read by Arrow alone."""
    dataset = pads.dataset(str(folder), format="parquet", partitioning="hive")
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    table = pads.dataset(fragments and [f.path for f in fragments], format="parquet").to_table()
    x = np.stack([table["x1"].to_numpy(), table["x2"].to_numpy().astype(np.float64)], axis=-1)
    return x, table["label"].to_numpy(), table["weight"].to_numpy()


def test_training_on_a_spark_folder_matches_keras_on_its_rows(held: str) -> None:
    """validation_split takes the last rows in file order, as Keras takes the last rows."""
    x, y, w = _arrays(SALES)
    schema = fitpipe.Schema(["x1", "x2"], "label", sample_weight="weight")

    def fit_kwargs(side: str) -> dict[str, object]:
        data = (
            {"x": x, "y": y, "sample_weight": w}
            if side == "keras"
            else {"x": str(SALES), "schema": schema}
        )
        return {**data, "batch_size": 8, "epochs": 2, "validation_split": 0.25}

    result = run_both(lambda: linear_model(2), {"optimizer": "sgd", "loss": "mse"}, fit_kwargs)
    assert set(result.twin_history.history) == {"loss", "val_loss"}


def test_inspect_a_spark_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        'features = ["x1", "amount", "ts"]\ntargets = "label"\nsample_weight = "weight"\n'
        'passthrough = ["country"]\n'
    )
    assert main(["inspect", str(SALES), "--schema", str(tmp_path / "s.toml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "files:    6 (6 row groups)" in lines and "rows:     40" in lines
    assert "  country: string  (nulls: 4)" in lines  # the null partition's rows
    assert "  ts: timestamp[us]  (nulls: 0)" in lines  # INT96, read in microseconds
    assert "  x: float64 (None, 3)" in lines and lines[-1] == "problems: none"
    assert main(["inspect", str(EVENTS)]) == 0
    assert "files:    3 (2 row groups)" in capsys.readouterr().out.splitlines()
    (tmp_path / "m.toml").write_text('features = ["x1", "attrs"]\ntargets = "label"\n')
    assert main(["inspect", str(SALES), "--schema", str(tmp_path / "m.toml")]) == 1
    assert "column 'attrs' of type map<string, int32" in capsys.readouterr().out
