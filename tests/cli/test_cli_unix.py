"""The command behaves like a Unix tool: fast help, quiet stderr, one-line errors, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_project import FEATURES, make_table

import fitpipe
import fitpipe.cli
from fitpipe.cli import main
from fitpipe.cli.quiet import STARTUP_NOISE

#: Stands in for the installed ``fitpipe`` script: same name, so ``sys.argv[0]`` is
#: ``.../fitpipe``. Reports on stderr whether TensorFlow was imported.
_SCRIPT = """\
import sys
from fitpipe.cli import main
try:
    code = main()
except SystemExit as stop:
    code = stop.code
print("TENSORFLOW_IMPORTED=" + str("tensorflow" in sys.modules), file=sys.stderr)
sys.exit(code)
"""

#: A generous bound (the issue asks for 0.5 s; measured figures are in benchmarks/RESULTS.md).
_HELP_BOUND_S = 3.0


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # set by this process's `import fitpipe`
    return env


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["inspect", "--help"], ["fit", "--help"], ["predict", "--help"]],
)
@pytest.mark.parametrize("how", ["script", "module"])
def test_help_and_version_answer_fast_without_tensorflow(
    tmp_path: Path, args: list[str], how: str
) -> None:
    script = tmp_path / "fitpipe"
    script.write_text(_SCRIPT)
    if how == "script":
        command = [sys.executable, str(script), *args]
    else:
        command = [sys.executable, "-m", "fitpipe.cli", *args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=_child_env(), timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert ("fitpipe 0.1.0" if args == ["--version"] else "usage: fitpipe") in done.stdout
    assert elapsed < _HELP_BOUND_S, f"{args} took {elapsed:.2f} s"
    if how == "script":
        assert done.stderr.strip() == "TENSORFLOW_IMPORTED=False"
    else:
        assert done.stderr == ""  # (the script variant checks the imports)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(make_table(40), tmp_path / "d.parquet")
    (tmp_path / "s.json").write_text(fitpipe.Schema(FEATURES, "y", passthrough=["id"]).to_json())
    return tmp_path


@pytest.mark.slow
@pytest.mark.subprocess
def test_no_tensorflow_startup_lines_on_stderr_unless_verbose(data: Path) -> None:
    args = ["inspect", str(data / "d.parquet"), "--schema", str(data / "s.json")]
    runs = {}
    for verbose in ([], ["--verbose"]):
        runs[bool(verbose)] = subprocess.run(
            [sys.executable, "-m", "fitpipe.cli", *verbose, *args],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=300,
        )
    quiet, loud = runs[False], runs[True]
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "problems: none" in quiet.stdout
    assert quiet.stderr == ""
    # What --verbose shows is TensorFlow's start-up log (on this CPU build: oneDNN, no CUDA).
    assert [line for line in loud.stderr.splitlines() if STARTUP_NOISE.search(line)], loud.stderr


def _fails(*args: str) -> None:
    raise RuntimeError("the disk\nis full")


@pytest.mark.parametrize("command", ["inspect", "fit", "predict"])
def test_any_failure_is_one_error_line_and_status_1(
    command: str, data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fitpipe.cli, f"_{command}", _fails)
    argv = {
        "inspect": ["inspect", str(data / "d.parquet")],
        "fit": ["fit", str(data / "spec.toml")],
        "predict": ["predict", "--model", "m", "--data", "d", "--schema", "s", "--output", "o"],
    }[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"fitpipe {command}: error: RuntimeError: the disk is full (--debug shows the traceback)"
    ]
    for debug in (["--debug", *argv], [*argv, "--debug"]):
        assert main(debug) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):"), err
        assert err.splitlines()[-1].startswith(f"fitpipe {command}: error: RuntimeError")


def test_fitpipe_errors_keep_their_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path / "missing.parquet")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fitpipe inspect: error: `fitpipe inspect`")
    assert "Traceback" not in lines[0]


def test_write_schema_proposes_roles_without_guessing_a_target(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = data / "proposed" / "schema.json"
    assert main(["inspect", str(data / "d.parquet"), "--write-schema", str(out)]) == 0
    assert "wrote: " in capsys.readouterr().out
    proposed = fitpipe.Schema.from_dict(json.loads(out.read_text()))
    # Numeric columns in file order are features (the label too, as no target was named).
    assert proposed.to_dict()["features"] == [*FEATURES, "y"]
    assert proposed.to_dict()["targets"] is None
    assert proposed.to_dict()["passthrough"] == ["id"]


def test_write_schema_with_target_is_ready_to_use(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = make_table(40).append_column("name", pa.array(["row"] * 40))
    pq.write_table(table, data / "named.parquet")
    out = data / "schema.json"
    args = ["inspect", str(data / "named.parquet")]
    assert main([*args, "--write-schema", str(out), "--target", "y"]) == 0
    proposed = json.loads(out.read_text())
    assert proposed["features"] == FEATURES and proposed["targets"] == "y"
    assert proposed["passthrough"] == ["id", "name"]
    capsys.readouterr()
    assert main([*args, "--schema", str(out)]) == 0
    assert "problems: none" in capsys.readouterr().out


def test_write_schema_errors(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", str(data / "d.parquet")]
    assert main([*args, "--write-schema", str(data / "s2.json"), "--target", "label"]) == 1
    err = capsys.readouterr().err
    assert "cannot find the target column 'label'" in err and "id, f0, f1, f2, y" in err
    assert not (data / "s2.json").exists()
    with pytest.raises(SystemExit) as stop:  # a usage error: exit 2 with the usage line
        main([*args, "--target", "y"])
    assert stop.value.code == 2
    assert "--target is only used with --write-schema" in capsys.readouterr().err
