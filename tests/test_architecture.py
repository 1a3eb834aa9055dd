"""The source tree keeps its architecture (see ARCHITECTURE.md).

* Behaviour never branches on the public method's name (``caller`` is for messages only:
  the request's :class:`fitpipe.schemas.Mode` decides) nor on an adapter's registered name
  (sources declare capabilities instead).
* Imports flow one way between packages, and no module imports another package's private
  names.
* A package is used through its face: a module imports another package's ``__init__``
  (``from fitpipe.pipeline import take_rows``), never its modules
  (``fitpipe.pipeline.arrays``); modules of one package, its subpackages included, import
  each other freely.
* Modules stay under :data:`MAX_MODULE_LINES` lines: one that grows past it is split along
  a seam (one concern per module).
* Function and method bodies stay within :data:`MAX_FUNCTION_LINES` lines (docstring not
  counted): one that grows past it is split at a natural seam into helpers.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "fitpipe"

#: Packages from the bottom up: a package imports only from packages at its rank or below.
RANKS = {
    "errors": 0,
    "limits": 0,
    "seeds": 0,
    "schemas": 1,
    "columnar": 2,
    "adapters": 3,
    "pipeline": 4,
    "training": 5,
    "cli": 6,
    "testing": 6,
}

#: The most lines a module of ``src/fitpipe`` may have (the style rule: under 500).
MAX_MODULE_LINES = 499

#: The most lines a function or method body may span, its docstring not counted.
MAX_FUNCTION_LINES = 50

#: Code that branches on a caller string or on an adapter's name.
FORBIDDEN = {
    "branch on the caller string": re.compile(
        r"\bcaller\s*(==|!=)|\bcaller\.(startswith|endswith)\(|\bcaller\s+(not\s+)?in\b"
    ),
    "branch on an adapter's name": re.compile(
        r"\badapter\.name\s*(==|!=)|\badapter\.name\s+(not\s+)?in\b|\.adapter\s*(==|!=)"
        r"|\.adapter\s+(not\s+)?in\b"
    ),
    "look an adapter up by name": re.compile(r"\bregistry\[[\"']"),
}


def _modules() -> list[pathlib.Path]:
    return sorted(SRC.rglob("*.py"))


def _package(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0].removesuffix(".py")


def _imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every ``fitpipe`` import in the file (names: for ``from``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return [(module, names) for module, names in found if module.split(".")[0] == "fitpipe"]


def _code_lines(path: pathlib.Path) -> list[tuple[int, str]]:
    """The file's lines without comments and assertions (which check, never branch)."""
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
    return [
        (number, line.split("#", 1)[0])
        for number, line in lines
        if not line.strip().startswith("assert ")
    ]


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_no_behaviour_keyed_on_strings_meant_for_messages(rule: str) -> None:
    pattern = FORBIDDEN[rule]
    hits = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in _modules()
        for number, line in _code_lines(path)
        if pattern.search(line)
    ]
    assert not hits, f"code must not {rule}:\n" + "\n".join(hits)


def test_every_package_has_a_rank() -> None:
    packages = {_package(path) for path in _modules()} - {"__init__"}
    assert packages <= set(RANKS), packages - set(RANKS)


def test_imports_flow_one_way() -> None:
    wrong = []
    for path in _modules():
        own = _package(path)
        if own == "__init__":
            continue
        for module, _ in _imports(path):
            parts = module.split(".")
            if len(parts) < 2 or parts[1] == own:
                continue
            if RANKS[parts[1]] > RANKS[own]:
                wrong.append(f"{path.relative_to(SRC)} ({own}) imports {module}")
    assert not wrong, "imports flow up the layers:\n" + "\n".join(wrong)


def test_no_private_names_of_other_packages() -> None:
    wrong = []
    for path in _modules():
        own = _package(path)
        for module, names in _imports(path):
            parts = module.split(".")
            if len(parts) > 1 and parts[1] == own:
                continue
            private = [n for n in names if n.startswith("_") and not n.endswith("__")]
            private += [p for p in parts if p.startswith("_") and p != "__init__"]
            if private:
                wrong.append(f"{path.relative_to(SRC)} imports {private} from {module}")
    assert not wrong, "private names stay in their package:\n" + "\n".join(wrong)


def _submodule(package: str, name: str) -> bool:
    """``name`` is a module of ``package`` that its ``__init__`` does not export as a name."""
    folder = SRC / package
    if not folder.is_dir():  # a package of one module (errors, limits)
        return False
    face = (folder / "__init__.py").read_text(encoding="utf-8")
    exported = re.search(rf"__all__ = \[[^\]]*[\"']{re.escape(name)}[\"']", face)
    exists = (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()
    return exists and not exported


def test_other_packages_are_imported_through_their_face() -> None:
    wrong = []
    for path in _modules():
        own = _package(path)
        if own == "__init__":  # the library's own face gathers the packages' faces
            continue
        where = str(path.relative_to(SRC))
        for module, names in _imports(path):
            parts = module.split(".")
            if len(parts) > 2 and parts[1] != own:
                wrong.append(f"{where} imports {module}: import {'.'.join(parts[:2])}")
            elif len(parts) == 2 and parts[1] != own:
                modules = [n for n in names if _submodule(parts[1], n)]
                wrong += [f"{where} imports the module {module}.{n}" for n in modules]
    assert not wrong, "packages are imported through their __init__:\n" + "\n".join(wrong)


def test_the_no_autograph_alias_has_one_home() -> None:
    alias = re.compile(r"=\s*tf\.autograph\.experimental\.do_not_convert\b")
    homes = [
        str(path.relative_to(SRC))
        for path in _modules()
        for _, line in _code_lines(path)
        if alias.search(line)
    ]
    assert homes == ["adapters/batches.py"], homes


def test_modules_stay_under_the_size_limit() -> None:
    long = [
        f"{path.relative_to(SRC)}: {lines} lines"
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, (
        f"modules over {MAX_MODULE_LINES} lines (split each along a seam):\n" + "\n".join(long)
    )


def _body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the body's first statement after the docstring to its last statement's end."""
    body = function.body
    if ast.get_docstring(function, clean=False) is not None:
        body = body[1:]
    if not body:
        return 0
    last = body[-1].end_lineno or body[-1].lineno
    return last - body[0].lineno + 1


def test_functions_stay_under_the_length_limit() -> None:
    long = [
        f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {lines} lines"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (lines := _body_lines(node)) > MAX_FUNCTION_LINES
    ]
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines (split each at a seam):\n" + "\n".join(long)
    )
