"""Testing kit for fitpipe users and adapter authors.

* :class:`AdapterConformanceTests`: a pytest base class; subclass it, name your adapter and
  say how to build its input from arrays, and inherit the checks every adapter must pass
  (:mod:`fitpipe.testing.conformance`);
* :func:`assert_matches_keras`: train a Keras model and a fitpipe twin and compare History,
  ``evaluate``, ``predict`` and weights (:mod:`fitpipe.testing.keras_diff`, which also has
  the building blocks fitpipe's own differential suite uses: ``make_twins``, ``run_both``,
  and the assertions of :mod:`fitpipe.testing.assertions`);
* :func:`load_profile`: load fitpipe's Hypothesis profile (``ci`` or ``dev``, chosen by
  ``FITPIPE_HYPOTHESIS_PROFILE``) in a third-party suite, or run pytest with
  ``-p fitpipe.testing.plugin`` (:mod:`fitpipe.testing.profiles`);
* :mod:`fitpipe.testing.strategies`: Hypothesis strategies for arrays, nested structures
  and the same data in every input form; it re-exports the input forms registry
  (:mod:`fitpipe.testing.forms`) and the builders that need no Hypothesis: batches,
  ``PyDataset``, array-likes, Arrow tables and Parquet files (:mod:`fitpipe.testing.fixtures`);
* :func:`epoch_batches`, :func:`epoch_rows`, :func:`flat_rows`, :func:`to_numpy`: read a
  :class:`fitpipe.Pipeline` back into NumPy.

Importing this package needs only fitpipe's own dependencies. ``AdapterConformanceTests``,
``strategies`` and :func:`load_profile` need Hypothesis, and the conformance checks are run by
pytest: install the ``test`` extra (``pip install fitpipe[test]``). They are imported on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from fitpipe.testing.profiles import load_profile, register_profiles

if TYPE_CHECKING:
    from fitpipe.pipeline import Pipeline
    from fitpipe.testing.conformance import AdapterConformanceTests
    from fitpipe.testing.keras_diff import KerasComparison, assert_matches_keras

__all__ = [
    "AdapterConformanceTests",
    "KerasComparison",
    "assert_matches_keras",
    "epoch_batches",
    "epoch_rows",
    "flat_rows",
    "load_profile",
    "register_profiles",
    "strategies",
    "to_numpy",
]

#: Names imported on first use, and the modules that hold them.
_LAZY = {
    "AdapterConformanceTests": "fitpipe.testing.conformance",
    "KerasComparison": "fitpipe.testing.keras_diff",
    "assert_matches_keras": "fitpipe.testing.keras_diff",
}


def to_numpy(value: Any) -> Any:
    """Convert every leaf of a batch structure to NumPy (ragged -> list, sparse -> dense).

    Args:
        value: A nested structure of tensors, as yielded by ``Pipeline.dataset``.

    Returns:
        The same structure with NumPy arrays (ragged tensors become nested lists).

    """

    def convert(leaf: Any) -> Any:
        if isinstance(leaf, tf.SparseTensor):
            return tf.sparse.to_dense(leaf).numpy()
        if isinstance(leaf, tf.RaggedTensor):
            return leaf.to_list()
        if isinstance(leaf, tf.Tensor):
            return leaf.numpy()
        return leaf

    return tf.nest.map_structure(convert, value, expand_composites=False)


def epoch_batches(pipeline: Pipeline) -> list[Any]:
    """Iterate ``pipeline.dataset`` once (one epoch) and return its batches as NumPy.

    Args:
        pipeline: The pipeline.

    Returns:
        One entry per batch, each ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

    """
    return [to_numpy(batch) for batch in pipeline.dataset]


def flat_rows(structure: Any) -> np.ndarray:
    """Join the leaves of a batch part into one 2-D array, one row per sample.

    Each leaf is reshaped to ``(rows, values per row)`` and the leaves are joined along the
    columns, so ``x``, ``{"a": x}`` and ``[x]`` all give the same rows. A batch part of 0 rows
    gives an array of shape ``(0, columns)``.

    Args:
        structure: ``x``, ``y`` or ``sample_weight`` of one batch (NumPy leaves).

    Returns:
        A float64 array of shape ``(rows, columns)``.

    """
    leaves = [np.asarray(leaf) for leaf in tf.nest.flatten(structure)]
    columns = [
        leaf.reshape(leaf.shape[0], int(np.prod(leaf.shape[1:]))).astype(np.float64)
        for leaf in leaves
    ]
    return np.concatenate(columns, axis=1)


def epoch_rows(pipeline: Pipeline) -> tuple[np.ndarray, ...]:
    """Run one epoch and concatenate each batch part across batches.

    Args:
        pipeline: The pipeline.

    Returns:
        ``(x_rows,)``, ``(x_rows, y_rows)`` or ``(x_rows, y_rows, weight_rows)``, each from
        :func:`flat_rows`, concatenated over the epoch.

    """
    batches = epoch_batches(pipeline)
    width = len(batches[0])
    return tuple(
        np.concatenate([flat_rows(batch[i]) for batch in batches], axis=0) for i in range(width)
    )


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module("fitpipe.testing.strategies")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
