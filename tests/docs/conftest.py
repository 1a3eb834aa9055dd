"""Counts the documentation blocks run, and prints the count after the test session."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_OUTCOMES: Counter[str] = Counter()
_SYNTAX_ONLY: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def _stop_services() -> Iterator[None]:
    """Stops the services placeholders started (a local S3 server) after each module."""
    yield
    from placeholders import close_services

    close_services()


def _syntax_only_ids() -> set[str]:
    """Ids of the syntax-only blocks, from the documents themselves (under pytest-xdist the
    process that prints the summary collects no tests)."""
    from doc_blocks import all_blocks

    return {block.id for block in all_blocks() if block.syntax_only}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        block = getattr(item, "callspec", None) and item.callspec.params.get("block")
        if block is not None and getattr(block, "syntax_only", None):
            _SYNTAX_ONLY.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "test_block_runs[" not in report.nodeid and "test_toml_block" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if not _SYNTAX_ONLY:
            _SYNTAX_ONLY.update(f"[{i}]" for i in _syntax_only_ids())
        syntax = report.nodeid in _SYNTAX_ONLY or any(
            report.nodeid.endswith(i) for i in _SYNTAX_ONLY if i.startswith("[")
        )
        kind = "syntax checked" if syntax else "run"
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _OUTCOMES[f"{kind}: {outcome}"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _OUTCOMES:
        return
    ran = sum(n for key, n in _OUTCOMES.items() if key.startswith("run"))
    checked = sum(n for key, n in _OUTCOMES.items() if key.startswith("syntax"))
    parts = ", ".join(
        f"{n} {key.split(': ')[1]}" for key, n in sorted(_OUTCOMES.items()) if key.startswith("run")
    )
    terminalreporter.write_line(
        f"documentation blocks: {ran} run ({parts}), {checked} syntax-checked only"
    )
