"""The `test` extra installs every optional package the suite imports, so nothing is skipped."""

from __future__ import annotations

import importlib.util
import re
import sys

from doc_blocks import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Import names whose distribution is named otherwise.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml"}


def _test_requirements() -> set[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    names, todo, seen = set(), ["test"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for requirement in extras[extra]:
            if requirement.startswith("fitpipe["):
                todo.extend(e for e in requirement[8:-1].split(",") if e not in seen)
            else:
                names.add(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower())
    return names


def _skipped_imports() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("examples").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r"importorskip\(\s*[\"']([\w.]+)[\"']", text))
    return found


def test_every_importorskip_package_is_in_the_test_extra_and_installed() -> None:
    modules = _skipped_imports()
    assert "tensorboard" in modules  # the scan finds test_callbacks.py's
    requirements = _test_requirements()
    for module in sorted(modules):
        top = module.split(".")[0]
        assert _DISTRIBUTIONS.get(top, top) in requirements, f"{top} is not in the test extra"
        assert importlib.util.find_spec(top) is not None, f"{top} is not installed"


def test_the_version_is_written_once_in_pyproject() -> None:
    import fitpipe

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert fitpipe.__version__ == declared
    source = (ROOT / "src" / "fitpipe" / "__init__.py").read_text()
    assert declared not in source  # read from the installed metadata, not repeated
