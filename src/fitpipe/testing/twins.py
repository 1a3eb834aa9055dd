"""The two sides of a comparison with Keras: a model and its twin, compiled the same way.

:func:`make_twins` builds a reference model and a twin with the same initial weights;
:func:`compile_both` compiles the reference with Keras and the twin through fitpipe
(:func:`fitpipe_api`: a ``fitpipe.Trainer`` or the model's own methods). Arguments for both
sides (a :data:`KwargsSpec`) are made per side by :func:`kwargs_for_side`, with optimizers,
losses and metrics copied (:func:`fresh_copies`). :mod:`fitpipe.testing.keras_diff` trains
and compares both sides, and re-exports every name here.

Needs only Keras and NumPy (no pytest, no Hypothesis).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import keras

import fitpipe
from fitpipe.testing.assertions import assert_weights_close

__all__ = [
    "KwargsSpec",
    "Side",
    "TrainingAPI",
    "Via",
    "compile_both",
    "fitpipe_api",
    "fresh_copies",
    "kwargs_for_side",
    "make_twins",
]


#: Which side of a comparison an argument is made for.
Side = Literal["keras", "fitpipe"]
#: How the twin is trained: through ``fitpipe.Trainer`` or the model's own methods.
Via = Literal["trainer", "model"]
#: Arguments for both sides: a mapping, or a callable making one per side.
KwargsSpec = Mapping[str, Any] | Callable[[Side], Mapping[str, Any]]


class TrainingAPI(Protocol):
    """The Keras training surface shared by ``keras.Model`` and ``fitpipe.Trainer``."""

    def compile(self, *args: Any, **kwargs: Any) -> Any:
        """Configures the model for training."""
        ...

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Trains; returns a ``keras.callbacks.History``."""
        ...

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """Returns the loss and metrics."""
        ...

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Returns the model's outputs."""
        ...

    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Runs one training step."""
        ...

    def test_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Runs one evaluation step."""
        ...

    def predict_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Returns the outputs of one batch."""
        ...


def fresh_copies(value: Any) -> Any:
    """Copies the optimizers, losses and metrics in a (nested) value.

    Stateful Keras objects cannot be shared by two models: optimizers are rebuilt from their
    config, losses and metrics deep-copied. Everything else is returned as it is.

    Args:
        value: A ``compile`` or ``fit`` argument; lists, tuples and mappings are walked.

    Returns:
        An equivalent value with Keras objects of its own.

    """
    if isinstance(value, keras.optimizers.Optimizer):
        return value.__class__.from_config(value.get_config())
    if isinstance(value, (keras.losses.Loss, keras.metrics.Metric)):
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        return {k: fresh_copies(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fresh_copies(v) for v in value]
    if isinstance(value, tuple):
        return tuple(fresh_copies(v) for v in value)
    return value


def kwargs_for_side(spec: KwargsSpec | None, side: Side) -> dict[str, Any]:
    """The keyword arguments of one side.

    Args:
        spec: A mapping (copied with :func:`fresh_copies`), a callable taking the side and
            returning a mapping, or None (no arguments).
        side: ``"keras"`` or ``"fitpipe"``.

    Returns:
        A new dict.

    """
    if spec is None:
        return {}
    if callable(spec):
        return dict(spec(side))
    return {k: fresh_copies(v) for k, v in spec.items()}


def make_twins(
    build_fn: Callable[[], keras.Model],
    seed: int = 0,
    twin_build_fn: Callable[[], keras.Model] | None = None,
) -> tuple[keras.Model, keras.Model]:
    """Builds a reference model and a twin with the same initial weights.

    Args:
        build_fn: Returns a new, *built* ``keras.Model`` each call.
        seed: The seed set (``keras.utils.set_random_seed``) before each build.
        twin_build_fn: Builds the twin instead (e.g. as a ``fitpipe.Sequential``); it must
            create the same weights.

    Returns:
        ``(reference, twin)``.

    Raises:
        ValueError: When ``build_fn`` returns the same model twice.

    """
    keras.utils.set_random_seed(seed)
    reference = build_fn()
    keras.utils.set_random_seed(seed)
    twin = (twin_build_fn or build_fn)()
    if reference is twin:
        raise ValueError("the model factory must return a new model on each call")
    twin.set_weights(reference.get_weights())
    assert_weights_close(reference, twin, rtol=0.0, atol=0.0)
    return reference, twin


def fitpipe_api(model: keras.Model, via: Via = "trainer") -> TrainingAPI:
    """Returns fitpipe's training entry point for a model.

    Args:
        model: The twin.
        via: ``"trainer"``: a ``fitpipe.Trainer`` of the model; ``"model"``: the model itself
            (a ``fitpipe.Model`` or ``fitpipe.Sequential``).

    Returns:
        An object with the Keras training methods.

    """
    if via == "model":
        return model
    return fitpipe.Trainer(model)


def compile_both(
    ref: keras.Model,
    twin: keras.Model,
    compile_kwargs: KwargsSpec | None,
    via: Via = "trainer",
) -> TrainingAPI:
    """Compiles the reference with Keras and the twin through fitpipe, the same way.

    ``steps_per_execution="auto"`` (fitpipe's tuning) is given to Keras as ``1``.

    Args:
        ref: The reference model.
        twin: The twin.
        compile_kwargs: The arguments of ``compile`` (see :func:`kwargs_for_side`).
        via: How the twin is trained (see :func:`fitpipe_api`).

    Returns:
        fitpipe's entry point for the twin.

    """
    ref_kwargs = kwargs_for_side(compile_kwargs, "keras")
    if ref_kwargs.get("steps_per_execution") == "auto":
        ref_kwargs["steps_per_execution"] = 1
    ref.compile(**ref_kwargs)
    api = fitpipe_api(twin, via)
    api.compile(**kwargs_for_side(compile_kwargs, "fitpipe"))
    return api
