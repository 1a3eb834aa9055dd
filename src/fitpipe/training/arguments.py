"""Checks of the training methods' scalar arguments, each with the shared error wording."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from typing import Any

import keras
import numpy as np

from fitpipe.errors import (
    FitpipeTypeError,
    FitpipeValueError,
    FitpipeWarning,
    NotCompiledError,
    message,
    warn,
)
from fitpipe.pipeline import INT64_BOUND, Pipeline
from fitpipe.training.keywords import argument_names, unknown_keywords_error

__all__ = [
    "check_bool",
    "check_callbacks",
    "check_epochs",
    "check_jit_compile",
    "check_steps",
    "check_steps_per_execution",
    "check_validation_freq",
    "check_verbose",
    "limit_epochs",
    "limit_steps",
    "no_extra_arguments",
    "require_compiled",
    "require_finite",
    "should_validate",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bad(caller: str, name: str, expected: str, example: str, value: Any) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            caller, f"got an invalid `{name}`", expected, f"Pass e.g. `{example}`", **{name: value}
        )
    )


def check_steps(value: Any, name: str, caller: str, allow_forever: bool = False) -> int | None:
    """Checks a step count: None or a positive int (or -1, meaning "forever", if allowed)."""
    if value is None:
        return None
    if _is_int(value) and (0 < value < INT64_BOUND or (allow_forever and value == -1)):
        return int(value)
    if allow_forever:
        expected = f"`{name}` is None, a positive integer below 2**63, or -1 (run until "
        expected += "stopped, for inputs that never end)"
    else:
        expected = f"`{name}` is None or a positive integer below 2**63"
    raise _bad(caller, name, expected, f"{name}=100", value)


def check_epochs(epochs: Any, initial_epoch: Any) -> tuple[int, int]:
    """Checks ``epochs`` (the final epoch) and ``initial_epoch``."""
    if not _is_int(epochs) or epochs < 0:
        raise _bad(
            "fit",
            "epochs",
            "`epochs` is a non-negative integer: the index of the final epoch",
            "epochs=10",
            epochs,
        )
    if not _is_int(initial_epoch) or initial_epoch < 0:
        raise _bad(
            "fit",
            "initial_epoch",
            "`initial_epoch` is a non-negative integer",
            "initial_epoch=0",
            initial_epoch,
        )
    if epochs < initial_epoch:
        raise FitpipeValueError(
            message(
                "fit",
                "got `epochs` smaller than `initial_epoch`",
                "`epochs` is the final epoch, not a count: training runs epochs "
                "`initial_epoch` to `epochs - 1`",
                f"Pass `epochs` of at least {initial_epoch}, e.g. "
                f"`epochs={initial_epoch + 1}` to run one more epoch",
                epochs=epochs,
                initial_epoch=initial_epoch,
            )
        )
    return int(epochs), int(initial_epoch)


def check_verbose(verbose: Any, caller: str) -> int | str:
    """Checks ``verbose``: ``"auto"``, 0, 1 or 2 (False and True are 0 and 1, as in Keras)."""
    if isinstance(verbose, bool):
        return int(verbose)
    if verbose == "auto" or (_is_int(verbose) and verbose in (0, 1, 2)):
        return verbose
    raise _bad(
        caller,
        "verbose",
        '`verbose` is "auto", 0 (silent), 1 (progress bar) or 2 (one line per epoch)',
        "verbose=2",
        verbose,
    )


def check_validation_freq(freq: Any) -> int | Container[int]:
    """Checks ``validation_freq``: a positive int, or a container of 1-based epoch numbers."""
    if _is_int(freq) and freq > 0:
        return int(freq)
    if isinstance(freq, Iterable) and not isinstance(freq, (str, bytes, Mapping)):
        epochs = list(freq)
        if epochs and all(_is_int(e) and e > 0 for e in epochs):
            return frozenset(int(e) for e in epochs)
    raise _bad(
        "fit",
        "validation_freq",
        "`validation_freq` is a positive integer (validate "
        "every N epochs) or a list of 1-based epoch numbers",
        "validation_freq=[1, 5]",
        freq,
    )


def should_validate(epoch: int, freq: int | Container[int]) -> bool:
    """Tells whether to validate after the 0-based ``epoch``."""
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    return epoch + 1 in freq


def check_steps_per_execution(value: Any) -> int | str:
    """Checks ``steps_per_execution``: a positive int or ``"auto"``."""
    if value == "auto" or (_is_int(value) and value > 0):
        return value
    raise _bad(
        "compile",
        "steps_per_execution",
        '`steps_per_execution` is a positive integer or "auto" (tuned while training)',
        "steps_per_execution=32",
        value,
    )


def check_callbacks(callbacks: Any, caller: str) -> list[Any] | keras.callbacks.CallbackList:
    """Checks ``callbacks``: None, a CallbackList, or a list of ``keras.callbacks.Callback``.

    Lists and tuples nested in the list are flattened, as Keras' ``CallbackList`` flattens
    them (``callbacks=[common, checkpoint]`` with ``common`` a list of callbacks).
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise _not_callbacks(caller, "`callbacks` is not a list", callbacks=callbacks)
    flat: list[Any] = []
    for where, item in _flattened(callbacks, "callbacks"):
        if isinstance(item, type) and issubclass(item, keras.callbacks.Callback):
            raise _not_callbacks(
                caller,
                f"`{where}` is a callback class, not an instance",
                **{where: item},
                fix=f"Instantiate it: `{item.__name__}()` (with its arguments)",
            )
        if not isinstance(item, keras.callbacks.Callback):
            raise _not_callbacks(caller, f"`{where}` is not a Keras callback", **{where: item})
        flat.append(item)
    return flat


