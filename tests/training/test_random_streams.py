"""A call draws from no random stream of the user's; a shuffled one repeats under TF's seed.

Keras shuffles with TensorFlow's random ops: ``evaluate``, ``predict`` and an unshuffled
``fit`` leave NumPy's and Python's global generators where they were, and
``tf.random.set_seed`` alone repeats a shuffled ``fit``. fitpipe drew a shuffle seed from
NumPy's global generator for every array pipeline, shuffled or not (and for every streamed
Parquet input): an extra ``evaluate`` before ``fit`` changed the weights ``fit`` trained to
under ``keras.utils.set_random_seed``. Every input form that can shuffle, every method.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

import fitpipe
from fitpipe import limits

ROWS = 96
X = np.random.default_rng(0).standard_normal((ROWS, 3)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5]], "float32")).astype("float32")


class _Batches(keras.utils.PyDataset):
    def __len__(self) -> int:
        return ROWS // 16

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(16 * index, 16 * index + 16)
        return X[rows], Y[rows]


def _generator() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, ROWS, 16):
        yield X[start : start + 16], Y[start : start + 16]


def _parquet(tmp_path: Path) -> str:
    path = str(tmp_path / "rows.parquet")
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": Y[:, 0]})
    pq.write_table(table, path, row_group_size=32)  # 3 row groups
    return path


def _forms(tmp_path: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """Per form, the arguments ``x`` (and ``y``) of one call; streamed Parquet is forced."""
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": Y[:, 0]})
    path, rows = _parquet(tmp_path), {"batch_size": 16}
    return {
        "numpy": lambda: {"x": X, "y": Y, **rows},
        "pandas": lambda: {"x": frame, "y": Y, **rows},
        "arrow": lambda: {"x": table, "schema": SCHEMA, **rows},
        "parquet held": lambda: {"x": path, "schema": SCHEMA, **rows},
        "parquet streamed": lambda: {"x": path, "schema": SCHEMA, **rows},
        "PyDataset": lambda: {"x": _Batches()},
        "generator": lambda: {"x": _generator()},
        "tf.data": lambda: {"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(16)},
    }


SCHEMA = fitpipe.Schema(features=["a", "b", "c"], targets="y")
FORMS = ("numpy", "pandas", "arrow", "parquet held", "parquet streamed", "PyDataset")
FORMS += ("generator", "tf.data")
SHUFFLED = ("numpy", "pandas", "arrow", "parquet held", "parquet streamed", "PyDataset")


@pytest.fixture
def forms(tmp_path: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    return _forms(tmp_path)


def _trainer() -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights([np.full((3, 1), 0.1, "float32"), np.zeros(1, "float32")])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def _call(trainer: fitpipe.Trainer, method: str, arguments: dict[str, Any]) -> None:
    if method == "predict":
        arguments.pop("y", None)
        trainer.predict(**arguments, verbose=0)
    elif method == "evaluate":
        trainer.evaluate(**arguments, verbose=0)
    else:
        shuffle = method == "fit shuffled"
        trainer.fit(**arguments, verbose=0, shuffle=shuffle)


def _streams() -> tuple[float, float]:
    return float(np.random.random()), random.random()


@pytest.mark.parametrize("method", ["fit", "fit shuffled", "evaluate", "predict"])
@pytest.mark.parametrize("form", FORMS)
def test_no_call_draws_from_numpy_or_python_global_generators(
    form: str, method: str, forms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if form == "parquet streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    if method == "fit shuffled" and form not in SHUFFLED:
        pytest.skip("this form keeps its own order (shuffle=True is refused)")
    trainer = _trainer()
    np.random.seed(5), random.seed(5)
    untouched = _streams()
    np.random.seed(5), random.seed(5)
    _call(trainer, method, forms[form]())
    assert _streams() == untouched


def _shuffled_weights(form: str, forms: Any, seed: int, evaluate_first: bool) -> np.ndarray:
    trainer = _trainer()
    tf.random.set_seed(seed)  # TensorFlow's seed alone, as Keras needs
    if evaluate_first:
        trainer.evaluate(**forms[form](), verbose=0)
    trainer.fit(**forms[form](), epochs=2, shuffle=True, verbose=0)
    return np.concatenate([w.ravel() for w in trainer.model.get_weights()])


@pytest.mark.parametrize("form", SHUFFLED)
def test_tf_seed_alone_repeats_a_shuffled_fit_and_other_seeds_differ(
    form: str, forms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if form == "parquet streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    first = _shuffled_weights(form, forms, 1, evaluate_first=False)
    np.random.seed(99)  # (NumPy's stream is not fitpipe's seed)
    np.testing.assert_array_equal(_shuffled_weights(form, forms, 1, evaluate_first=True), first)
    others = [_shuffled_weights(form, forms, seed, evaluate_first=False) for seed in (2, 3)]
    assert any(not np.array_equal(first, other) for other in others)
