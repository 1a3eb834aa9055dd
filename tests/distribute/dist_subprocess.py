"""Runs a helper script of this folder in a fresh Python process, with a hard timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fitpipe

HERE = Path(__file__).resolve().parent


def environment(**extra: str) -> dict[str, str]:
    """This process's environment, with the fitpipe under test and this folder importable."""
    src = str(Path(fitpipe.__file__).resolve().parents[1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE), env.get("PYTHONPATH", "")])
    return env


def start(script: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    """Starts ``script`` (a file of this folder) with ``args``; stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        env=environment(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(process: subprocess.Popen[str], timeout: float) -> Any:
    """Waits for the process (killed after ``timeout`` s) and parses its ``RESULT`` line."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"timed out after {timeout}s:\n{err[-3000:]}") from None
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and lines, f"exit {process.returncode}:\n{err[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])
