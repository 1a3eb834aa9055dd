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

Keras' tests also train Keras trainers that are no ``keras.Model`` (``trainer_test.py``'s
``ExampleModel`` mixes Keras' ``Trainer`` into a ``Dense`` layer), which ``fitpipe.Trainer``
refuses. Their calls go to a harness-side twin (:func:`twin_for`): a ``keras.Model`` holding
the trainer as its one layer (the weights are the trainer's own), whose ``train_step``,
``test_step`` and ``predict_step`` are the trainer's (custom steps included), and whose
compile state (optimizer, losses, metrics, ...) the trainer shares after each ``compile``, so
what the tests read on the trainer after ``fit`` reflects the twin's run through fitpipe.
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
_TWINS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: What Keras' ``Trainer.compile`` sets on the model, shared from a twin to its trainer.
COMPILE_STATE = (
    "optimizer",
    "loss",
    "_compile_loss",
    "_compile_metrics",
    "_loss_tracker",
    "jit_compile",
    "run_eagerly",
    "steps_per_execution",
    "stop_training",
    "compiled",
    "_compile_config",
)
#: Calls of the current test routed through fitpipe, and how many of them through a twin.
_TEST_CALLS: dict[str, int] = {"routed": 0, "twinned": 0}
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


def twin_for(trainer: Any) -> Any:
    """The ``keras.Model`` twin of a Keras trainer that is no ``keras.Model``, made once.

    Args:
        trainer: An instance of Keras' ``Trainer`` that is no ``keras.Model``.

    Returns:
        A model whose one layer is ``trainer`` and whose steps are ``trainer``'s.

    """
    twin = _TWINS.get(trainer)
    if twin is None:
        twin = _TWINS[trainer] = _twin_class()(trainer)
    return twin


@functools.cache
def _twin_class() -> type:
    import keras

    class KerasTrainerTwin(keras.Model):
        """A model running a Keras trainer's layer and steps (see :func:`twin_for`)."""

        def __init__(self, trainer: Any) -> None:
            # The trainer's dtype policy: compile wraps the optimizer for mixed_float16.
            super().__init__(name=f"{trainer.name}_twin", dtype=trainer.dtype_policy)
            self.trainer = trainer  # tracked: the twin's weights are the trainer's

        def call(self, *args: Any, **kwargs: Any) -> Any:
            return self.trainer(*args, **kwargs)

        def train_step(self, data: Any) -> Any:
            return self.trainer.train_step(data)

        def test_step(self, data: Any) -> Any:
            return self.trainer.test_step(data)

        def predict_step(self, data: Any) -> Any:
            return self.trainer.predict_step(data)

        @property
        def metrics(self) -> list[Any]:
            # After compile the trainer holds the twin's compile metrics, and its own.
            if self.trainer.compiled:
                return list(self.trainer.metrics)
            return list(super().metrics)

    return KerasTrainerTwin


def _share_compile_state(twin: Any, trainer: Any) -> None:
    """Gives ``trainer`` the compile state Keras' ``compile`` gave ``twin``."""
    from keras.src.utils import tracking

    @tracking.no_automatic_dependency_tracking
    def share() -> None:
        for name in COMPILE_STATE:
            setattr(trainer, name, getattr(twin, name))
        trainer.train_function = trainer.test_function = trainer.predict_function = None
        trainer._compiled_trainable_state = {
            layer: layer.trainable for layer in trainer._flatten_layers()
        }

    share()


def _share_settings(trainer: Any, twin: Any) -> None:
    """Gives ``twin`` the trainer's ``run_eagerly`` and ``jit_compile``, which tests set."""
    from keras.src.utils import tracking

    @tracking.no_automatic_dependency_tracking
    def share() -> None:
        twin._run_eagerly = trainer._run_eagerly
        twin._jit_compile = trainer._jit_compile

    share()


def _share_run_state(twin: Any, trainer: Any) -> None:
    """Gives ``trainer`` what a call on ``twin`` changed: ``stop_training``, ``history``."""
    from keras.src.utils import tracking

    @tracking.no_automatic_dependency_tracking
    def share() -> None:
        trainer.stop_training = getattr(twin, "stop_training", False)
        if hasattr(twin, "history"):
            trainer.history = twin.history

    share()


def _routed_compile(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_LOCAL, "inside", False):  # fitpipe compiling the Keras side
            return original(self, *args, **kwargs)
        CALLS["compile"] = CALLS.get("compile", 0) + 1
        _TEST_CALLS["routed"] += 1
        bound = signature.bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        if _is_model(self):
            with _inside_fitpipe():
                return trainer_for(self).compile(**arguments)
        # A Keras trainer that is no keras.Model: its twin compiles, the trainer shares.
        _TEST_CALLS["twinned"] += 1
        twin = twin_for(self)
        with _inside_fitpipe():
            result = trainer_for(twin).compile(**arguments)
        _share_compile_state(twin, self)
        return result

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


def _routed_through_twin(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Keras' own method, routed through the twin on a trainer that is no ``keras.Model``."""

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_LOCAL, "inside", False) or _is_model(self):
            return original(self, *args, **kwargs)
        CALLS[name] = CALLS.get(name, 0) + 1
        _TEST_CALLS["routed"] += 1
        _TEST_CALLS["twinned"] += 1
        twin = twin_for(self)
        _share_settings(self, twin)
        try:
            with _inside_fitpipe():
                return getattr(trainer_for(twin), name)(*args, **kwargs)
        finally:
            _share_run_state(twin, self)

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
        # models, so those go through their twin (twin_for).
        defining = next(cls for cls in keras.Model.__mro__[1:] if name in vars(cls))
        setattr(defining, name, _routed_through_twin(name, getattr(defining, name)))
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
    """Fails a test that runs past the time limit; records its routed and twinned calls.

    Args:
        item: The test.

    """
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(TIME_LIMIT)
    _TEST_CALLS.update(routed=0, twinned=0)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if routing():  # in the JUnit XML: which tests fitpipe ran, and which through a twin
            item.user_properties.extend(sorted(_TEST_CALLS.items()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Prints how many calls each routed method received.

    Args:
        terminalreporter: pytest's terminal reporter.

    """
    if routing():
        counts = ", ".join(f"{name}={count}" for name, count in sorted(CALLS.items()))
        terminalreporter.write_line(f"keras_suite: calls routed through fitpipe: {counts}")
