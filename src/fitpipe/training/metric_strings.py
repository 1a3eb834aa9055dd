"""The metric strings ``"crossentropy"`` and ``"ce"``, converted as Keras' documentation says.

The documentation of ``compile`` says that, as for ``"accuracy"``, the strings
``"crossentropy"`` and ``"ce"`` given as metrics become a binary, categorical or sparse
categorical crossentropy chosen by the shapes of the targets and of the model output. Keras 3
converts them as losses only, and refuses them as metrics at the first step ("Could not
interpret metric identifier"). fitpipe's ``compile`` puts a :class:`Crossentropy` in their
place, which makes that choice when it is first traced, by the rule Keras uses for
``"accuracy"``.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["CROSSENTROPY_NAMES", "Crossentropy", "with_crossentropy_metrics"]

#: The metric strings (in any case) that name the crossentropy fitting the shapes.
CROSSENTROPY_NAMES = ("crossentropy", "ce")


def _kind(y_true: Any, y_pred: Any) -> str:
    """``"binary"``, ``"sparse"`` or ``"categorical"``, by Keras' rule for ``"accuracy"``."""
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    true_last = y_true.shape[-1] if true_rank else None
    pred_last = y_pred.shape[-1] if pred_rank else None
    if pred_last == 1:
        return "binary"
    if true_rank < pred_rank or (true_last == 1 and pred_last is not None and pred_last > 1):
        return "sparse"
    return "categorical"


_FUNCTIONS = {
    "binary": keras.metrics.binary_crossentropy,
    "sparse": keras.metrics.sparse_categorical_crossentropy,
    "categorical": keras.metrics.categorical_crossentropy,
}


def crossentropy(y_true: Any, y_pred: Any) -> Any:
    """The crossentropy of each sample, of the kind the shapes call for (see :func:`_kind`)."""
    return _FUNCTIONS[_kind(y_true, y_pred)](y_true, y_pred)


@keras.saving.register_keras_serializable(package="fitpipe")
class Crossentropy(keras.metrics.MeanMetricWrapper):
    """The mean crossentropy, binary, categorical or sparse by the shapes it is traced with.

    Its values equal those of ``keras.metrics.BinaryCrossentropy``,
    ``CategoricalCrossentropy`` or ``SparseCategoricalCrossentropy`` at their defaults.

    Args:
        name: The metric's name in the logs (the string the user gave).
        dtype: The dtype of the metric's result.
    """

    def __init__(self, name: str = "crossentropy", dtype: Any = None) -> None:
        super().__init__(fn=crossentropy, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        """The name and dtype (the function is always :func:`crossentropy`)."""
        return {"name": self.name, "dtype": self.dtype}


def _converted(metric: Any) -> Any:
    if isinstance(metric, str) and metric.lower() in CROSSENTROPY_NAMES:
        return Crossentropy(name=metric)
    if isinstance(metric, (list, tuple)):
        return type(metric)(_converted(item) for item in metric)
    if isinstance(metric, dict):
        return {key: _converted(item) for key, item in metric.items()}
    return metric


def with_crossentropy_metrics(metrics: Any) -> Any:
    """``metrics`` (a name, a list, a dict, nested) with each crossentropy name converted.

    Args:
        metrics: The ``metrics`` or ``weighted_metrics`` given to ``compile``.

    Returns:
        The same structure, a :class:`Crossentropy` in place of each ``"crossentropy"`` or
        ``"ce"``; other entries are kept as they are.
    """
    return _converted(metrics)
