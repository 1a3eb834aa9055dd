"""fitpipe: the documented Keras 3 training API, rebuilt adapter-first on TensorFlow.

The data layer: :func:`adapt` turns any supported input into a :class:`Pipeline` of
Keras-style batches; :func:`register_adapter` adds input forms. The trainer:
:class:`Trainer` gives any ``keras.Model`` ``compile``/``fit``/``evaluate``/``predict``
and the ``*_on_batch`` methods; :class:`Model` and :class:`Sequential` are drop-in
``keras.Model`` subclasses that use it.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fitpipe import errors
from fitpipe.adapters import register_adapter, registry
from fitpipe.pipeline import Pipeline, adapt
from fitpipe.schemas import OTHER_COLUMNS, Schema
from fitpipe.training import Model, Sequential, Trainer

__version__ = "0.1.0"

__all__ = [
    "OTHER_COLUMNS",
    "Model",
    "Pipeline",
    "Schema",
    "Sequential",
    "Trainer",
    "__version__",
    "adapt",
    "errors",
    "register_adapter",
    "registry",
]
