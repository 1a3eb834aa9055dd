"""The pre-flight scan of rows in memory is not repeated for the same, unchanged arrays."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given, settings

import fitpipe
import fitpipe.training.preflight.checks as checks
from fitpipe import Trainer
from fitpipe.errors import DataCheckWarning
from fitpipe.testing.strategies import in_place_edits
from fitpipe.training.preflight.cache import fingerprint


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the scans of rows in memory (the cache starts empty)."""
    count = [0]
    scan = checks.scan_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return scan(*args, **kwargs)

    monkeypatch.setattr(checks, "scan_rows", counted)
    checks.SCANS.clear()
    yield count
    checks.SCANS.clear()


def _trainer() -> Trainer:
    trainer = Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    return trainer


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 3)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")


def _warnings(trainer: Trainer, *args: Any, **kwargs: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(*args, verbose=0, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, DataCheckWarning)]


def test_a_second_fit_over_the_same_arrays_does_not_rescan(scans: list[int]) -> None:
    trainer, (x, y) = _trainer(), _data()
    trainer.fit(x, y, verbose=0)
    trainer.fit(x, y, verbose=0)
    trainer.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert scans[0] == 1


def test_an_array_changed_in_place_is_rescanned(scans: list[int]) -> None:
    trainer, (x, y) = _trainer(), _data()
    assert _warnings(trainer, x, y) == []
    x[11, 2] = np.nan
    found = _warnings(trainer, x, y)
    assert scans[0] == 2 and len(found) == 1 and "NaN" in found[0]
    assert len(_warnings(trainer, x, y)) == 1 and scans[0] == 2  # kept with its finding


def test_equal_arrays_of_other_objects_are_rescanned(scans: list[int]) -> None:
    trainer, (x, y) = _trainer(), _data()
    trainer.fit(x, y, verbose=0)
    trainer.fit(x.copy(), y, verbose=0)
    trainer.fit(x[:20], y[:20], verbose=0)  # a view: another object, other rows
    assert scans[0] == 3


def test_tensors_are_kept_by_identity(scans: list[int]) -> None:
    trainer, (x, y) = _trainer(), _data()
    tx, ty = tf.constant(x), tf.constant(y)
    trainer.fit(tx, ty, verbose=0)
    trainer.fit(tx, ty, verbose=0)
    assert scans[0] == 1


def test_check_false_scans_nothing(scans: list[int]) -> None:
    trainer, (x, y) = _trainer(), _data()
    trainer.fit(x, y, verbose=0, check=False)
    assert scans[0] == 0


@settings(deadline=None)
@given(edit=in_place_edits())
def test_any_single_in_place_edit_changes_the_fingerprint(edit: Any) -> None:
    array, index, value = edit
    before = fingerprint([array])
    array[index] = value
    assert before is not None and fingerprint([array]) != before


def _write(path: Path, x: np.ndarray, y: np.ndarray) -> fitpipe.Schema:
    """Fixed-size pages (no compression, dictionary or statistics): equal sizes for equal rows."""
    columns = {f"f{i}": x[:, i] for i in range(x.shape[1])} | {"y": y[:, 0]}
    pq.write_table(
        pa.table(columns), path, compression="none", use_dictionary=False, write_statistics=False
    )
    return fitpipe.Schema(features=[f"f{i}" for i in range(x.shape[1])], targets="y")


def test_a_second_fit_over_the_same_parquet_file_does_not_rescan(
    scans: list[int], tmp_path: Path
) -> None:
    trainer, (x, y) = _trainer(), _data()
    path = tmp_path / "data.parquet"
    schema = _write(path, x, y)
    trainer.fit(path, schema=schema, verbose=0)
    trainer.fit(str(path), schema=schema, epochs=2, batch_size=8, verbose=0)
    assert scans[0] == 1
    other = fitpipe.Schema(features=["f0", "f1"], targets="y")  # other columns: scanned
    trainer2 = Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer2.compile("sgd", "mse")
    trainer2.fit(path, schema=other, verbose=0)
    assert scans[0] == 2


@pytest.mark.parametrize("same_time", [False, True])
def test_a_parquet_file_rewritten_is_rescanned(
    scans: list[int], tmp_path: Path, same_time: bool
) -> None:
    """Rewritten with a NaN: found, even at the same size and modification time."""
    trainer, (x, y) = _trainer(), _data()
    path = tmp_path / "data.parquet"
    schema = _write(path, x, y)
    assert _warnings(trainer, path, schema=schema) == []
    before = os.stat(path)
    x[11, 2] = np.nan
    _write(path, x, y)
    if same_time:  # the file's identity unchanged: only its values tell
        assert os.stat(path).st_size == before.st_size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    found = _warnings(trainer, path, schema=schema)
    assert scans[0] == 2 and len(found) == 1 and "NaN" in found[0]
    assert len(_warnings(trainer, path, schema=schema)) == 1 and scans[0] == 2
