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
        """As ``keras.Model.compile``; ``steps_per_execution`` may be ``"auto"``."""
        Trainer(self).compile(*args, **kwargs)  # type: ignore[arg-type]

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """As ``keras.Model.fit``, on fitpipe's pipelines."""
        return Trainer(self).fit(*args, **kwargs)  # type: ignore[arg-type]

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.evaluate``."""
        return Trainer(self).evaluate(*args, **kwargs)  # type: ignore[arg-type]

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.predict``."""
        return Trainer(self).predict(*args, **kwargs)  # type: ignore[arg-type]

    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.train_on_batch``."""
        return Trainer(self).train_on_batch(*args, **kwargs)  # type: ignore[arg-type]

    def test_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """As ``keras.Model.test_on_batch``."""
        return Trainer(self).test_on_batch(*args, **kwargs)  # type: ignore[arg-type]

    def predict_on_batch(self, x: Any) -> Any:
        """As ``keras.Model.predict_on_batch``."""
        return Trainer(self).predict_on_batch(x)  # type: ignore[arg-type]


@keras.saving.register_keras_serializable(package="fitpipe")
class Model(FitpipeMethods, keras.Model):
    """A ``keras.Model`` (functional or subclassed) trained by fitpipe."""


@keras.saving.register_keras_serializable(package="fitpipe")
class Sequential(FitpipeMethods, keras.Sequential):
    """A ``keras.Sequential`` trained by fitpipe."""
