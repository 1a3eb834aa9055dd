"""Counts the tests of fitpipe's own suite that compare a run with Keras (the differential suite).

Usage (from the repository root; collects the suite, runs no test)::

    PYTHONPATH=src python benchmarks/keras_suite/count_differential.py [TESTS_DIR]

A test is *differential* when its function calls the differential kit of
:mod:`fitpipe.testing.keras_diff` (``make_twins``, ``compile_both``, ``run_both``,
``assert_matches_keras``, ``assert_evaluate_close``, ``assert_predict_close``), directly or
through functions of its own module that do. Each collected item counts (every
parametrization and fixture instance), as pytest collects it with ``--collect-only``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

#: The kit's entry points that train or compare a Keras model and its fitpipe twin.
KIT = frozenset(
    {
        "make_twins",
        "compile_both",
        "run_both",
        "assert_matches_keras",
        "assert_evaluate_close",
        "assert_predict_close",
    }
)


def _names(node: ast.AST) -> set[str]:
    """Names and attribute names used in ``node``."""
    found: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def differential_functions(path: Path) -> set[str]:
    """Qualified names (``f`` or ``Class.f``) of a module's functions that reach the kit."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = _names(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    functions[f"{node.name}.{item.name}"] = _names(item)
    reaching = {name for name, used in functions.items() if used & KIT}
    while True:  # functions calling functions that reach the kit
        more = {
            name
            for name, used in functions.items()
            if name not in reaching and used & {r.rsplit(".", 1)[-1] for r in reaching}
        }
        if not more:
            return reaching
        reaching |= more


def main(argv: list[str]) -> int:
    """Prints the count of differential tests and of all tests collected."""
    tests = Path(argv[0]) if argv else Path("tests")
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", str(tests)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    ids = [line for line in listing.splitlines() if "::" in line]
    root = tests.resolve().parent
    cache: dict[Path, set[str]] = {}
    counted = 0
    for test_id in ids:
        file, *parts = test_id.split("::")
        name = ".".join(part.split("[", 1)[0] for part in parts)
        path = (root / file).resolve()
        if path not in cache:
            cache[path] = differential_functions(path)
        counted += name in cache[path]
    print(f"differential tests: {counted} of {len(ids)} collected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
