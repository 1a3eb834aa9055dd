"""Stands in for the ``conftest`` module of Keras' repository, which some Keras tests import.

The installed Keras package ships its tests but not the repository's ``conftest.py``; tests
such as ``callbacks/remote_monitor_test.py`` do ``from conftest import skip_if_backend``.
run.py puts this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import pytest


def skip_if_backend(given_backend: str, reason: str) -> pytest.MarkDecorator:
    """A mark skipping the test on the ``given_backend`` Keras backend.

    Args:
        given_backend: A Keras backend name (``"jax"``, ``"numpy"``, ...).
        reason: Why the test is skipped there.

    Returns:
        The ``skipif`` mark.

    """
    from keras import backend

    return pytest.mark.skipif(backend.backend() == given_backend, reason=reason)
