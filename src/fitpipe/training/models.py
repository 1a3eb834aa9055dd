"""``fitpipe.Model`` and ``fitpipe.Sequential``: Keras models whose training methods are fitpipe's.

Switching existing code is one import: ``from fitpipe import Model, Sequential``. The models
are registered Keras serializables, so ``model.save`` and ``keras.models.load_model`` work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import keras

from fitpipe.training.state import state_of
from fitpipe.training.trainer import Trainer

__all__ = ["FitpipeMethods", "FunctionalModel", "Model", "Sequential"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _forwarded(
    method: Callable[Concatenate[Trainer, _P], _R],
) -> Callable[Concatenate[Any, _P], _R]:
    """A model method running the :class:`Trainer` method ``method`` on the model.

    It has the Trainer method's signature (for ``help``, ``inspect`` and type checkers) and
    docstring.
    """
    name = method.__name__

    def forward(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return getattr(Trainer(self), name)(*args, **kwargs)

    forward.__name__ = name
    forward.__qualname__ = f"FitpipeMethods.{name}"
    forward.__doc__ = method.__doc__
    forward.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return forward


class FitpipeMethods:
    """Mixin routing the Keras training methods of a ``keras.Model`` to :class:`Trainer`.

    Each method takes the arguments of the :class:`Trainer` method of its name (those of
    ``keras.Model``'s, and fitpipe's own: ``steps_per_execution="auto"``, ``schema``...).
    """

    compile = _forwarded(Trainer.compile)
    fit = _forwarded(Trainer.fit)
    evaluate = _forwarded(Trainer.evaluate)
    predict = _forwarded(Trainer.predict)
    train_on_batch = _forwarded(Trainer.train_on_batch)
    test_on_batch = _forwarded(Trainer.test_on_batch)
    predict_on_batch = _forwarded(Trainer.predict_on_batch)

    def compile_from_config(self, config: Any) -> None:
        """Re-compiles a loaded model (Keras skips models whose ``compile`` is overridden).

        Args:
            config: The compile arguments saved with the model.

        """
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "built", False) and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)  # type: ignore[attr-defined]

    def get_compile_config(self) -> Any:
        """The compile arguments, with fitpipe's ``steps_per_execution`` and ``jit_compile``.

        Keras saves the ``jit_compile`` it resolved (``"auto"`` is False on a CPU); fitpipe's
        ``"auto"`` (measure XLA) is kept, as is ``steps_per_execution="auto"``.
        """
        config = super().get_compile_config()  # type: ignore[misc]
        state = state_of(self)
        if isinstance(config, dict) and state.steps_per_execution is not None:
            config["steps_per_execution"] = state.steps_per_execution
        if isinstance(config, dict) and state.jit_compile is not None:
            config["jit_compile"] = state.jit_compile
        return config


def _is_functional_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return (
        len(args) == 2
        or (len(args) == 1 and "outputs" in kwargs)
        or ("inputs" in kwargs and "outputs" in kwargs)
    )


if TYPE_CHECKING:
    from keras import Model as _Functional
else:
    #: Keras' functional model class, what ``keras.Model(inputs, outputs)`` makes. Keras
    #: exports no name for it; ``keras.Model.__new__`` called with functional arguments
    #: returns a bare instance of it (nothing built, no name taken: well under 1 ms).
    _Functional = type(keras.Model.__new__(keras.Model, None, None))


def _make_functional(cls: type) -> type:
    """Puts :class:`FunctionalModel` in place of :class:`Model` among the bases of ``cls``.

    As Keras' ``inject_functional_model_class`` does for a ``keras.Model`` subclass called
    with ``(inputs, outputs)``, but stopping at ``fitpipe.Model``: only the user's classes
    change (Keras' own would rewrite ``fitpipe.Model``'s bases, turning every later
    subclass of it functional).
    """
    if cls is Model:
        return FunctionalModel
    if not issubclass(cls, Model) or issubclass(cls, FunctionalModel):
        return cls
    cls.__bases__ = tuple(_make_functional(base) for base in cls.__bases__)
    return cls


@keras.saving.register_keras_serializable(package="fitpipe")
class Model(FitpipeMethods, keras.Model):
    """A ``keras.Model`` (functional or subclassed) trained by fitpipe.

    Called with ``(inputs, outputs)`` it is a :class:`FunctionalModel`; a subclass called so
    (or calling ``super().__init__(inputs, outputs)``) becomes a subclass of it, as a
    ``keras.Model`` subclass becomes functional in Keras.

    Args:
        *args: As ``keras.Model``'s: ``(inputs, outputs)`` for a functional model, none for
            a subclassed one.
        **kwargs: As ``keras.Model``'s (``inputs``, ``outputs``, ``name``, ``trainable``...).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        if cls is Model and _is_functional_call(args, kwargs):
            return keras.Model.__new__(FunctionalModel, *args, **kwargs)
        return keras.Model.__new__(cls, *args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _is_functional_call(args, kwargs) and not isinstance(self, _Functional):
            _make_functional(type(self))
            _Functional.__init__(self, *args, **kwargs)
        else:
            super().__init__(*args, **kwargs)


@keras.saving.register_keras_serializable(package="fitpipe")
class FunctionalModel(Model, _Functional):
    """``fitpipe.Model``'s functional flavour: what ``fitpipe.Model(inputs, outputs)`` makes.

    A subclass of :class:`Model` and of Keras' functional model; defined once at import (and
    so found by ``keras.models.load_model`` and ``pickle`` in any process). Unnamed, it is
    named as Keras names ``keras.Model(inputs, outputs)``: ``functional``, ``functional_1``...
    (not after this class).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        named = len(args) > 2 or kwargs.get("name") is not None
        if type(self) is FunctionalModel and not named:
            kwargs["name"] = _keras_default_name("functional")
        super().__init__(*args, **kwargs)


def _keras_default_name(prefix: str) -> str:
    """The name Keras gives the next unnamed object whose class is named ``prefix``.

    Keras' own naming (``Operation.__init__``) counts names in the counter that
    ``keras.backend.get_uid`` counts in: the first is ``prefix``, the next ``prefix_1``...;
    ``keras.backend.clear_session`` starts them again.
    """
    count = keras.backend.get_uid(prefix)
    return prefix if count == 1 else f"{prefix}_{count - 1}"


@keras.saving.register_keras_serializable(package="fitpipe")
class Sequential(FitpipeMethods, keras.Sequential):
    """A ``keras.Sequential`` trained by fitpipe."""
