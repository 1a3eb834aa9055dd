"""Run specs and schema files: what they parse to, and errors that name the key and the file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_project import SPEC

import fitpipe
from fitpipe.cli import main
from fitpipe.cli.files import SpecError, load_schema
from fitpipe.cli.spec import load_spec


def test_spec_parses_with_paths_relative_to_the_spec(project: Path) -> None:
    spec = load_spec(project / "spec.toml")
    assert spec.file == str(project / "spec.toml")
    assert spec.data.source == str(project / "data")
    assert spec.data.schema == fitpipe.Schema(["f0", "f1", "f2"], "y", passthrough=["id"])
    assert spec.data.validation_data is None
    assert spec.model.factory == "factory:build" and dict(spec.model.args) == {"units": 4}
    assert dict(spec.compile)["metrics"] == ["accuracy"]
    fit = dict(spec.fit)
    assert fit["class_weight"] == {0: 1.0, 1: 2.0}  # TOML keys become class indices
    assert fit["epochs"] == 2 and fit["validation_split"] == 0.2
    assert spec.output_dir == str(project / "run")
    assert spec.seed == 0


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"balanced"', "balanced"),
        (
            '{ out_a = { 0 = 1.0, 1 = 5.0 }, out_b = "balanced" }',
            {"out_a": {0: 1.0, 1: 5.0}, "out_b": "balanced"},
        ),
    ],
    ids=["balanced", "per-output"],
)
def test_spec_class_weight_balanced_and_per_output(
    project: Path, written: str, expected: Any
) -> None:
    path = project / "spec.toml"
    path.write_text(_replace("{ 0 = 1.0, 1 = 2.0 }", written))
    assert dict(load_spec(path).fit)["class_weight"] == expected


@pytest.mark.parametrize("suffix", ["json", "toml"])
def test_schema_files(project: Path, suffix: str) -> None:
    schema = fitpipe.Schema({"a": ["f0", "f1"], "b": "f2"}, "y", "w", ["id"], {"f0": 0.5})
    path = project / f"schema.{suffix}"
    if suffix == "json":
        path.write_text(schema.to_json())
    else:
        path.write_text(
            'targets = "y"\nsample_weight = "w"\npassthrough = ["id"]\n'
            'features = { a = ["f0", "f1"], b = "f2" }\nfill = { f0 = 0.5 }\n'
        )
    assert load_schema(path) == schema
    spec = (project / "spec.toml").read_text()
    spec = re.sub(r"schema = \{.*\}", f'schema_file = "schema.{suffix}"', spec)
    (project / "spec.toml").write_text(spec)
    assert load_spec(project / "spec.toml").data.schema == schema


def test_validation_data_and_model_path(project: Path) -> None:
    (project / "m.keras").write_bytes(b"")
    text = SPEC.replace('source = "data"', 'source = "data"\nvalidation_data = "val/*.parquet"')
    text = re.sub(
        r'factory = "factory:build"\n\n\[model.args\]\nunits = 4', 'path = "m.keras"', text
    )
    (project / "spec.toml").write_text(text)
    spec = load_spec(project / "spec.toml")
    assert spec.data.validation_data == str(project / "val" / "*.parquet")
    assert spec.model.path == str(project / "m.keras") and spec.model.factory is None


@pytest.mark.parametrize(
    "uri", ["s3://bucket/train/", "s3://bucket/train/*.parquet", "gs://bucket/t.parquet"]
)
def test_object_store_uris_are_kept_as_written(project: Path, uri: str) -> None:
    """A URI is not a path relative to the spec (it was joined to the spec's folder)."""
    text = SPEC.replace('source = "data"', f'source = "{uri}"\nvalidation_data = "{uri}"')
    (project / "spec.toml").write_text(text)
    spec = load_spec(project / "spec.toml")
    assert spec.data.source == uri and spec.data.validation_data == uri


def _replace(old: str, new: str) -> str:
    assert old in SPEC
    return SPEC.replace(old, new)


BAD_SPECS = {
    "unknown table": (SPEC + "\n[trainer]\nx = 1\n", "trainer"),
    "unknown fit key": (_replace("epochs = 2", "epoch = 2"), "fit.epoch"),
    "epochs as text": (_replace("epochs = 2", 'epochs = "2"'), "fit.epochs"),
    "epochs zero": (_replace("epochs = 2", "epochs = 0"), "fit.epochs"),
    "epochs as bool": (_replace("epochs = 2", "epochs = true"), "fit.epochs"),
    "split too big": (
        _replace("validation_split = 0.2", "validation_split = 1.5"),
        "fit.validation_split",
    ),
    "class weight key": (_replace("{ 0 = 1.0, 1 = 2.0 }", "{ a = 1.0 }"), "fit.class_weight.a"),
    "class weight value": (_replace("{ 0 = 1.0, 1 = 2.0 }", '{ 0 = "x" }'), "fit.class_weight.0"),
    "per-output class weight key": (
        _replace("{ 0 = 1.0, 1 = 2.0 }", '{ a = { x = 1.0 }, b = "balanced" }'),
        "fit.class_weight.a.x",
    ),
    "validation_freq": (
        SPEC.replace("epochs = 2", "epochs = 2\nvalidation_freq = [1, 0]"),
        "fit.validation_freq[1]",
    ),
    "shuffle as int": (SPEC.replace("epochs = 2", "epochs = 2\nshuffle = 1"), "fit.shuffle"),
    "fit not a table": (
        re.sub(r"(?m)^\[fit\]\n(?:^(?!\[).*\n)*", "", SPEC).replace("seed = 0", "fit = 3"),
        "fit",
    ),
    "no source": (_replace('source = "data"\n', ""), "data.source"),
    "source not text": (_replace('source = "data"', "source = 3"), "data.source"),
    "no data": (_replace("[data]", "[datum]"), "datum"),
    "two schemas": (
        _replace('source = "data"', 'source = "data"\nschema_file = "s.json"'),
        "data.schema",
    ),
    "bad schema": (_replace('features = ["f0", "f1", "f2"]', "features = 3"), "data.schema"),
    "schema key": (_replace('targets = "y"', 'target = "y"'), "data.schema"),
    "missing schema file": (
        re.sub(r"schema = \{.*\}", 'schema_file = "nope.json"', SPEC),
        "data.schema_file",
    ),
    "model path missing": (
        _replace('factory = "factory:build"\n\n[model.args]\nunits = 4', 'path = "missing.keras"'),
        "model.path",
    ),
    "two models": (
        _replace('factory = "factory:build"', 'factory = "factory:build"\npath = "x.keras"'),
        "model.factory",
    ),
    "factory without colon": (_replace('"factory:build"', '"factory.build"'), "model.factory"),
    "factory module": (_replace('"factory:build"', '"no_such_module_xyz:build"'), "model.factory"),
    "factory function": (_replace('"factory:build"', '"factory:nope"'), "model.factory"),
    "model key": (_replace("[model.args]", "[model.argz]"), "model.argz"),
    "compile type": (_replace('optimizer = "adam"', "optimizer = 3"), "compile.optimizer"),
    "compile key": (_replace('optimizer = "adam"', "lr = 0.1"), "compile.lr"),
    "output dir": (_replace('dir = "run"', "dir = 3"), "output.dir"),
    "seed": (_replace("seed = 0", 'seed = "zero"'), "seed"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_names_key_and_file(write_spec, case: str) -> None:
    text, key = BAD_SPECS[case]
    path = write_spec(text)
    with pytest.raises(SpecError, match=rf"`{re.escape(key)}` in {re.escape(str(path))}"):
        load_spec(path)


def test_spec_split_by_and_stratify_reach_fit(project: Path) -> None:
    path = project / "spec.toml"
    path.write_text(_replace("epochs = 2", 'epochs = 2\nsplit_by = "id"'))
    fit = dict(load_spec(path).fit)
    assert fit["split_by"] == "id" and "stratify" not in fit
    path.write_text(_replace("epochs = 2", "epochs = 2\nstratify = true"))
    assert dict(load_spec(path).fit)["stratify"] is True
    path.write_text(_replace("epochs = 2", "epochs = 2\nstratify = false"))
    assert dict(load_spec(path).fit)["stratify"] is False


SPLIT_CONFLICTS = {
    "split_by not text": (
        _replace("epochs = 2", "epochs = 2\nsplit_by = 3"),
        "fit.split_by",
        "has the wrong type",
        "`fit.split_by` is a column name (a string)",
    ),
    "split_by empty": (
        _replace("epochs = 2", 'epochs = 2\nsplit_by = " "'),
        "fit.split_by",
        "is empty",
        'Write e.g. split_by = "user_id"',
    ),
    "stratify as text": (
        _replace("epochs = 2", 'epochs = 2\nstratify = "yes"'),
        "fit.stratify",
        "has the wrong type",
        "`fit.stratify` is true or false",
    ),
    "extra (a schema reads only its columns)": (
        _replace("epochs = 2", 'epochs = 2\nextra = "ignore"'),
        "fit.extra",
        "is an unknown key",
        "Remove or rename it",
    ),
    "split_by without split": (
        _replace("validation_split = 0.2", 'split_by = "id"'),
        "fit.split_by",
        "is given without a `fit.validation_split`",
        "Add e.g. validation_split = 0.2",
    ),
    "stratify with a zero split": (
        _replace("validation_split = 0.2", "validation_split = 0.0\nstratify = true"),
        "fit.stratify",
        "is given without a `fit.validation_split`",
        "Add e.g. validation_split = 0.2",
    ),
    "split_by with validation_data": (
        _replace('source = "data"', 'source = "data"\nvalidation_data = "val"').replace(
            "epochs = 2", 'epochs = 2\nsplit_by = "id"'
        ),
        "fit.split_by",
        "is given with `data.validation_data`",
        "`data.validation_data` replaces the split",
    ),
    "both": (
        _replace("epochs = 2", 'epochs = 2\nsplit_by = "id"\nstratify = true'),
        "fit.stratify",
        "is given with `fit.split_by`",
        "Keep one of them",
    ),
}


@pytest.mark.parametrize("case", sorted(SPLIT_CONFLICTS))
def test_split_keys_are_checked_and_need_a_split_of_their_own(write_spec, case: str) -> None:
    text, key, what, fix = SPLIT_CONFLICTS[case]
    path = write_spec(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    text = str(raised.value)
    assert f"cannot use `{key}` in {path}: it {what}." in text, text
    assert fix in text and f"Received: {key}=" in text, text


def test_invalid_toml_and_missing_file_name_the_file(write_spec, project: Path) -> None:
    path = write_spec("[fit\nepochs = 2\n")
    with pytest.raises(SpecError, match=rf"{re.escape(str(path))}: it is not valid TOML"):
        load_spec(path)
    with pytest.raises(SpecError, match=r"nope\.toml: it cannot be read"):
        load_spec(project / "nope.toml")
    bad = project / "schema.json"
    bad.write_text("{features: 1")
    with pytest.raises(SpecError, match=r"schema\.json: it is not valid JSON"):
        load_schema(bad)


def test_spec_errors_are_value_errors() -> None:
    assert issubclass(SpecError, fitpipe.errors.FitpipeError)
    assert issubclass(SpecError, ValueError)


def test_main_reports_a_bad_spec_on_stderr_without_traceback(write_spec, capsys) -> None:
    path = write_spec(_replace("epochs = 2", 'epochs = "2"'))
    assert main(["fit", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fitpipe fit: error: ") and "`fit.epochs`" in err and str(path) in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        (_replace("units = 4", "width = 4"), "model.args", "not accepted by the factory"),
        (
            _replace('"factory:build"\n\n[model.args]\nunits = 4', '"factory:not_a_model"'),
            "model.factory",
            "did not return a keras.Model",
        ),
        (
            _replace('optimizer = "adam"', 'optimizer = "no_such_optimizer"'),
            "compile.optimizer",
            "rejected by Keras",
        ),
        (
            re.sub(r"(?m)^\[compile\]\n(?:^(?!\[).*\n)*", "", SPEC),
            "compile",
            "the model is not compiled",
        ),
    ],
    ids=["args", "not a model", "optimizer", "no compile"],
)
def test_model_and_compile_errors_name_key_and_file(write_spec, capsys, text, key, why) -> None:
    path = write_spec(text)
    assert main(["fit", str(path), "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert f"`{key}` in {path}" in err and why in err, err
    assert not (path.parent / "run").exists()


def _compile_extra(line: str) -> str:
    return _replace('metrics = ["accuracy"]', f'metrics = ["accuracy"]\n{line}')


def _fit_extra(line: str) -> str:
    return _replace("epochs = 2", f"epochs = 2\n{line}")


#: Values that pass the spec's own checks but that Keras or fitpipe rejects when they are
#: used: ``(spec text, key, a piece of the underlying reason)``.
REJECTED_VALUES = {
    "optimizer name": (
        _replace('"adam"', '"adamm"'),
        "compile.optimizer",
        "Could not interpret optimizer identifier: adamm",
    ),
    "optimizer table": (
        _replace('"adam"', '{ class_name = "Nope", config = {} }'),
        "compile.optimizer",
        "Nope",
    ),
    "loss name": (
        _replace('"binary_crossentropy"', '"binary_crossentropyy"'),
        "compile.loss",
        "Could not interpret loss identifier: binary_crossentropyy",
    ),
    "loss of an unknown output": (
        _replace('"binary_crossentropy"', '{ nope = "mse" }'),
        "compile.loss",
        "",
    ),
    "metric name": (
        _replace('["accuracy"]', '["acuracy"]'),
        "compile.metrics",
        "Could not interpret metric identifier: acuracy",
    ),
    "weighted metric name": (
        _compile_extra('weighted_metrics = ["acuracy"]'),
        "compile.weighted_metrics",
        "Could not interpret metric identifier: acuracy",
    ),
    "loss weights": (
        _compile_extra("loss_weights = [1.0, 2.0]"),
        "compile.loss_weights",
        "got a `loss_weights` list of 2 entries for a model of 1 output",
    ),
    "steps per execution": (
        _compile_extra('steps_per_execution = "often"'),
        "compile.steps_per_execution",
        "invalid `steps_per_execution`",
    ),
    "epochs below initial_epoch": (
        _fit_extra("initial_epoch = 5"),
        "fit.epochs",
        "`epochs` smaller than `initial_epoch`",
    ),
    "split leaving no rows": (
        _replace("validation_split = 0.2", "validation_split = 0.999"),
        "fit.validation_split",
        "cannot split 90 samples",
    ),
    "negative class weight": (
        _replace("{ 0 = 1.0, 1 = 2.0 }", "{ 0 = -1.0, 1 = 2.0 }"),
        "fit.class_weight",
        "got the weight -1.0 for class 0",
    ),
    "class weight of an unknown output": (
        _replace("{ 0 = 1.0, 1 = 2.0 }", '{ nope = "balanced" }'),
        "fit.class_weight",
        "unknown output 'nope'",
    ),
    "split_by column": (_fit_extra('split_by = "user"'), "fit.split_by", "names no column"),
    "source path": (_replace('"data"', '"dta"'), "data.source", "no such file or folder"),
    "source glob": (_replace('"data"', '"dta/*.parquet"'), "data.source", "no file matches"),
    "validation data path": (
        _replace('source = "data"', 'source = "data"\nvalidation_data = "vall"').replace(
            "validation_split = 0.2\n", ""
        ),
        "data.validation_data",
        "no such file or folder",
    ),
    "schema column": (
        _replace('"f0", "f1", "f2"]', '"f0", "f1", "nope"]'),
        "data.schema",
        "cannot find column 'nope'",
    ),
    "schema file column": (
        re.sub(r"schema = \{.*\}", 'schema_file = "schema.toml"', SPEC),
        "data.schema_file",
        "cannot find column 'yy'",
    ),
    "model file": (
        _replace('factory = "factory:build"\n\n[model.args]\nunits = 4', 'path = "junk.keras"'),
        "model.path",
        "junk.keras",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED_VALUES))
def test_values_rejected_when_used_name_key_and_file(
    write_spec, project: Path, tmp_path_factory, monkeypatch, capsys, case: str
) -> None:
    text, key, reason = REJECTED_VALUES[case]
    path = write_spec(text)
    (project / "schema.toml").write_text('features = ["f0", "f1", "f2"]\ntargets = "yy"\n')
    (project / "junk.keras").write_bytes(b"not a zip file")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # paths start at the spec
    assert main(["fit", str(path), "--no-plot", "--verbose", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"fitpipe fit: error: `fitpipe` cannot use `{key}` in {path}: it "), err
    assert reason in err, err
    assert re.search(rf"`{re.escape(key)}` (is|names) ", err) and f"Received: {key}=" in err, err
    if key in ("data.source", "data.validation_data", "model.path"):
        assert f"starts at the spec's folder {str(project)!r}" in err, err
        assert "working directory" not in err, err
    assert not (project / "run").exists()


def test_check_names_the_compile_key_of_a_spec_model(write_spec, capsys) -> None:
    path = write_spec(_replace('"adam"', '"adamm"'))
    assert main(["check", str(path.parent / "data"), "--model", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"fitpipe check: error: `fitpipe` cannot use `compile.optimizer` in {path}"
    )


FAILING_MODEL = """
import keras


class Failing(keras.layers.Layer):
    def compute_output_shape(self, shape):
        return shape

    def call(self, x):
        raise ValueError("the layer failed on purpose")


def build():
    return keras.Sequential([keras.Input((3,)), Failing(), keras.layers.Dense(1)])
"""


def test_errors_about_no_spec_value_are_left_as_they_are(write_spec, capsys) -> None:
    path = write_spec(_replace('"factory:build"', '"failing:build"').replace("units = 4", ""))
    (path.parent / "failing.py").write_text(FAILING_MODEL)
    assert main(["fit", str(path), "--no-plot", "--verbose", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fitpipe fit: error: ValueError: ") and "on purpose" in err, err
    assert "cannot use" not in err, err


@pytest.mark.parametrize("command", [[], ["inspect"], ["fit"], ["predict"]])
def test_help_on_every_command(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fitpipe {' '.join(command)}".rstrip())
    for word in {
        "": ["inspect", "fit", "predict"],
        "inspect": ["--schema", "--batch-size"],
        "fit": ["SPEC.toml", "[model.args]", "history.png"],
        "predict": ["--model", "--data", "--schema", "--output"],
    }[" ".join(command)]:
        assert word in out


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--model", "m.keras"])
    assert exit_.value.code == 2
    assert "required" in capsys.readouterr().err


def test_console_script_is_declared() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"fitpipe": "fitpipe.cli:main"}


def test_history_files_keep_epochs_without_validation(tmp_path: Path) -> None:
    from fitpipe.cli.history import write_csv, write_json

    records = [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5, "val_loss": 0.7}]
    csv_text = Path(write_csv(records, str(tmp_path / "h.csv"))).read_text().splitlines()
    assert csv_text == ["epoch,loss,val_loss", "0,1.0,", "1,0.5,0.7"]
    data = json.loads(Path(write_json(records, str(tmp_path / "h.json"))).read_text())
    assert data["epoch"] == [0, 1]
    assert data["history"] == {"loss": [1.0, 0.5], "val_loss": [0.7]}
    assert data["records"] == records