def _flattened(items: list[Any] | tuple[Any, ...], name: str) -> Iterator[tuple[str, Any]]:
    """``(name[i][j]..., item)`` of the items of nested lists and tuples, in order."""
    for i, item in enumerate(items):
        if isinstance(item, (list, tuple)):
            yield from _flattened(item, f"{name}[{i}]")
        else:
            yield f"{name}[{i}]", item


def _not_callbacks(
    caller: str,
    what: str,
    fix: str = "Wrap functions in `keras.callbacks.LambdaCallback`",
    **received: Any,
) -> FitpipeTypeError:
    return FitpipeTypeError(
        message(
            caller,
            f"got something other than Keras callbacks in `callbacks`: {what}",
            "`callbacks` is a list of `keras.callbacks.Callback` instances",
            fix,
            **received,
        )
    )


def check_bool(value: Any, name: str, caller: str) -> bool:
    """Checks a boolean argument (Python or NumPy bool); returns it as a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise FitpipeTypeError(
            message(
                caller,
                f"got a non-boolean `{name}`",
                f"`{name}` is True or False",
                "Pass a bool",
                **{name: value},
            )
        )
    return bool(value)


def check_jit_compile(value: Any) -> bool | str:
    """Checks ``compile``'s ``jit_compile``: a bool (Python or NumPy) or ``"auto"``.

    Keras takes any value, and any truthy one (``"no"``, ``"false"``, 2) turns XLA on.
    """
    if isinstance(value, str) and value == "auto":
        return "auto"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise FitpipeTypeError(
        message(
            "compile",
            "got an invalid `jit_compile`",
            '`jit_compile` is True, False, or "auto" (XLA kept where it measures faster)',
            'Pass a bool or "auto"',
            jit_compile=value,
        )
    )


def no_extra_arguments(kwargs: dict[str, Any], method: Callable[..., Any]) -> None:
    """Rejects keyword arguments ``method`` does not take (a ``ValueError``, as Keras').

    The message names the arguments ``method`` takes, and the closest to each unknown one.
    """
    if kwargs:
        known = argument_names(method)
        raise unknown_keywords_error(kwargs, known, method.__name__, FitpipeValueError)


def require_compiled(model: keras.Model, caller: str) -> None:
    """Raises ``NotCompiledError`` when ``model`` is not compiled (``caller`` trains or tests)."""
    if not model.compiled:
        raise NotCompiledError(
            message(
                caller,
                "needs a compiled model",
                "`compile` sets the optimizer, loss and metrics that training and evaluation use",
                f"Call `compile(optimizer=..., loss=...)` before `{caller}`",
            )
        )


def require_finite(
    pipeline: Pipeline, steps: int | None, caller: str, name: str, x: Any, label: str = "x"
) -> None:
    """Rejects an input that never ends when no step count says where an epoch ends.

    ``x`` is the input as the user gave it, shown after ``Received:`` as ``label``.
    """
    if not pipeline.finite and steps is None and not keras.config.max_steps_per_epoch():
        raise FitpipeValueError(
            message(
                caller,
                "got an input that never ends without a step count",
                f"An infinitely repeating input needs `{name}` to know where an epoch ends",
                f"Pass `{name}=N`"
                + (" (or -1 to run until stopped)" if name == "steps_per_epoch" else ""),
                **{label: x},
            )
        )


def limit_epochs(epochs: int) -> int:
    """``epochs``, capped by ``keras.config.set_max_epochs`` (or ``KERAS_MAX_EPOCHS``)."""
    most = keras.config.max_epochs()
    if most and most < epochs:
        warn(
            f"Limiting epochs to {most} (`keras.config.set_max_epochs`)",
            FitpipeWarning,
        )
        return int(most)
    return epochs


def limit_steps(steps: int | None, name: str) -> int | None:
    """A step count capped by ``keras.config.set_max_steps_per_epoch``.

    As in Keras, a cap on an epoch without a step count makes it the step count (epochs
    then read on where the last one stopped). Unlike Keras, the batch size of array inputs
    stays what it was: Keras' documentation says the setting caps the steps of an epoch,
    and Keras 3.15 also shrinks the default batch size to spread the rows over those steps.
    """
    most = keras.config.max_steps_per_epoch()
    if most and (steps is None or steps == -1 or most < steps):
        warn(
            f"Limiting {name} to {most} (`keras.config.set_max_steps_per_epoch`)",
            FitpipeWarning,
        )
        return int(most)
    return steps
