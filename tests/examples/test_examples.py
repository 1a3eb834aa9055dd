"""Every example runs, in-process, as a smoke test: the quickstart, each input form, the CLI.

The examples are run with ``runpy`` so TensorFlow is imported once; each one's printed
output or files are checked, so an example that trains nothing or writes nothing fails.
"""

from __future__ import annotations

import importlib.util
import json
import re
import runpy
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fitpipe.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: Each input-form example and a line its output must contain.
FORMS = {
    "arrow_stream.py": "adapter: arrow-stream",  # Polars and DuckDB parts run when installed
    "arrow_table.py": "adapter: arrow",
    "dict_of_arrays.py": "adapter: mapping",
    "generator.py": "adapter: generator",
    "numpy_arrays.py": "adapter: numpy | history keys: ['accuracy', 'loss', 'val_accuracy'",
    "pandas_frame.py": "adapter: pandas",
    "parquet_files.py": "adapter: parquet | batches per epoch: 10",
    "py_dataset.py": "adapter: pydataset | batches per epoch: 7",
    "tf_dataset.py": "adapter: tf.data | val_accuracy:",
    "torch_dataloader.py": "adapter: torch | batches per epoch: 7",
}


def test_every_form_example_is_listed() -> None:
    assert sorted(p.name for p in (EXAMPLES / "forms").glob("*.py")) == sorted(FORMS)


def test_quickstart(tmp_path: Path, capsys) -> None:
    quickstart = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    results = quickstart["main"](str(tmp_path))
    out = capsys.readouterr().out
    assert "adapter: 'parquet', 18 batches of 32 in all" in out
    summary = "569 rows: 455 for training (15 batches of 32 per epoch)"
    assert f"{summary}, 114 for validation (4 batches)" in out
    assert "\n15/15 - " in out  # what fit's verbose=2 lines say: the summary's training batches
    assert len(list((tmp_path / "breast_cancer").glob("*.parquet"))) == 2
    written = pq.read_table(tmp_path / "predictions.parquet")
    assert written.column_names == ["id", "prediction"] and written.num_rows == 569
    assert sorted(written["id"].to_pylist()) == list(range(569))
    assert results["accuracy"] > 0.9 and results["val_auc"] > 0.9


@pytest.mark.parametrize("name", sorted(FORMS))
def test_form_example(name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    if name == "torch_dataloader.py":
        pytest.importorskip("torch")
    path = EXAMPLES / "forms" / name
    monkeypatch.setattr(sys, "argv", [str(path), str(tmp_path)])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert FORMS[name] in out
    if name == "arrow_stream.py":
        for module, line in (("polars", "polars adapter: arrow"), ("duckdb", "duckdb evaluate:")):
            installed = importlib.util.find_spec(module) is not None
            assert (line in out) == installed and (f"{module} is not installed" in out) != installed


def test_cli_example(tmp_path: Path, capsys) -> None:
    for name in ("spec.toml", "model_factory.py"):
        shutil.copy(EXAMPLES / "cli" / name, tmp_path / name)
    runpy.run_path(str(EXAMPLES / "cli" / "make_data.py"))["main"](str(tmp_path / "data"))
    assert main(["fit", str(tmp_path / "spec.toml"), "--verbose", "0"]) == 0
    run = tmp_path / "output"
    for name in ("model.keras", "history.csv", "history.json", "history.png"):
        assert (run / name).stat().st_size > 0, name
    assert (
        main(
            [
                "inspect",
                str(tmp_path / "data" / "train"),
                "--schema",
                str(tmp_path / "data" / "schema.json"),
            ]
        )
        == 0
    )
    code = main(
        [
            "predict",
            "--model",
            str(run / "model.keras"),
            "--data",
            str(tmp_path / "data" / "new"),
            "--schema",
            str(tmp_path / "data" / "schema.json"),
            "--output",
            str(tmp_path / "predictions.parquet"),
        ]
    )
    assert code == 0
    table = pq.read_table(tmp_path / "predictions.parquet")
    assert table.column_names == ["id", "prediction"] and table.num_rows == 20
    assert str(table.schema.field("prediction").type) == "fixed_size_list<element: float>[3]"


def _digits_data(tmp_path: Path) -> Path:
    """A copy of examples/digits/ with its data written, as the walkthrough's first step."""
    folder = tmp_path / "digits"
    shutil.copytree(EXAMPLES / "digits", folder, ignore=shutil.ignore_patterns("data", "run"))
    runpy.run_path(str(folder / "make_data.py"))["main"](str(folder / "data"))
    return folder


def test_digits_walkthrough_inspects_and_proposes_a_schema(tmp_path: Path, capsys) -> None:
    folder = _digits_data(tmp_path)
    train = str(folder / "data" / "train")
    proposed = folder / "proposed.json"
    assert main(["inspect", train, "--write-schema", str(proposed), "--target", "digit"]) == 0
    schema = json.loads(proposed.read_text())
    assert schema["features"] == [f"px{i}" for i in range(64)]
    assert schema["targets"] == "digit" and schema["passthrough"] == ["id", "name"]
    capsys.readouterr()
    assert main(["inspect", train, "--schema", str(proposed)]) == 0
    out = capsys.readouterr().out
    assert "rows:     1697" in out and "x: float32 (None, 64)" in out and "problems: none" in out


def test_digits_walkthrough_fits_with_a_glob_and_predicts_to_a_bare_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = _digits_data(tmp_path)
    assert main(["fit", str(folder / "spec.toml"), "--verbose", "2", "--no-plot"]) == 0
    out = capsys.readouterr().out
    # jit_compile="auto" tries XLA only once the steps per call settle (issue 17), and
    # announces it at most once.
    assert out.count("compiling the train step with XLA") <= 1
    history = json.loads((folder / "run" / "history.json").read_text())
    assert history["records"][-1]["val_accuracy"] > 0.85
    resolved = json.loads((folder / "run" / "schema.json").read_text())
    assert resolved["features"] == [f"px{i}" for i in range(64)]  # the glob, resolved
    monkeypatch.chdir(tmp_path)
    run = folder / "run"
    argv = ["predict", "--model", str(run / "model.keras"), "--data", str(folder / "data/new")]
    argv += ["--schema", str(run / "schema.json"), "--output", "predictions.parquet"]
    assert main(argv) == 0
    table = pq.read_table(tmp_path / "predictions.parquet")
    assert table.column_names == ["id", "name", "prediction"] and table.num_rows == 100


def test_preflight_example_catches_shifted_labels_and_nan_in_digits(tmp_path: Path, capsys) -> None:
    example = runpy.run_path(str(EXAMPLES / "preflight" / "digits_check.py"))
    results = example["main"](str(tmp_path))
    out = capsys.readouterr().out
    assert results["status"] == 1  # `fitpipe check` exits 1 on an error
    assert "ERROR   non-finite [3]: feature column 'px27' holds 3 NaN (first in row 10)" in out
    assert "ERROR   label-range [178]: 178 labels of 'digit' lie outside" in out
    assert "        10        178    9.9%  <- outside [0, 10)" in out  # the class balance
    assert "NOTE    constant [1797]: feature column 'px0' is constant" in out
    assert "fit(check='error'): `fit` found 2 problems in the data before training" in out
    # Unchecked, the NaN trains silently: weights NaN (the loss may read as a number).
    unchecked = re.search(r"fit\(check=False\): (\d+) of \d+ weights NaN", out)
    assert unchecked is not None and int(unchecked[1]) > 0, out
    assert "fit() warns: `fit` found 1 likely problem in the data before training: " in out
    assert results["val_accuracy"] > 0.8
