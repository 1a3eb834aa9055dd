"""Fixtures of the CLI tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_project import make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with ``data/``, ``factory.py`` and ``spec.toml``."""
    return make_project(tmp_path)


@pytest.fixture
def write_spec(project: Path) -> Callable[[str], Path]:
    """Returns ``write(text)``: writes a spec (dedented) into the project and returns its path."""

    def write(text: str, name: str = "bad.toml") -> Path:
        path = project / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
