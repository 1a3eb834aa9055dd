"""``import fitpipe`` as a library: its names at once (for ``load_model``); a clean ``dir``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fitpipe

SRC = str(Path(fitpipe.__file__).resolve().parents[1])

_MOD = """
import sys
import fitpipe
print("EAGER=" + str("Sequential" in vars(fitpipe)))
"""


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(cwd)])}
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_user_package_run_with_dash_m_gets_fitpipe_names_at_once(tmp_path: Path) -> None:
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("import fitpipe  # noqa: F401\n")
    (package / "mod.py").write_text(_MOD)
    assert "EAGER=True" in _run(["-m", "userpkg.mod"], tmp_path)
    assert "EAGER=True" in _run([str(package / "mod.py")], tmp_path)


def test_dir_lists_the_public_names_and_subpackages() -> None:
    names = {name for name in dir(fitpipe) if not name.startswith("__")}
    subpackages = {"adapters", "cli", "pipeline", "schemas", "testing", "training"}
    public = {name for name in fitpipe.__all__ if not name.startswith("__")}
    assert names == public | subpackages
    assert not {"Any", "TYPE_CHECKING", "annotations"} & names
    for name in names:
        assert getattr(fitpipe, name) is not None
