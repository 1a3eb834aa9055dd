"""Shared configuration of fitpipe's test suite: logging, Hypothesis profiles, registry hygiene.

Hypothesis profiles are fitpipe's own (:mod:`fitpipe.testing.profiles`, the ones third-party
adapter suites load): ``dev`` (100 examples, the local default) and ``ci`` (15 examples).
Pick one with ``FITPIPE_HYPOTHESIS_PROFILE``.

``FITPIPE_TEST_ACCELERATOR=1`` runs the suite as if the step ran on an accelerator (a GPU):
``fitpipe.training.placement.step_device`` answers the host's device, so rows in memory are
copied "to it" for each call and the tuners time wall seconds and try XLA early, on a
machine without one (``tests/training/test_device_rows.py`` covers that path in every run).
"""

from __future__ import annotations

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Remembered XLA choices and compiled programs (``fitpipe.training.remembered``) would carry
# from one test (and one run of the suite) to the next: every test measures afresh, and
# tests/training/test_remembered.py points the folder at a temporary one.
os.environ["FITPIPE_CACHE_DIR"] = "off"

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fitpipe.testing.profiles import load_profile

load_profile()


#: Markers given by module or folder (tests of other modules carry their own). ``slow``: over
#: about 5 s on CI (several epochs, child processes, workers); ``subprocess``: starts Python
#: processes; ``distributed``: strategies, workers, the tf.data service. CI runs everything;
#: ``python3 -m pytest -m "not slow and not subprocess and not distributed"`` is the fast loop.
_MODULE_MARKS = {
    "tests/distribute/": ("slow", "distributed"),
    "tests/distribute/test_dist_mirrored.py": ("subprocess",),
    "tests/distribute/test_dist_multi_worker.py": ("subprocess",),
    "tests/reliability/test_resume.py": ("slow", "subprocess"),
    "tests/reliability/test_resume_after_backup.py": ("slow", "subprocess"),
    "tests/reliability/test_resume_grid.py": ("slow",),
    "tests/reliability/test_predict_kill.py": ("slow", "subprocess"),
    "tests/reliability/test_generator_batches.py": ("subprocess",),
    "tests/reliability/test_linear_checks.py": ("slow", "subprocess"),
    "tests/reliability/test_leaks.py": ("slow",),
    "tests/reliability/test_keras_own_suite.py": ("slow", "subprocess"),
    "tests/reliability/test_fuzz.py": ("slow",),
    "tests/pipeline/test_equivalence.py": ("slow",),
    "tests/examples/": ("slow",),
}


_FULL_AFTER = 100  # collections of the middle generation between two full ones (Python: 10)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freezes the objects of the imports and the collection out of the garbage collector.

    TensorFlow, Keras, torch and the collected tests make ~10^6 long-lived objects; every full
    collection (Python's own, and each ``gc.collect()``) walked them all again, ~0.5-2 s each.
    The objects the tests leave alive (traced functions, Keras' caches) grow the heap still:
    tests/training run in one process made 64 full collections, 83 s of its 1,183 s (up to
    9.5 s each), so Python's own full collections come after 100 younger ones, not 10.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _FULL_AFTER)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the tests of :data:`_MODULE_MARKS`, and runs the slow modules first.

    ``--dist loadfile`` hands whole modules to the workers in collection order (with
    ``--no-loadscope-reorder``; xdist's own reorder puts modules of many tests first, which
    left the longest ones, the Ray and strategy tests of three tests each, for the end while
    the other worker had finished). Slow modules first, short ones last, the two workers end
    together. The sort is stable and its key is one per module: a module's tests stay in order.
    """
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        for prefix, marks in _MODULE_MARKS.items():
            if path.startswith(prefix):
                for mark in marks:
                    item.add_marker(mark)
    items.sort(key=_start_order)


def _start_order(item: pytest.Item) -> int:
    """0 for the strategies and workers, 1 for the other slow or subprocess modules, else 2."""
    path = item.nodeid.split("::", 1)[0]
    marks = {m for prefix, ms in _MODULE_MARKS.items() if path.startswith(prefix) for m in ms}
    if "distributed" in marks:
        return 0
    return 1 if marks & {"slow", "subprocess"} else 2


@pytest.fixture
def clean_registry() -> Iterator[Callable[[str], None]]:
    """Unregisters, after the test, every adapter the test registered.

    Yields:
        ``track(name)``: optional, to name adapters registered in ways the snapshot could miss
        (the fixture also removes every name that was not registered before the test).
    """
    from fitpipe.adapters import registry

    before = set(registry)
    tracked: set[str] = set()

    def track(name: str) -> None:
        tracked.add(name)

    yield track
    for name in (set(registry) - before) | (tracked - before):
        if name in registry:
            registry.unregister(name)
    assert set(registry) == before


@pytest.fixture
def seeded() -> Callable[[int], Any]:
    """Returns ``seed(s)``: ``keras.utils.set_random_seed`` (Python, NumPy and TensorFlow)."""
    import keras

    return keras.utils.set_random_seed


@pytest.fixture(autouse=os.environ.get("FITPIPE_TEST_ACCELERATOR") == "1")
def host_as_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes the host stand in for an accelerator (see the module's docstring)."""
    from fitpipe.training import placement

    host = "/job:localhost/replica:0/task:0/device:CPU:0"
    monkeypatch.setattr(placement, "step_device", lambda: host)
