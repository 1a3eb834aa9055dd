"""What the tests of the block path share: counting its cursors, its threads, the comparison.

The block path (``limits.STREAM_IN_BLOCKS``) must train exactly what the ``tf.data`` path
trains; ``test_block_cursor.py`` (streamed Parquet), ``test_generator_blocks.py`` (batches
from Python) and ``test_array_blocks.py`` (NumPy over the limit) run both and compare them
with :func:`assert_same_results`; the last and ``test_row_chunks.py`` train
:func:`classifier` on :func:`classifier_data`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fitpipe.training import block_cursor

#: Features of :func:`classifier_data`'s rows.
FEATURES = 3


def classifier(named: bool = False) -> keras.Model:
    """A linear 3-class classifier of ``FEATURES`` inputs; ``named``: two inputs, a and b."""
    if not named:
        return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3)])
    a, b = keras.Input((2,), name="a"), keras.Input((1,), name="b")
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(3)(keras.layers.concatenate([a, b])))


def classifier_data(rows: int, named: bool = False) -> tuple[Any, np.ndarray]:
    """``rows`` float32 rows of ``FEATURES`` and int32 labels 0-2 (``named``: a dict a, b)."""
    ids = np.arange(rows)
    x: Any = np.stack([np.sin(ids), np.cos(ids), ids % 7 / 7.0], 1).astype("float32")
    if named:  # two leaves of different widths
        x = {"a": x[:, :2], "b": x[:, 2:]}
    return x, (ids % 3).astype("int32")


#: The hypothesis settings of the twins of these paths (each example trains twice).
TWIN_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: The hypothesis strategies of ``fit``'s arguments the twins of these paths draw.
FIT_ARGUMENTS = {
    "shuffle": st.sampled_from([True, False, "batch"]),
    "weights": st.sampled_from(["none", "class", "sample"]),
    "split": st.sampled_from([0.0, 0.25]),
    "epochs": st.integers(1, 3),
}


def fit_kwargs(rows: int, shuffle: Any, weights: str, split: float, epochs: int) -> dict[str, Any]:
    """``fit``'s keyword arguments for ``rows`` rows of :func:`classifier_data`.

    ``weights``: ``"class"`` (a class weight per label), ``"sample"`` (a weight per row) or
    ``"none"``; a validation split of fewer than 4 rows is dropped.
    """
    split = split if rows >= 4 else 0.0
    kwargs: dict[str, Any] = {"epochs": epochs, "shuffle": shuffle, "validation_split": split}
    if weights == "class":
        kwargs["class_weight"] = {0: 0.5, 1: 2.0, 2: 1.5}
    elif weights == "sample":
        kwargs["sample_weight"] = np.linspace(0.5, 1.5, rows).astype("float32")
    return kwargs


class BlockSpy:
    """Counts the block cursors made while inside (the block path taken)."""

    def __init__(self) -> None:
        self.made = 0

    def __enter__(self) -> BlockSpy:
        original = block_cursor.BlockCursor.__init__

        def counting(cursor: Any, *args: Any, **kwargs: Any) -> None:
            self.made += 1
            original(cursor, *args, **kwargs)

        self._patch = pytest.MonkeyPatch()
        self._patch.setattr(block_cursor.BlockCursor, "__init__", counting)
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.undo()


#: How a Python source's batches hold their leaves: NumPy arrays, TensorFlow tensors, or some
#: of each (the inputs as tensors in even batches, the targets in odd ones). Keras' own
#: generators and ``PyDataset`` tests yield tensors.
LEAF_FORMS = ("numpy", "tensors", "mixed")


def as_leaf_form(batch: tuple[np.ndarray, ...], form: str, index: int) -> tuple[Any, ...]:
    """``batch`` (NumPy leaves) with its leaves in ``form`` (see :data:`LEAF_FORMS`)."""
    if form == "numpy":
        return batch
    if form == "tensors":
        return tuple(tf.constant(leaf) for leaf in batch)
    role = index % 2  # 0: the inputs as a tensor, 1: the targets
    return tuple(tf.constant(leaf) if i == role else leaf for i, leaf in enumerate(batch))


def reading_threads(*names: str) -> list[threading.Thread]:
    """The live threads of those names (default: the block cursors' reading threads)."""
    wanted = names or ("fitpipe-blocks",)
    return [t for t in threading.enumerate() if t.name in wanted and t.is_alive()]


def assert_same_results(blocked: Sequence[Any], plain: Sequence[Any]) -> None:
    """``(history, evaluate, predict, weights, ...)`` of the two paths are equal."""
    assert plain[0].keys() == blocked[0].keys()
    for key in plain[0]:
        np.testing.assert_allclose(blocked[0][key], plain[0][key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(blocked[1], plain[1], rtol=1e-5)
    np.testing.assert_allclose(blocked[2], plain[2], rtol=1e-5)
    for got, want in zip(blocked[3], plain[3], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
