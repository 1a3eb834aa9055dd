"""``fitpipe fit``, ``predict`` and ``inspect`` end to end on a small Parquet data set."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_project import FEATURES, ROWS, make_project, make_table

import fitpipe
from fitpipe.cli import main

HISTORY_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after ``fitpipe fit spec.toml`` (trained once for the module)."""
    folder = make_project(tmp_path_factory.mktemp("cli"))
    assert main(["fit", str(folder / "spec.toml"), "--verbose", "0"]) == 0
    return folder


def test_fit_writes_model_history_and_plot(trained: Path, capsys) -> None:
    run = trained / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "history.csv",
        "history.json",
        "history.png",
        "input_report.json",
        "model.keras",
        "schema.json",
    ]
    report = json.loads((run / "input_report.json").read_text())
    assert report["input"] == "parquet" and [e["epoch"] for e in report["epochs"]] == [0, 1]
    assert 0 <= report["waited_share"] <= 1 and isinstance(report["input_bound"], bool)
    with open(run / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert set(rows[0]) == {"epoch"} | HISTORY_KEYS
    assert all(0 <= float(row["val_accuracy"]) <= 1 and float(row["loss"]) > 0 for row in rows)
    data = json.loads((run / "history.json").read_text())
    assert data["epoch"] == [0, 1]
    assert set(data["history"]) == HISTORY_KEYS
    assert data["history"]["loss"] == [float(row["loss"]) for row in rows]
    png = (run / "history.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    schema = fitpipe.Schema.from_json((run / "schema.json").read_text())
    assert schema == fitpipe.Schema(FEATURES, "y", passthrough=["id"])
    model = keras.saving.load_model(run / "model.keras")
    assert model.layers[0].units == 4  # [model.args] reached the factory


def test_predict_writes_passthrough_and_outputs(trained: Path, capsys) -> None:
    out = trained / "preds" / "p.parquet"
    code = main(
        [
            "predict",
            "--model",
            str(trained / "run" / "model.keras"),
            "--data",
            str(trained / "data"),
            "--schema",
            str(trained / "run" / "schema.json"),
            "--output",
            str(out),
            "--batch-size",
            "7",
        ]
    )
    assert code == 0 and f"wrote: {out}" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column_names == ["id", "prediction"]
    source = make_table()
    assert table["id"].to_pylist() == source["id"].to_pylist()
    x = np.stack([source[name].to_numpy() for name in FEATURES], axis=1)
    expected = keras.saving.load_model(trained / "run" / "model.keras").predict(x, verbose=0)
    np.testing.assert_allclose(table["prediction"].to_numpy(), expected[:, 0], rtol=1e-5)


def test_predict_errors(trained: Path, capsys) -> None:
    args = ["predict", "--data", str(trained / "data"), "--output", str(trained / "x.parquet")]
    assert main([*args, "--model", "nope.keras", "--schema", str(trained / "run/schema.json")]) == 1
    assert "cannot find the model file nope.keras" in capsys.readouterr().err
    model = str(trained / "run" / "model.keras")
    assert main([*args, "--model", model, "--schema", str(trained / "nope.json")]) == 1
    assert "nope.json: it cannot be read" in capsys.readouterr().err
    (trained / "wrong.json").write_text(fitpipe.Schema(["f0", "zz"]).to_json())
    assert main([*args, "--model", model, "--schema", str(trained / "wrong.json")]) == 1
    assert "cannot find column 'zz'" in capsys.readouterr().err
    assert not (trained / "x.parquet").exists()


def test_inspect_reports_adapter_schema_specs_and_counts(project: Path, capsys) -> None:
    (project / "s.json").write_text(fitpipe.Schema(FEATURES, "y", passthrough=["id"]).to_json())
    code = main(
        [
            "inspect",
            str(project / "data"),
            "--schema",
            str(project / "s.json"),
            "--batch-size",
            "20",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert "adapter:  parquet" in lines
    assert "files:    2 (3 row groups)" in lines
    assert f"rows:     {ROWS}" in lines
    assert f"batches:  {math.ceil(ROWS / 20)} per epoch at batch size 20" in lines
    assert "  f0: float  (nulls: 0)" in lines and "  id: int64  (nulls: 0)" in lines
    assert "  x: float32 (None, 3)" in lines and "  y: int32 (None,)" in lines
    assert lines[-1] == "problems: none"


def test_inspect_finds_nulls_and_unconvertible_columns(tmp_path: Path, capsys) -> None:
    table = pa.table(
        {
            "a": pa.array([1.0, None, 3.0, None]),
            "b": pa.array([{"k": 1}] * 4),
            "c": pa.array([None, 2.0, 3.0, 4.0]),
            "y": [0, 1, 0, 1],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    (tmp_path / "s.toml").write_text('features = ["a", "c"]\ntargets = "b"\nfill = { c = 0.0 }\n')
    code = main(["inspect", str(tmp_path / "t.parquet"), "--schema", str(tmp_path / "s.toml")])
    out = capsys.readouterr().out
    assert code == 1
    assert "  a: double  (nulls: 2)" in out and "  c: double  (nulls: 1)" in out
    assert "problems: 2" in out
    assert "column 'a' has 2 nulls (Parquet statistics) and no fill value" in out
    assert "column 'b' of type struct<k: int64> cannot be converted" in out
    assert "column 'c'" not in out.split("problems:")[1]  # c has a fill value
    assert "(not built: see the problems below)" in out
    # Without a schema nothing is used yet: findings are notes, and the exit status is 0.
    assert main(["inspect", str(tmp_path / "t.parquet")]) == 0
    out = capsys.readouterr().out
    assert "note: columns that cannot become tensors: ['b']" in out
    assert "(pass --schema to see them)" in out


def test_inspect_for_prediction_needs_no_targets(project: Path, capsys) -> None:
    pq.write_table(make_table().drop_columns(["y"]), project / "new.parquet")
    (project / "s.json").write_text(fitpipe.Schema(FEATURES, "y", passthrough=["id"]).to_json())
    args = ["inspect", str(project / "new.parquet"), "--schema", str(project / "s.json")]
    assert main(args) == 1
    assert "column 'y' is used by the schema but not in the data" in capsys.readouterr().out
    assert main([*args, "--predict"]) == 0
    out = capsys.readouterr().out
    assert "  x: float32 (None, 3)" in out and "  y:" not in out


def test_inspect_errors(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "missing.parquet")]) == 1
    assert "cannot find the Parquet source" in capsys.readouterr().err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert main(["inspect", str(tmp_path / "bad.parquet")]) == 1
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "Traceback" not in err


def test_fit_a_saved_model_with_validation_data(trained: Path, capsys) -> None:
    spec = trained / "again.toml"
    spec.write_text(
        '[data]\nsource = "data/a.parquet"\nvalidation_data = "data/b.parquet"\n'
        'schema_file = "run/schema.json"\n\n[model]\npath = "run/model.keras"\n\n'
        "[fit]\nepochs = 3\nvalidation_freq = [2, 3]\n"
    )
    assert main(["fit", str(spec), "--output-dir", str(trained / "again"), "--no-plot"]) == 0
    out = trained / "again"
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv",
        "history.json",
        "input_report.json",
        "model.keras",
        "schema.json",
    ]
    with open(out / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["val_loss"] == "" for row in rows] == [True, False, False]
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history["loss"]) == 3 and len(history["val_loss"]) == 2


@pytest.mark.parametrize("features", ['"f*"', '"<other columns>"'], ids=["glob", "other"])
def test_fit_records_the_columns_a_selector_resolved_to(project: Path, features: str) -> None:
    spec = (project / "spec.toml").read_text()
    spec = spec.replace('features = ["f0", "f1", "f2"]', f"features = {features}")
    spec = spec.replace("epochs = 2", "epochs = 1").replace('dir = "run"', 'dir = "sel"')
    (project / "spec.toml").write_text(spec)
    assert main(["fit", str(project / "spec.toml"), "--verbose", "0", "--no-plot"]) == 0
    written = json.loads((project / "sel" / "schema.json").read_text())
    assert written["features"] == FEATURES  # the data's columns in file order, not the pattern
    assert written["passthrough"] == ["id"]


def test_inspect_resolves_selectors(project: Path, capsys) -> None:
    (project / "s.json").write_text(json.dumps({"features": "f*", "targets": "y"}))
    assert main(["inspect", str(project / "data"), "--schema", str(project / "s.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  x: float32 (None, 3)" in lines and lines[-1] == "problems: none"


@pytest.mark.parametrize("narrow_first", [True, False], ids=["narrow-first", "wide-first"])
def test_inspect_checks_a_pattern_against_every_file(
    tmp_path: Path, capsys, narrow_first: bool
) -> None:
    """A column a pattern matches in some files only is a problem whatever the files' order."""
    names = ("a", "b") if narrow_first else ("b", "a")
    ones, data = np.ones(4), tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"f0": ones, "f1": ones, "y": ones}), data / f"{names[0]}.parquet")
    wide = pa.table({"f0": ones, "f1": ones, "f2": ones, "y": ones})
    pq.write_table(wide, data / f"{names[1]}.parquet")
    (tmp_path / "s.toml").write_text('features = "f*"\ntargets = "y"\n')
    main(["inspect", str(data), "--schema", str(tmp_path / "s.toml")])
    assert "found column 'f2', which a pattern of the schema matches" in capsys.readouterr().out


def test_predict_checks_its_output_against_the_input_once(
    trained: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's check (folders and globs too) stands for predict's: the glob is read once."""
    from fitpipe.training import outputs

    asked: list[bool] = []
    collision = outputs.input_collision
    monkeypatch.setattr(outputs, "input_collision", lambda *a: asked.append(a[2]) or collision(*a))
    out = trained / "once" / "p.parquet"
    data, schema = str(trained / "data" / "*.parquet"), str(trained / "run" / "schema.json")
    model = str(trained / "run" / "model.keras")
    args = ["predict", "--model", model, "--data", data, "--schema", schema, "--output", str(out)]
    assert main(args) == 0 and f"wrote: {out}" in capsys.readouterr().out
    assert asked == [True]  # with `folders`, by the CLI


def test_a_direct_predict_checks_its_output_against_the_input(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of the CLI, ``Trainer.predict`` makes its own check (without `folders`), once."""
    from fitpipe.training import outputs

    asked: list[bool] = []
    collision = outputs.input_collision
    monkeypatch.setattr(outputs, "input_collision", lambda *a: asked.append(a[2]) or collision(*a))
    trainer = fitpipe.Trainer(keras.saving.load_model(trained / "run" / "model.keras"))
    data = str(trained / "data" / "*.parquet")
    schema = fitpipe.Schema(FEATURES, "y", passthrough=["id"])
    out = trained / "direct.parquet"
    assert trainer.predict(data, schema=schema, output=str(out), verbose=0) == str(out)
    assert asked == [False]
    with pytest.raises(fitpipe.errors.FitpipeValueError, match="is the input file"):
        trainer.predict(str(out), schema=schema, output=str(out), verbose=0)
