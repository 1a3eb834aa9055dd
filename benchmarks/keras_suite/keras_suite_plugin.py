"""A pytest plugin that runs Keras' own tests with the training methods routed through fitpipe.

Loaded with ``-p keras_suite_plugin`` (this folder on ``PYTHONPATH``) when pytest runs test
files of the installed Keras (``keras/src/...``). It always registers the markers Keras'
test suite declares in its own ``conftest.py`` (which the installed package does not ship)
and gives every test a time limit. With ``KERAS_SUITE_ROUTE=fitpipe`` it also replaces
``keras.Model.compile``, ``fit``, ``evaluate``, ``predict``, ``train_on_batch``,
``test_on_batch`` and ``predict_on_batch`` by functions calling the same method of the
model's ``fitpipe.Trainer`` (one per model, cached), so every model the tests build, of
whatever class, trains through fitpipe.

``compile`` goes through ``fitpipe.Trainer.compile`` with the arguments the test gave; fitpipe
then compiles the Keras side itself, by calling ``model.compile`` again: that inner call
(recognised by a thread-local flag) reaches Keras' own ``compile``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

#: The methods routed through ``fitpipe.Trainer`` (``compile`` apart, handled on its own).
ROUTED = (
    "fit",
    "evaluate",
    "predict",
    "train_on_batch",
    "test_on_batch",
    "predict_on_batch",
)

#: Seconds a test may run before it fails (a hang must not stop the whole run).
TIME_LIMIT = int(os.environ.get("KERAS_SUITE_TIME_LIMIT", "300"))

_LOCAL = threading.local()
_TRAINERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: Calls of the current test: routed through fitpipe, or run by Keras (no keras.Model).
_TEST_CALLS: dict[str, int] = {"routed": 0, "unrouted": 0}
#: How many calls each routed method received (a check that routing happened).
CALLS: dict[str, int] = {}


def routing() -> bool:
    """Whether this run routes the training methods through fitpipe."""
    return os.environ.get("KERAS_SUITE_ROUTE", "") == "fitpipe"


@contextlib.contextmanager
def _inside_fitpipe() -> Iterator[None]:
    previous = getattr(_LOCAL, "inside", False)
    _LOCAL.inside = True
    try:
        yield
    finally:
        _LOCAL.inside = previous


def trainer_for(model: Any) -> Any:
    """The model's ``fitpipe.Trainer``, made once per model.

    Args:
        model: A ``keras.Model``.

    Returns:
        The cached ``fitpipe.Trainer`` wrapping ``model``.

    """
    import fitpipe

    trainer = _TRAINERS.get(model)
    if trainer is None:
        trainer = _TRAINERS[model] = fitpipe.Trainer(model)
    return trainer


def _routed_compile(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_LOCAL, "inside", False):  # fitpipe compiling the Keras side
            return original(self, *args, **kwargs)
        if not _is_model(self):  # a Keras trainer that is no keras.Model: Keras' own
            _count_unrouted()
            return original(self, *args, **kwargs)
        CALLS["compile"] = CALLS.get("compile", 0) + 1
        _TEST_CALLS["routed"] += 1
        bound = signature.bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        with _inside_fitpipe():
            return trainer_for(self).compile(**arguments)

    return compile


def _routed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_LOCAL, "inside", False):
            return original(self, *args, **kwargs)
        CALLS[name] = CALLS.get(name, 0) + 1
        _TEST_CALLS["routed"] += 1
        with _inside_fitpipe():
            return getattr(trainer_for(self), name)(*args, **kwargs)

    return method


def _is_model(obj: Any) -> bool:
    import keras

    return isinstance(obj, keras.Model)


def _count_unrouted() -> None:
    _TEST_CALLS["unrouted"] += 1


def _unrouted(original: Callable[..., Any]) -> Callable[..., Any]:
    """Keras' own method, counted when called on a trainer that is no ``keras.Model``."""

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(_LOCAL, "inside", False) and not _is_model(self):
            _count_unrouted()
        return original(self, *args, **kwargs)

    return method


def install() -> None:
    """Replaces the training methods of ``keras.Model`` by fitpipe's (once per process)."""
    import keras

    if getattr(keras.Model, "_keras_suite_routed", False):
        return
    # ``compile`` is replaced on the class that defines it (Keras' base trainer), not on
    # ``keras.Model``: Keras skips ``compile`` when loading a model whose class overrides it
    # (``self.__class__.compile != Trainer.compile``).
    owner = next(cls for cls in keras.Model.__mro__ if "compile" in vars(cls))
    owner.compile = _routed_compile(owner.compile)
    for name in ROUTED:
        # Keras' tests also train trainers that are no keras.Model (trainer_test's
        # ExampleModel mixes Keras' Trainer into a Dense layer): fitpipe.Trainer takes only
        # models, so those run on Keras, counted per test as "unrouted".
        defining = next(cls for cls in keras.Model.__mro__[1:] if name in vars(cls))
        setattr(defining, name, _unrouted(getattr(defining, name)))
        setattr(keras.Model, name, _routed(name, getattr(defining, name)))
    keras.Model._keras_suite_routed = True


def pytest_configure(config: pytest.Config) -> None:
    """Declares Keras' markers and, when routing, installs fitpipe's methods.

    Args:
        config: The pytest configuration.

    """
    config.addinivalue_line("markers", "requires_trainable_backend: needs a training backend")
    config.addinivalue_line("markers", "multi_device: needs several devices")
    if routing():
        install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips the tests that need several devices (this machine has one), as Keras does.

    Args:
        config: The pytest configuration.
        items: The collected tests.

    """
    skip = pytest.mark.skip(reason="Requires multiple devices")
    for item in items:
        if "multi_device" in item.keywords:
            item.add_marker(skip)


class TimeLimitError(Exception):
    """A test ran past ``KERAS_SUITE_TIME_LIMIT`` seconds."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeLimitError(f"the test ran past {TIME_LIMIT} s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fails a test that runs past the time limit; records its routed and unrouted calls.

    Args:
        item: The test.

    """
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(TIME_LIMIT)
    _TEST_CALLS.update(routed=0, unrouted=0)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if routing():  # in the JUnit XML: which tests fitpipe ran, and which Keras ran
            item.user_properties.extend(sorted(_TEST_CALLS.items()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Prints how many calls each routed method received.

    Args:
        terminalreporter: pytest's terminal reporter.

    """
    if routing():
        counts = ", ".join(f"{name}={count}" for name, count in sorted(CALLS.items()))
        terminalreporter.write_line(f"keras_suite: calls routed through fitpipe: {counts}")
