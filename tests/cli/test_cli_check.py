"""``fitpipe check``: the table, JSON, statistics only, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fitpipe.cli import main


def _files(tmp_path: Path, bad: bool) -> tuple[str, str, str]:
    x = np.random.default_rng(0).normal(size=(40, 2)).astype("float32")
    labels = np.arange(40) % 3
    if bad:
        x[7, 1] = np.nan
        labels[3] = 5
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"f0": x[:, 0], "f1": x[:, 1], "label": labels}), data)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"features": ["f0", "f1"], "targets": "label"}))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "model.keras")
    return str(data), str(schema), str(tmp_path / "model.keras")


def test_check_prints_a_table_and_exits_1_on_an_error(tmp_path: Path, capsys) -> None:
    data, schema, model = _files(tmp_path, bad=True)
    assert main(["check", data, "--schema", schema, "--model", model]) == 1
    out = capsys.readouterr().out
    assert "f1      feature       0      1      0      0" in out
    assert "ERROR   non-finite [1]: feature column 'f1' holds 1 NaN (first in row 7)" in out
    assert "ERROR   label-range [1]: 1 labels of 'label' lie outside the model's 3 classes" in out
    assert "         5          1    2.5%  <- outside [0, 3)" in out


def test_check_json_and_statistics_only(tmp_path: Path, capsys) -> None:
    data, schema, model = _files(tmp_path, bad=True)
    assert main(["check", data, "--schema", schema, "--model", model, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == {"error": 2, "warning": 0, "note": 0}
    assert report["scanned"] == "full" and report["targets"][0]["class_counts"]["5"] == 1
    argv = ["check", data, "--schema", schema, "--model", model, "--json", "--stats-only"]
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["scanned"] == "statistics"
    assert [f["check"] for f in report["findings"]] == ["label-range"]  # NaN: not in stats


def test_clean_data_exits_0_and_a_missing_schema_is_an_error(tmp_path: Path, capsys) -> None:
    data, schema, _ = _files(tmp_path, bad=False)
    assert main(["check", data, "--schema", schema]) == 0
    assert "findings: 0 errors, 0 warnings, 0 notes" in capsys.readouterr().out
    assert main(["check", data]) == 1
    assert "fitpipe check: error: `fitpipe check` needs a schema" in capsys.readouterr().err


def test_part_files_of_no_rows_leave_the_statistics_whole(tmp_path: Path, capsys) -> None:
    """An empty part file (pyarrow: one row group without statistics) made every column's
    statistics unknown: ``--stats-only`` found no error, ``inspect`` said ``nulls: unknown``."""
    folder = tmp_path / "data"
    folder.mkdir()
    table = pa.table(
        {"f0": [1.0, None, 3.0, None], "f1": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 2, 1]}
    )
    for i, part in enumerate((table.slice(0, 0), table, table.slice(0, 0))):
        pq.write_table(part, folder / f"part-{i:05d}.parquet")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"features": ["f0", "f1"], "targets": "label"}))
    assert main(["check", str(folder), "--schema", str(schema), "--json", "--stats-only"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["column"], f["count"]) for f in report["findings"]] == [
        ("nulls", "f0", 2)
    ]
    assert main(["inspect", str(folder)]) == 0
    assert "f0: double  (nulls: 2)" in capsys.readouterr().out


def test_a_column_name_with_dots_keeps_its_statistics(tmp_path: Path, capsys) -> None:
    """``income.usd`` (as flattened exports name columns) was filed under ``income``:
    ``inspect`` said ``nulls: unknown`` and ``--stats-only`` missed its nulls."""
    data = tmp_path / "data.parquet"
    income = pa.array([None, 2.0, 3.0, None])
    pq.write_table(
        pa.table({"income.usd": income, "f1": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 2, 1]}), data
    )
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"features": ["income.usd", "f1"], "targets": "label"}))
    assert main(["check", str(data), "--schema", str(schema), "--json", "--stats-only"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["column"], f["count"]) for f in report["findings"]] == [
        ("nulls", "income.usd", 2)
    ]
    assert main(["inspect", str(data)]) == 0
    assert "income.usd: double  (nulls: 2)" in capsys.readouterr().out
