"""Defects of the CLI found by an outside tester: each test reproduces one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_project import SPEC

from fitpipe.cli import main
from fitpipe.cli.files import SpecError
from fitpipe.cli.spec import load_spec


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range_is_refused_by_the_spec_check(project: Path, seed: int) -> None:
    path = project / "spec.toml"
    path.write_text(SPEC.replace("seed = 0", f"seed = {seed}"))
    with pytest.raises(SpecError, match=r"`seed` in .*out of range.*\[0, 4294967295\]"):
        load_spec(path)


def test_inspect_target_without_write_schema_is_a_usage_error(project: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["inspect", str(project / "data"), "--target", "y"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "usage: fitpipe inspect" in err and "--target is only used with --write-schema" in err


def test_bad_batch_size_names_the_option_not_a_function(project: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["inspect", str(project / "data"), "--batch-size", "abc"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "_positive" not in err
    assert "argument --batch-size: expected a positive integer, got abc" in err


def test_empty_output_dir_is_a_usage_error(project: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["fit", str(project / "spec.toml"), "--output-dir", "", "--verbose", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --output-dir: expected a folder, got an empty string" in err
    assert not (project / "run").exists()


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_history_json_is_valid_json_with_null_for_nan(tmp_path: Path) -> None:
    from fitpipe.cli.history import write_json

    records = [{"epoch": 0, "loss": math.nan, "val_loss": math.inf}, {"epoch": 1, "loss": 0.5}]
    data = _strict(Path(write_json(records, str(tmp_path / "h.json"))).read_text())
    assert data["history"]["loss"] == [None, 0.5] and data["records"][0]["val_loss"] is None


def test_input_report_json_is_valid_json(tmp_path: Path) -> None:
    from fitpipe.cli.commands import _write_input_report

    class History:
        input_report = {"waited_share": math.nan, "epochs": [{"waited_s": -math.inf}]}

    path = _write_input_report(History(), str(tmp_path / "r.json"))
    expected = {"waited_share": None, "epochs": [{"waited_s": None}]}
    assert _strict(Path(str(path)).read_text()) == expected


def _fit(project: Path, *extra: str) -> int:
    return main(["fit", str(project / "spec.toml"), "--verbose", "2", *extra])


def test_rerun_leaves_only_the_latest_runs_files(project: Path, capsys) -> None:
    spec = project / "spec.toml"
    spec.write_text(SPEC.replace("epochs = 2", "epochs = 1\nstratify = true"))
    assert _fit(project) == 0
    assert {"validation_split.json", "history.png"} <= {p.name for p in (project / "run").iterdir()}
    spec.write_text(SPEC.replace("epochs = 2", "epochs = 1"))
    (project / "run" / "notes.txt").write_text("mine")  # not a run file: left alone
    assert _fit(project, "--no-plot") == 0
    assert sorted(p.name for p in (project / "run").iterdir()) == [
        "history.csv",
        "history.json",
        "input_report.json",
        "model.keras",
        "notes.txt",
        "schema.json",
    ]


def test_unusable_output_folder_is_found_before_training(project: Path, capsys) -> None:
    (project / "taken").write_text("a file, not a folder")
    assert _fit(project, "--output-dir", str(project / "taken" / "run")) == 1
    out, err = capsys.readouterr()
    assert "Epoch 1/" not in out
    assert f"`fitpipe` cannot use `--output-dir`: {project / 'taken'} is a file" in err
    spec = project / "spec.toml"
    spec.write_text(SPEC.replace('dir = "run"', 'dir = "taken/run"'))
    assert _fit(project) == 1
    out, err = capsys.readouterr()
    assert "Epoch 1/" not in out
    assert f"cannot use `output.dir` in {spec}: {project / 'taken'} is a file, not a folder" in err


def test_predict_and_inspect_refuse_an_output_under_a_file(project: Path, capsys) -> None:
    (project / "taken").write_text("a file, not a folder")
    data, schema = str(project / "data"), str(project / "schema.json")
    args = ["--model", "m.keras", "--data", data, "--schema", schema]
    assert main(["predict", *args, "--output", str(project / "taken" / "p.parquet")]) == 1
    err = capsys.readouterr().err
    assert "`fitpipe predict` cannot use the folder of `--output`: " in err and "is a file" in err
    assert main(["inspect", data, "--write-schema", str(project / "taken" / "s.json")]) == 1
    err = capsys.readouterr().err
    assert "`fitpipe inspect` cannot use the folder of `--write-schema`: " in err
    assert "FileExistsError" not in err


def test_a_corrupt_parquet_file_is_blamed_on_the_source(project: Path, capsys) -> None:
    (project / "data" / "c.parquet").write_bytes(b"")  # an interrupted copy
    assert _fit(project, "--no-plot") == 1
    err = capsys.readouterr().err
    assert f"cannot use `data.source` in {project / 'spec.toml'}: it was rejected" in err
    assert f"cannot read the Parquet file {project / 'data' / 'c.parquet'}" in err
    assert "`data.schema`" not in err and not (project / "run").exists()


@pytest.mark.parametrize("stats_only", [[], ["--stats-only"]])
def test_check_names_a_schema_column_missing_from_the_data(
    project: Path, capsys, stats_only: list[str]
) -> None:
    schema = project / "schema.json"
    schema.write_text('{"features": ["f0", "f1", "ff2"], "targets": "y"}')
    args = ["check", str(project / "data"), "--schema", str(schema), *stats_only]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "cannot find column 'ff2' in " in err and "(did you mean 'f2'?)" in err
    assert "ArrowInvalid" not in err and "__fragment_index" not in err


def test_check_flags_a_source_without_rows(project: Path, capsys) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(project / "data")
    pq.write_table(table.slice(0, 0), project / "empty.parquet")
    (project / "schema.json").write_text('{"features": ["f0", "f1", "f2"], "targets": "y"}')
    args = ["check", str(project / "empty.parquet"), "--schema", str(project / "schema.json")]
    assert main(args) == 1
    assert "ERROR   no-rows: the data has no rows" in capsys.readouterr().out


@pytest.mark.parametrize("kept", [True, False], ids=["rows-kept", "none-kept"])
@pytest.mark.parametrize("full", [True, False], ids=["full", "statistics"])
def test_a_filtered_dataset_is_flagged_only_when_its_filter_keeps_no_rows(
    project: Path, kept: bool, full: bool
) -> None:
    # The footers count no rows of a filtered dataset: fit's pre-flight refused one that
    # kept rows (tests/adapters/test_parquet.py::test_filtered_dataset_with_validation_split).
    import pyarrow.dataset as pads

    from fitpipe.training.preflight import check_data

    dataset = pads.dataset(str(project / "data"))
    dataset = dataset.filter(pads.field("f0") > (-1e9 if kept else 1e9))
    schema = {"features": ["f0", "f1", "f2"], "targets": "y"}
    report = check_data(dataset, schema=schema, full=full)
    assert any(f.check == "no-rows" for f in report.findings) is not kept


@pytest.mark.parametrize("where", ["", "models/", "models/deeper/"])
def test_a_factory_imports_the_modules_beside_it(project: Path, where: str) -> None:
    # Also a factory the spec names by a path ("models/factory:build"): the modules beside
    # it are found, not only those beside the spec.
    from fitpipe.cli.commands import build_model

    folder = project / where
    folder.mkdir(parents=True, exist_ok=True)
    helpers = f"fix4_helpers_{len(where)}"
    (folder / f"{helpers}.py").write_text("UNITS = 5\n")
    factory = (project / "factory.py").read_text()
    (folder / "factory.py").write_text(
        f"from {helpers} import UNITS\n" + factory.replace("units=4", "units=UNITS")
    )
    path = project / "spec.toml"
    spec = SPEC.replace("units = 4", "units = 5")
    path.write_text(spec.replace('factory = "factory:build"', f'factory = "{where}factory:build"'))
    assert build_model(load_spec(path)).layers[0].units == 5
    import sys

    assert str(project) not in sys.path  # only while the factory is imported
    assert str(folder) not in sys.path and str(folder).rstrip("/") not in sys.path


@pytest.mark.parametrize("what", ["truncated", "folder"])
def test_a_file_that_is_no_keras_archive_is_worded(project: Path, capsys, what: str) -> None:
    model = project / "m.keras"
    if what == "folder":
        model.mkdir()
    else:
        model.write_bytes(b"PK\x03\x04 an interrupted copy")
    schema = project / "schema.json"
    schema.write_text('{"features": ["f0", "f1", "f2"], "targets": "y"}')
    data = str(project / "data")
    out = str(project / "p.parquet")
    args = ["--model", str(model), "--data", data, "--schema", str(schema), "--output", out]
    assert main(["predict", *args]) == 1
    assert main(["check", data, "--schema", str(schema), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.count(f"cannot load {model}: it exists but is not a readable .keras archive") == 2
    assert "File not found" not in err


@pytest.mark.parametrize("case", ["same file", "symlink"])
def test_predict_refuses_an_output_that_is_an_input_file(project: Path, case: str) -> None:
    import keras
    import pyarrow.parquet as pq

    from fitpipe.training import Trainer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    scores = project / "scores.parquet"
    pq.write_table(pq.read_table(project / "data" / "b.parquet"), scores)
    output = scores if case == "same file" else project / "link.parquet"
    if case == "symlink":
        output.symlink_to(scores)
    before = pq.read_table(scores).column_names
    schema = {"features": ["f0", "f1", "f2"]}
    with pytest.raises(ValueError, match=r"`predict` got an `output` that is the input file "):
        Trainer(model).predict(str(scores), schema=schema, output=str(output))
    assert pq.read_table(scores).column_names == before


@pytest.mark.parametrize("case", ["same file", "inside folder", "glob"])
def test_fitpipe_predict_refuses_an_output_the_input_reads(
    project: Path, capsys, case: str
) -> None:
    import keras

    keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(project / "m.keras")
    (project / "schema.json").write_text('{"features": ["f0", "f1", "f2"]}')
    data, output = {
        "same file": (project / "data" / "b.parquet", project / "data" / "b.parquet"),
        "inside folder": (project / "data", project / "data" / "p.parquet"),
        "glob": (project / "data" / "*.parquet", project / "data" / "p.parquet"),
    }[case]
    args = ["predict", "--model", str(project / "m.keras"), "--data", str(data)]
    args += ["--schema", str(project / "schema.json"), "--output", str(output)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "`predict` got an `output` that " in err and "the input" in err
    assert sorted(p.name for p in (project / "data").iterdir()) == ["a.parquet", "b.parquet"]


def test_the_data_check_warning_is_a_cli_line_with_advice_for_a_spec(project: Path, capsys) -> None:
    import warnings

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fitpipe.errors import DataCheckWarning

    path = project / "data" / "a.parquet"
    table = pq.read_table(path)
    f0 = table.column("f0").to_numpy().copy()
    f0[3] = np.nan
    pq.write_table(table.set_column(1, "f0", pa.array(f0)), path)
    spec = project / "spec.toml"
    spec.write_text(SPEC.replace("epochs = 2", "epochs = 1"))
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataCheckWarning)
        assert _fit(project, "--no-plot") == 0
        err = capsys.readouterr().err
        assert "fitpipe fit: warning: `fit` found 1 likely problem in the data" in err
        assert "set `check = false` in the spec's [fit] to train anyway" in err
        assert "DataCheckWarning" not in err and "check=False" not in err
        spec.write_text(SPEC.replace("epochs = 2", "epochs = 1\ncheck = false"))
        assert dict(load_spec(spec).fit)["check"] is False
        assert _fit(project, "--no-plot") == 0
        assert "warning" not in capsys.readouterr().err
