"""``fitpipe.Model`` and ``fitpipe.Sequential``: Keras models whose training methods are fitpipe's.

Switching existing code is one import: ``from fitpipe import Model, Sequential``. The models
are registered Keras serializables, so ``model.save`` and ``keras.models.load_model`` work.
"""

from __future__ import annotations

from typing import Any

import keras

from fitpipe.training.trainer import Trainer

__all__ = ["FitpipeMethods", "Model", "Sequential"]


class FitpipeMethods:
    """Mixin routing the Keras training methods of a ``keras.Model`` to :class:`Trainer`."""

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """As ``keras.Model.compile``; ``steps_per_execution`` may be ``"auto"``.

        Args:
            *args: The positional arguments of :meth:`fitpipe.Trainer.compile`, documented
                there.
            **kwargs: Its keyword arguments.

        """
        Trainer(self).compile(*args, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """As ``keras.Model.fit``, on fitpipe's pipelines.

        Args:
            *args: The positional arguments of :meth:`fitpipe.Trainer.fit`, documented
                there.
            **kwargs: Its keyword arguments.

        """
        return Trainer(self).fit(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.evaluate``.

        Args:
            *args: The positional arguments of :meth:`fitpipe.Trainer.evaluate`, documented
                there.
            **kwargs: Its keyword arguments.

        """
        return Trainer(self).evaluate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.predict``.

        Args:
            *args: The positional arguments of :meth:`fitpipe.Trainer.predict`, documented
                there.
            **kwargs: Its keyword arguments.

        """
        return Trainer(self).predict(*args, **kwargs)

    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.train_on_batch``.

        Args:
            *args: The positional arguments of :meth:`fitpipe.Trainer.train_on_batch`, documented
                there.
            **kwargs: Its keyword arguments.

        """
        return Trainer(self).train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.test_on_batch``.

        Args:
            *args: The positional arguments of :meth:`fitpipe.Trainer.test_on_batch`, documented
                there.
            **kwargs: Its keyword arguments.

        """
        return Trainer(self).test_on_batch(*args, **kwargs)

    def predict_on_batch(self, x: Any) -> Any:
        """As ``keras.Model.predict_on_batch``.

        Args:
            x: The batch's inputs (see :meth:`fitpipe.Trainer.predict_on_batch`).

        """
        return Trainer(self).predict_on_batch(x)

    def compile_from_config(self, config: Any) -> None:
        """Re-compiles a loaded model (Keras skips models whose ``compile`` is overridden).

        Args:
            config: The compile arguments saved with the model.

        """
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "built", False) and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)  # type: ignore[attr-defined]

    def get_compile_config(self) -> Any:
        """The compile arguments, with fitpipe's ``steps_per_execution`` (e.g. ``"auto"``)."""
        config = super().get_compile_config()  # type: ignore[misc]
        spe = Trainer(self).steps_per_execution
        if isinstance(config, dict) and spe is not None:
            config["steps_per_execution"] = spe
        return config


def _is_functional_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return (
        len(args) == 2
        or (len(args) == 1 and "outputs" in kwargs)
        or ("inputs" in kwargs and "outputs" in kwargs)
    )


_FUNCTIONAL: list[type] = []


def _functional_class() -> type:
    """``fitpipe.Model``'s functional flavour: a subclass of it and of Keras' functional model.

    Keras turns a ``Model`` subclass called with ``(inputs, outputs)`` into a functional model
    by rewriting the class's bases in place, which would make every later subclass of
    ``fitpipe.Model`` functional too. fitpipe builds the functional flavour once instead.
    """
    if not _FUNCTIONAL:
        probe = keras.Input((1,))
        functional = type(keras.Model(probe, probe))
        flavour = type("FunctionalModel", (Model, functional), {"__module__": __name__})
        registered = keras.saving.register_keras_serializable(package="fitpipe")(flavour)
        _FUNCTIONAL.append(registered)
    return _FUNCTIONAL[0]


@keras.saving.register_keras_serializable(package="fitpipe")
class Model(FitpipeMethods, keras.Model):
    """A ``keras.Model`` (functional or subclassed) trained by fitpipe."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        if cls is Model and _is_functional_call(args, kwargs):
            return keras.Model.__new__(_functional_class(), *args, **kwargs)
        return keras.Model.__new__(cls, *args, **kwargs)


@keras.saving.register_keras_serializable(package="fitpipe")
class Sequential(FitpipeMethods, keras.Sequential):
    """A ``keras.Sequential`` trained by fitpipe."""
