"""``stratify=True``: each class split in the same proportion, its last rows set apart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe import limits
from fitpipe.adapters import AdaptRequest
from fitpipe.errors import DataMismatchError
from fitpipe.pipeline import PipelineOptions, adapt_source, check_split_options, split_validation
from fitpipe.testing.strategies import class_labels


def stratified(x: Any, y: Any, fraction: float, schema: Any = None) -> Any:
    request = AdaptRequest(x=x, y=y, schema=schema, caller="fit")
    options = PipelineOptions.of(request, validation_split=fraction, stratify=True)
    _, source = adapt_source(request, options)
    return split_validation(source, request, options)


@st.composite
def labels_and_fractions(draw: st.DrawFn) -> tuple[np.ndarray, float]:
    rows, classes = draw(st.integers(2, 80)), draw(st.integers(1, 6))
    return draw(class_labels(rows, classes)), draw(st.floats(0.05, 0.95))


@settings(deadline=None)
@given(labels_and_fractions())
def test_each_class_split_in_proportion(drawn: tuple[np.ndarray, float]) -> None:
    labels, fraction = drawn
    rows = len(labels)
    ids = np.arange(rows, dtype="float32")[:, None]
    wanted = rows - math.floor(rows * (1 - fraction))  # Keras' validation rows
    if wanted in (0, rows):
        with pytest.raises(DataMismatchError, match=r"^`fit` cannot split \d+ samples"):
            stratified(ids, labels, fraction)
        return
    train, val, how = stratified(ids, labels, fraction)
    val_ids = val.x[:, 0].astype(int)
    train_ids = train.x[:, 0].astype(int)
    assert len(val_ids) == wanted
    np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, val_ids])), np.arange(rows))
    np.testing.assert_array_equal(val.y, labels[val_ids])
    for c in np.unique(labels):
        rows_of_c = np.flatnonzero(labels == c)
        quota = len(rows_of_c) * wanted / rows
        taken = np.intersect1d(val_ids, rows_of_c)
        assert math.floor(quota) <= len(taken) <= math.ceil(quota)
        np.testing.assert_array_equal(taken, rows_of_c[len(rows_of_c) - len(taken) :])  # last
        assert how.classes[int(c)] == (len(rows_of_c) - len(taken), len(taken))
    assert how.by == "stratify"
    assert (how.counts.train_rows, how.counts.validation_rows) == (rows - wanted, wanted)


def test_one_hot_and_whole_float_targets_are_classes() -> None:
    labels = np.array([0, 1, 1, 0, 2, 2, 2, 1, 0, 0])
    ids = np.arange(10, dtype="float32")[:, None]
    _, want, _ = stratified(ids, labels, 0.3)
    for y in (np.eye(3, dtype="float32")[labels], labels.astype("float32"), labels[:, None]):
        _, val, _ = stratified(ids, y, 0.3)
        np.testing.assert_array_equal(val.x, want.x)
    np.testing.assert_array_equal(want.x[:, 0], [6, 7, 9])  # the last row of each class


def test_stratified_split_of_a_table_by_schema() -> None:
    table = pa.table({"f": np.arange(8, dtype="float32"), "label": [0, 0, 0, 0, 1, 1, 1, 1]})
    train, val, _ = stratified(table, None, 0.5, {"features": "f", "targets": "label"})
    np.testing.assert_array_equal(val.x.reshape(-1), [2, 3, 6, 7])
    np.testing.assert_array_equal(train.x.reshape(-1), [0, 1, 4, 5])


@pytest.mark.parametrize(
    ("y", "what"),
    [
        (np.linspace(0, 1, 10), r"a regression target \(floats that are not whole numbers\)"),
        (None, "without targets"),
        ({"a": np.zeros(10), "b": np.zeros(10)}, "2 targets"),
        (np.zeros((10, 2, 2)), r"targets of shape \(10, 2, 2\)"),
        (tf.sparse.from_dense(np.eye(10, 2)), "sparse or ragged targets"),
    ],
)
def test_targets_that_are_not_classes_are_an_error(y: Any, what: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^`fit` cannot stratify {what}\. `stratify=True` splits each class of one "
        r"classification target.* Pass `stratify=False`",
    ):
        stratified(np.zeros((10, 1)), y, 0.2)


def test_streamed_input_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"f": np.arange(40, dtype="float32"), "label": np.arange(40) % 2})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=10)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    with pytest.raises(
        ValueError,
        match=r"^`fit` cannot stratify an input that is not held in memory\. .* Received: "
        r"stratify=True",
    ):
        stratified(str(tmp_path), None, 0.2, {"features": "f", "targets": "label"})


@pytest.mark.parametrize(
    ("arguments", "pattern"),
    [
        ((0.2, "user_id", True, False), r"^`fit` got both `split_by` and `stratify`\."),
        ((0.0, None, True, False), r"^`fit` got `stratify` without a `validation_split`\."),
        ((0.0, "user_id", False, False), r"^`fit` got `split_by` without a `validation_split`\."),
        ((0.0, "user_id", False, True), r"^`fit` got `split_by` together with `validation_data`"),
        ((0.0, None, True, True), r"^`fit` got `stratify` together with `validation_data`"),
        ((0.2, None, "yes", False), r"^`fit` got an invalid `stratify`\."),
    ],
)
def test_split_options_that_do_not_go_together(arguments: tuple[Any, ...], pattern: str) -> None:
    with pytest.raises((ValueError, TypeError), match=pattern):
        check_split_options(*arguments, caller="fit")
