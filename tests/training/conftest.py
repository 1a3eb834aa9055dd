"""Shared pytest configuration for the fitpipe-vs-Keras differential suite."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # Prefer an installed fitpipe; fall back to the in-repo ``src`` layout.
    import fitpipe  # noqa: F401
except ImportError:
    _SRC = Path(__file__).resolve().parents[2] / "src"
    if (_SRC / "fitpipe").is_dir() and str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))

import keras
import tensorflow as tf

tf.get_logger().setLevel("ERROR")


@pytest.fixture(autouse=True)
def _fresh_keras_state() -> Iterator[None]:
    """Give every test a clean Keras session, a fixed seed and float32 policy.

    Yields:
        Nothing; the fixture only sets up and tears down global state.
    """
    keras.backend.clear_session(free_memory=False)  # no gc.collect: ~0.5-2 s a test
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
