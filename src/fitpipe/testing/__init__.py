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
  :class:`fitpipe.Pipeline` back into NumPy (an epoch up to a bound: ``num_batches``, else
  :data:`EPOCH_BATCH_LIMIT` batches).

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

from fitpipe.errors import DataMismatchError, message
from fitpipe.testing.profiles import load_profile, register_profiles

if TYPE_CHECKING:
    from fitpipe.pipeline import Pipeline
    from fitpipe.testing.conformance import AdapterConformanceTests
    from fitpipe.testing.keras_diff import KerasComparison, assert_matches_keras

__all__ = [
    "EPOCH_BATCH_LIMIT",
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

#: The most batches :func:`epoch_batches` reads of an epoch whose ``num_batches`` is unknown.
EPOCH_BATCH_LIMIT = 10_000

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


def epoch_batches(pipeline: Pipeline, max_batches: int | None = None) -> list[Any]:
    """Iterate ``pipeline.dataset`` once (one epoch) and return its batches as NumPy.

    An epoch is read up to a bound, so that a pipeline that does not end where it says
    fails at once instead of reading (and holding) batches for ever: ``max_batches``, else
    ``pipeline.num_batches`` when known, else :data:`EPOCH_BATCH_LIMIT`. A pipeline that says
    it never ends (its source's ``finite`` is False) and counts no batches is refused unread.

    Args:
        pipeline: The pipeline.
        max_batches: The most batches the epoch may have (None: see above).

    Returns:
        One entry per batch, each ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

    Raises:
        DataMismatchError: The epoch has more batches than the bound, or never ends.

    """
    most = max_batches if max_batches is not None else pipeline.num_batches
    if most is None and not pipeline.finite:
        raise _endless(pipeline, "it says it never ends (its source's `finite` is False)")
    bound = EPOCH_BATCH_LIMIT if most is None else most
    batches: list[Any] = []
    for batch in pipeline.dataset:
        if len(batches) == bound:
            said = (
                "`max_batches`"
                if max_batches is not None
                else ("its `num_batches`" if most is not None else "EPOCH_BATCH_LIMIT")
            )
            never = " and says it never ends (`finite` is False)" if not pipeline.finite else ""
            raise _endless(pipeline, f"it gave more than {bound} batches ({said}){never}")
        batches.append(to_numpy(batch))
    return batches


def _endless(pipeline: Pipeline, problem: str) -> DataMismatchError:
    return DataMismatchError(
        message(
            "epoch_batches",
            f"cannot read one epoch of the pipeline of the adapter {pipeline.adapter!r}: {problem}",
            "An epoch ends after its batches: `num_batches` of them when the source counts "
            "them, else at most `EPOCH_BATCH_LIMIT` (`fit` refuses an input that never ends "
            "without `steps_per_epoch`)",
            "End the source's dataset after one pass (no `.repeat()`), make its "
            "`count_batches` count the batches of the pass, or pass `max_batches`",
            num_batches=pipeline.num_batches,
            finite=pipeline.finite,
        )
    )


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
