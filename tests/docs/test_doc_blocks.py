"""Every Python and shell block of README.md and examples/*.md runs, exactly as written.

The blocks of one document run in order in one working folder (a later block may use what an
earlier one wrote, as a reader following along would); each Python block gets a fresh
namespace with its placeholders bound. A shell block's commands run in this process where
they are fitpipe's (``fitpipe ...``, ``python3 -m fitpipe.cli ...``, ``python3 SCRIPT.py``);
installs and the test command are checked against what CI runs (``.ci/run``); a ``pytest``
command CI does not run is collected in a child process. conftest.py prints how many blocks
ran.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from doc_blocks import ROOT, Block, all_blocks, blocks_of, shell_commands
from placeholders import is_file, make_placeholder

from fitpipe.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BLOCKS = all_blocks()
CI_SCRIPT = (ROOT / ".ci" / "run").read_text()

#: Blocks that fail today for a known bug, by a line of their code. strict: once the bug is
#: fixed the test fails until the entry is removed.
XFAIL: dict[str, str] = {}


def _marks(block: Block) -> list[Any]:
    marks: list[Any] = [pytest.mark.slow] if block.syntax_only is None else []
    for line, reason in XFAIL.items():
        if line in block.code.splitlines():
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return marks


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """One working folder per document, holding a copy of examples/ (paths as written)."""
    made: dict[Path, Path] = {}
    for block in BLOCKS:
        if block.path not in made:
            folder = tmp_path_factory.mktemp(block.path.stem)
            shutil.copytree(
                ROOT / "examples",
                folder / "examples",
                ignore=shutil.ignore_patterns("data", "output", "__pycache__", "*.egg-info"),
            )
            made[block.path] = folder
    return made


def _spec_of(path: Path) -> str:
    toml = [block.code for block in blocks_of(path) if block.language == "toml"]
    return toml[0] if toml else ""


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]


def _installed_by_ci(extra: str) -> bool:
    """Whether CI's `pip install -e ".[test]"` installs ``extra`` (directly or through one)."""
    extras, seen, todo = _extras(), set(), ["test"]
    while todo:
        name = todo.pop()
        seen.add(name)
        for requirement in extras.get(name, []):
            if requirement.startswith("fitpipe["):
                todo.extend(requirement[len("fitpipe[") : -1].split(","))
    return 'pip install -e ".[test]"' in CI_SCRIPT and extra in seen


def _python_command(argv: list[str]) -> bool:
    return argv[0] in ("python", "python3") and len(argv) > 1


def _run_command(command: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(command)
    if argv[0] == "fitpipe" or argv[:3] in (["python3", "-m", "fitpipe.cli"],):
        args = argv[1:] if argv[0] == "fitpipe" else argv[3:]
        assert main(args) == 0, command
    elif _python_command(argv) and argv[1:4] == ["-m", "pip", "install"]:
        line = " ".join(argv)
        if argv[4:5] == ["-e"] and argv[5].startswith(".["):
            assert _installed_by_ci(argv[5][2:-1]), f"CI does not install: {line}"
        else:
            assert line.replace("python ", "python3 ", 1) in CI_SCRIPT, f"CI does not run: {line}"
    elif _python_command(argv) and argv[1:3] == ["-m", "pytest"]:
        line = " ".join(shlex.quote(a) if " " in a else a for a in argv)
        if line in CI_SCRIPT.splitlines() or f"&& {line}" in CI_SCRIPT:
            return  # CI runs it: this very suite, or the example adapter's
        done = subprocess.run(
            [sys.executable, *argv[1:], "--collect-only", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        counts = [line.rsplit(": ", 1) for line in done.stdout.splitlines() if ": " in line]
        assert sum(int(n) for _, n in counts if n.isdigit()) > 0, done.stdout
    elif _python_command(argv) and argv[1].endswith(".py"):
        monkeypatch.setattr(sys, "argv", argv[1:])
        runpy.run_path(str(folder / argv[1]), run_name="__main__")
    else:
        raise AssertionError(f"the doc test does not know how to run: {command}")


def printed_claims(code: str) -> list[str]:
    """What a block says its ``print`` lines show: ``print(x)  # TEXT ...`` claims TEXT."""
    claims = []
    for line in code.splitlines():
        found = re.search(r"\bprint\(.*\)\s*#\s*(.+?)\s*(\.\.\.)?\s*$", line)
        if found:
            claims.append(found.group(1))
    return claims


def _run_python(block: Block, folder: Path, spec: str) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for name in block.placeholders:
        value = make_placeholder(name, folder, spec)
        if not is_file(name):
            namespace[name] = value
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.code, block.id, "exec"), namespace)
    for claim in printed_claims(block.code):
        assert claim in printed.getvalue(), f"{block.id} says it prints {claim!r}"


def _check_syntax(block: Block) -> None:
    if block.language == "python":
        compile(block.code, block.id, "exec")
        return
    done = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in BLOCKS if b.language != "toml"]
)
def test_block_runs(
    block: Block, folders: dict[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.syntax_only is not None:
        _check_syntax(block)
        return
    folder = folders[block.path]
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    spec = _spec_of(block.path)
    if block.language == "python":
        _run_python(block, folder, spec)
        return
    for name in block.placeholders:
        make_placeholder(name, folder, spec)
    for command in shell_commands(block.code):
        _run_command(command, folder, monkeypatch)


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id) for b in BLOCKS if b.language == "toml"]
)
def test_toml_block_is_a_valid_spec_or_project_table(block: Block, tmp_path: Path) -> None:
    from fitpipe.cli.spec import load_spec

    table = tomllib.loads(block.code)
    if "project" in table:  # a pyproject.toml excerpt: an entry point group
        assert set(table["project"]) == {"entry-points"}
        return
    for name in ("data/train/", "model_factory.py"):
        make_placeholder(name, tmp_path, block.code)
    (tmp_path / "spec.toml").write_text(block.code)
    spec = load_spec(tmp_path / "spec.toml")
    assert spec.data.source == os.path.join(tmp_path, "data", "train")


def test_blocks_are_found() -> None:
    ids = [block.id for block in BLOCKS]
    assert len(ids) >= 15 and any(i.startswith("README.md") for i in ids)
    assert any(i.startswith("examples/cli/README.md") for i in ids)
    assert any(i.startswith("examples/digits/README.md") for i in ids)
    shell = [block for block in BLOCKS if block.language == "shell"]
    assert any("fitpipe predict" in block.code for block in shell)


def test_printed_claims_are_read() -> None:
    code = "try:\n    f()\nexcept ValueError as err:\n    print(err)  # `fit` found a null ...\n"
    assert printed_claims(code) == ["`fit` found a null"]
    readme = [b for b in BLOCKS if b.path.name == "README.md" and printed_claims(b.code)]
    assert readme, "the README's pandas block claims what it prints"
