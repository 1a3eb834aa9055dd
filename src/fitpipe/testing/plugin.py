"""A pytest plugin that loads fitpipe's Hypothesis profile before tests are collected.

Enable it with ``pytest -p fitpipe.testing.plugin``, or with
``pytest_plugins = ["fitpipe.testing.plugin"]`` in a root ``conftest.py``. The profile is
the one named by ``FITPIPE_HYPOTHESIS_PROFILE`` (``ci`` or ``dev``, default ``dev``); see
:mod:`fitpipe.testing.profiles`.
"""

from __future__ import annotations

from typing import Any

from fitpipe.testing.profiles import load_profile

__all__ = ["pytest_configure", "pytest_report_header"]


def pytest_configure(config: Any) -> None:
    """Loads the profile named by ``FITPIPE_HYPOTHESIS_PROFILE``.

    Args:
        config: The pytest configuration (unused).

    """
    load_profile()


def pytest_report_header(config: Any) -> str:
    """Names the loaded profile in pytest's header.

    Args:
        config: The pytest configuration (unused).

    Returns:
        The header line.

    """
    from hypothesis import settings

    return f"fitpipe hypothesis profile: {settings().max_examples} examples per property"
