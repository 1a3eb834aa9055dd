"""The pre-flight check: ``fit(check=...)`` and ``check_data``, one test per check.

Each check is shown able to fail: the data that trips it, and (for NaN) what the run does
without it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataCheckError, DataCheckWarning, FitpipeError
from fitpipe.testing.strategies import numeric_dtypes
from fitpipe.training import check_rules
from fitpipe.training.preflight import check_data, stats

ROWS = 64
RNG = np.random.default_rng(0)
X = RNG.normal(size=(ROWS, 4)).astype("float32")
LABELS = RNG.integers(0, 3, ROWS)


def trainer(units: int = 1, activation: str | None = None, loss: Any = "mse") -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])
    result = fitpipe.Trainer(model)
    result.compile(optimizer="sgd", loss=loss)
    return result


def classifier() -> fitpipe.Trainer:
    return trainer(3, "softmax", "sparse_categorical_crossentropy")


def with_nan(row: int = 5, column: int = 2) -> np.ndarray:
    x = X.copy()
    x[row, column] = np.nan
    return x


def y_reg() -> np.ndarray:
    return X[:, :1] * 2.0


# ----------------------------------------------------------------------- NaN and inf
def test_without_the_check_a_nan_feature_trains_to_loss_nan() -> None:
    history = trainer().fit(with_nan(), y_reg(), verbose=0, check=False)
    assert np.isnan(history.history["loss"][-1])


def test_the_default_check_warns_naming_the_column_and_count() -> None:
    x = with_nan()
    x[9, 2] = np.nan
    with pytest.warns(DataCheckWarning, match=r"^`fit` found 1 likely problem") as caught:
        trainer().fit(x, y_reg(), verbose=0)
    text = str(caught[0].message)
    assert "feature column 'x[:, 2]' holds 2 NaN (first in row 5)" in text
    assert "pass `check=False`" in text and "Received: data=x: 1 error, 0 warnings, 0 notes" in text


def test_check_error_stops_before_the_first_step() -> None:
    model = trainer()
    before = model.model.get_weights()
    with pytest.raises(DataCheckError, match=r"'x\[:, 2\]' holds 1 NaN \(first in row 5\)"):
        model.fit(with_nan(), y_reg(), verbose=0, check="error")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.model.get_weights(), strict=True))


def test_infinities_in_a_pandas_frame_name_its_column() -> None:
    frame = pd.DataFrame(X, columns=["age", "income", "height", "weight"])
    frame.loc[3, "income"] = np.inf
    frame.loc[4, "income"] = -np.inf
    with pytest.raises(DataCheckError, match=r"column 'income' holds 1 \+inf and 1 -inf"):
        trainer().fit(frame, y_reg(), verbose=0, check="error")


def test_a_nan_target_and_a_nan_in_validation_data_are_found() -> None:
    y = y_reg()
    y[7, 0] = np.nan
    with pytest.raises(DataCheckError, match=r"target column 'y' holds 1 NaN \(first in row 7\)"):
        trainer().fit(X, y, verbose=0, check="error")
    with pytest.warns(
        DataCheckWarning, match=r"in the validation data, feature column 'x\[:, 2\]'"
    ):
        trainer().fit(X, y_reg(), validation_data=(with_nan(), y_reg()), verbose=0)


def test_a_nan_in_the_split_off_validation_rows_is_found_too() -> None:
    with pytest.warns(DataCheckWarning, match="in the validation data"):
        trainer().fit(with_nan(row=ROWS - 1), y_reg(), validation_split=0.25, verbose=0)


def test_a_non_finite_weight_is_left_to_the_batch_checks_by_default() -> None:
    weights = np.ones(ROWS, "float32")
    weights[6] = np.nan
    with pytest.raises(FitpipeError, match="non-finite sample weight nan in row 6"):
        trainer().fit(X, y_reg(), sample_weight=weights, verbose=0)  # no warning first
    with pytest.raises(DataCheckError, match=r"weight column 'sample_weight' holds 1 NaN"):
        trainer().fit(X, y_reg(), sample_weight=weights, verbose=0, check="error")


# ------------------------------------------------------------------ targets vs model
def test_sparse_labels_outside_the_classes_are_counted() -> None:
    labels = LABELS.copy()
    labels[[1, 2, 3]] = 3
    with pytest.raises(DataCheckError, match=r"3 labels of 'y' lie outside the model's 3 classes"):
        classifier().fit(X, labels, verbose=0, check="error")
    with pytest.raises(FitpipeError, match=r"got the label 3 in row 1"):  # the batch checks
        classifier().fit(X, labels, verbose=0)


def test_ignore_class_labels_are_not_outside_the_classes() -> None:
    labels = LABELS.copy()
    labels[0] = -1
    loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=-1)
    report = check_data(X, labels, model=trainer(3, "softmax", loss).model)
    assert [f.check for f in report.findings] == []


def test_binary_targets_outside_0_1_with_sigmoid_and_bce() -> None:
    model = trainer(1, "sigmoid", "binary_crossentropy")
    with pytest.warns(DataCheckWarning, match=r"targets of 'y' range over \[0, 2\], but"):
        model.fit(X, LABELS.astype("float32"), verbose=0)
    soft = np.clip(LABELS / 2.0, 0.1, 0.9).astype("float32")  # soft labels are legitimate
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataCheckWarning)
        model.fit(X, soft, verbose=0)
    smoothing = keras.losses.BinaryCrossentropy(label_smoothing=0.1)
    report = check_data(
        X, (LABELS > 0).astype("float32"), model=trainer(1, "sigmoid", smoothing).model
    )
    assert report.findings == []


def test_one_hot_rows_that_do_not_sum_to_1() -> None:
    one_hot = np.eye(3, dtype="float32")[LABELS]
    model = trainer(3, "softmax", "categorical_crossentropy")
    report = check_data(X, one_hot, model=model.model)
    assert report.findings == []
    one_hot[[4, 8], :] = 1.0  # multi-hot rows
    with pytest.warns(DataCheckWarning, match=r"2 rows of 'y' do not sum to 1 \(first: row 4\)"):
        model.fit(X, one_hot, verbose=0)


def test_regression_target_scale_is_a_note_not_a_warning() -> None:
    y = (y_reg() * 1e4 + 5e4).astype("float32")
    report = check_data(X, y, model=trainer().model)
    assert [(f.level, f.check) for f in report.findings] == [("note", "target-scale")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataCheckWarning)
        trainer().fit(X, y, verbose=0)  # notes never warn


def test_targets_a_sigmoid_regression_output_cannot_reach() -> None:
    report = check_data(X, y_reg() + 5.0, model=trainer(1, "sigmoid").model)
    assert [(f.level, f.check) for f in report.findings] == [("warning", "output-range")]


# ------------------------------------------------------- constant columns and balance
def test_constant_columns_and_the_class_balance_table() -> None:
    x = X.copy()
    x[:, 1] = 3.0
    labels = np.array([0] * 60 + [1] * 3 + [2], "int64")
    report = check_data(x, labels, model=classifier().model)
    assert [(f.level, f.check, f.column) for f in report.findings] == [
        ("note", "constant", "x[:, 1]")
    ]
    assert report.targets[0][0].counts == {0: 60, 1: 3, 2: 1}
    text = report.format()
    assert "class balance of 'y' (3 classes, 64 rows):" in text
    assert "         0         60   93.8%" in text
    assert "x[:, 1]  feature       0      0      0      0          3          3  constant" in text
    assert "... and 3 more feature columns without findings" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["summary"] == {"error": 0, "warning": 0, "note": 1}
    assert data["targets"][0]["class_counts"] == {"0": 60, "1": 3, "2": 1}


# --------------------------------------------------------------- Arrow and Parquet
def _parquet(tmp_path: Path) -> tuple[str, fitpipe.Schema]:
    table = pa.table(
        {
            "a": pa.array([1.0, float("nan"), 3.0] * 20),
            "b": pa.array([1.0, None, 2.0] * 20),
            "c": pa.array([5.0] * 60),
            "label": pa.array([0, 1, 3] * 20, pa.int32()),
        }
    )
    path = str(tmp_path / "data.parquet")
    pq.write_table(table, path, row_group_size=16)
    return path, fitpipe.Schema(features=["a", "b", "c"], targets="label")


def test_parquet_statistics_answer_nulls_ranges_and_constants_without_reading(
    tmp_path: Path,
) -> None:
    path, schema = _parquet(tmp_path)
    report = check_data(path, model=classifier().model, schema=schema, full=False)
    assert report.scanned == "statistics"
    found = {(f.check, f.column, f.count) for f in report.findings}
    assert found == {("nulls", "b", 20), ("label-range", "label", None), ("constant", "c", 60)}
    assert "?" in report.format()  # NaN is not in the statistics


def test_streamed_parquet_with_empty_part_files_is_judged_from_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part files of no rows (pyarrow: one row group without statistics), first and last,
    made every column's statistics unknown: ``check="error"`` trained on bad labels."""
    from fitpipe import limits

    path, schema = _parquet(tmp_path)
    folder = tmp_path / "parts"
    folder.mkdir()
    table = pq.read_table(path)
    for i, part in enumerate((table.slice(0, 0), table, table.slice(0, 0))):
        pq.write_table(part, folder / f"part-{i:05d}.parquet", row_group_size=16)
    report = check_data(str(folder), model=classifier().model, schema=schema, full=False)
    found = {(f.check, f.column, f.count) for f in report.findings}
    assert found == {("nulls", "b", 20), ("label-range", "label", None), ("constant", "c", 60)}
    with_fill = fitpipe.Schema(features=["a", "b", "c"], targets="label", fill={"b": 0.0})
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed: footer statistics
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
    fitted = fitpipe.Trainer(model)
    fitted.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(DataCheckError, match="labels of 'label' lie outside the model's 3"):
        fitted.fit(str(folder), schema=with_fill, verbose=0, check="error")


@pytest.mark.parametrize("zeros", [[0.0, 0.0], [-0.0, -0.0], [0.0, -0.0]], ids=str)
def test_zeros_in_parquet_statistics_read_as_0_not_minus_0(tmp_path: Path, zeros) -> None:
    """Parquet writes a zero minimum as -0.0 whatever the zeros' signs (its footers cannot
    tell them apart): the statistics-only report said 'constant (-0 in every row)'."""
    path = str(tmp_path / "zeros.parquet")
    table = pa.table({"a": pa.array(zeros), "b": pa.array([0.0, 2.0]), "y": pa.array([0, 1])})
    pq.write_table(table, path)
    schema = fitpipe.Schema(features=["a", "b"], targets="y")
    report = check_data(path, model=classifier().model, schema=schema, full=False)
    assert report.scanned == "statistics"
    lows = {c.name: c.low for c in report.columns}
    assert all(math.copysign(1.0, lows[name]) == 1.0 for name in ("a", "b")), lows
    assert "-0" not in report.format().replace(path, "<path>")  # pytest-0 in the path
    assert [f.column for f in report.findings if "constant (0 in every row)" in f.text] == ["a"]


def test_a_parquet_scan_finds_nan_and_counts_labels(tmp_path: Path) -> None:
    path, schema = _parquet(tmp_path)
    report = check_data(path, model=classifier().model, schema=schema, full=True)
    found = {(f.check, f.column, f.count) for f in report.findings}
    assert ("non-finite", "a", 20) in found and ("nulls", "b", 20) in found
    assert ("label-range", "label", 20) in found
    with_fill = fitpipe.Schema(features=["a", "b", "c"], targets="label", fill={"b": 0.0})
    report = check_data(path, model=classifier().model, schema=with_fill)
    assert "nulls" not in {f.check for f in report.findings}


def test_fit_on_parquet_names_the_parquet_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "clean.parquet")
    x = with_nan()
    pq.write_table(pa.table({"f0": x[:, 0], "f1": x[:, 2], "y": y_reg()[:, 0]}), path)
    schema = fitpipe.Schema(features=["f0", "f1"], targets="y")
    fitted = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    fitted.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataCheckError, match=r"feature column 'f1' holds 1 NaN \(first in row 5\)"):
        fitted.fit(path, schema=schema, verbose=0, check="error")


def test_an_arrow_table_is_scanned_by_column(tmp_path: Path) -> None:
    table = pa.table({"a": X[:, 0], "b": with_nan()[:, 2], "label": LABELS})
    schema = fitpipe.Schema(features=["a", "b"], targets="label")
    report = check_data(table, schema=schema)
    assert [(f.check, f.column, f.count) for f in report.findings] == [("non-finite", "b", 1)]


# ----------------------------------------------------------------- modes and limits
def test_check_values() -> None:
    with pytest.raises(DataCheckError, match=r'`check` is "warn" \(the default\), "error"'):
        trainer().fit(X, y_reg(), verbose=0, check="strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataCheckWarning)
        trainer().fit(with_nan(), y_reg(), verbose=0, check=False)


def test_generators_are_not_scanned() -> None:
    def batches() -> Any:
        yield with_nan()[:32], y_reg()[:32]

    report = check_data(batches())
    assert report.scanned == "none" and report.findings == []
    # Not scanned up front, but checked as the batches pass (tests/training/test_stream_checks.py)
    with pytest.warns(DataCheckWarning, match="NaN in the inputs of batch index 0"):
        trainer().fit(batches(), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataCheckWarning)
        history = trainer().fit(batches(), verbose=0, check=False)
    assert np.isnan(history.history["loss"][-1])  # check=False: trained as given


def test_streamed_parquet_is_checked_by_the_chief_alone_under_multi_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under MultiWorkerMirroredStrategy (its `share` stood in for: this process is the
    chief), the footers are read for the check only inside `share`, whose error reaches
    every worker; a worker that is not the chief runs no `make` and reads no footer."""
    from fitpipe import limits
    from fitpipe.training import distribute
    from fitpipe.training.preflight import checks

    path, _ = _parquet(tmp_path)
    schema = fitpipe.Schema(features=["a", "b", "c"], targets="label", fill={"b": 0.0})
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed: footer statistics
    inside, shared = [False], []

    def share(make: Any) -> bytes:
        shared.append(make)
        inside[0] = True
        try:
            return make()
        finally:
            inside[0] = False

    footer_stats = checks.footer_stats

    def chief_only(*args: Any) -> Any:
        assert inside[0], "footers read for the check outside the chief's `share`"
        return footer_stats(*args)

    monkeypatch.setattr(checks, "footer_stats", chief_only)
    monkeypatch.setattr(distribute, "input_share", lambda model, caller: share)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
    fitted = fitpipe.Trainer(model)
    fitted.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(DataCheckError, match="label"):
        fitted.fit(path, schema=schema, verbose=0, check="error")
    assert shared  # the plan and the check went through `share`


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(
        st.lists(st.integers(0, 12) | st.sampled_from([np.nan, np.inf]), max_size=20),
        max_size=5,
    ),
    limit=st.integers(1, 8),
)
def test_target_class_counts_are_every_finite_value_or_none_past_the_limit(
    blocks: list[list[float]], limit: int
) -> None:
    """Rows per class over blocks; None once more than ``MAX_CLASSES`` distinct values."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stats, "MAX_CLASSES", limit)
        target = stats.TargetStats("y", 0)
        for block in blocks:
            target.update(np.asarray(block, "float64").reshape(-1, 1))
    values = [v for block in blocks for v in block if np.isfinite(v)]
    expected = {float(v): values.count(v) for v in set(values)}
    assert target.counts == (expected if len(expected) <= limit else None)


_FORMS = {
    "ndarray": lambda a: a,
    "tensor": lambda a: tf.constant(a),
    "sparse tensor": lambda a: tf.sparse.from_dense(tf.constant(a)),
    "dict of tensors": lambda a: {"a": tf.constant(a)},
}


@settings(deadline=None, max_examples=40)
@given(
    numeric_dtypes("f"),
    st.sampled_from(sorted(_FORMS)),
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.integers(0, 4 * 3 - 1),
)
def test_the_scan_finds_nan_and_infinities_in_every_float_dtype_and_form(
    dtype: np.dtype, form: str, bad: float, where: int
) -> None:
    """bfloat16 (NumPy kind "V") like float16/32/64: a bfloat16 tensor's NaN trained to nan."""
    x = np.arange(1, 13, dtype="float64").reshape(4, 3)
    x.flat[where] = bad
    report = check_data(_FORMS[form](x.astype(dtype)), np.zeros((4, 1), "float32"))
    (found,) = [f for f in report.findings if f.check == "non-finite"]
    column = "x" if form == "sparse tensor" else f"x[:, {where % 3}]"  # (sparse: its values)
    assert found.column == column.replace("x", "x['a']", form == "dict of tensors")


@settings(deadline=None, max_examples=40)
@given(
    st.sampled_from(["feature", "target", "weight"]),
    st.floats(1e37, 1e308) | st.sampled_from([3.4028234e38, 3.403e38, 1e300]),
    st.booleans(),
    st.integers(0, 7),
)
def test_the_scan_finds_finite_values_the_cast_to_floatx_makes_infinite(
    role: str, size: float, negative: bool, row: int
) -> None:
    """float64's 1e300 is inf in float32: found from the finite extremes the scan keeps."""
    value = -size if negative else size
    parts = [np.ones((8, 2)), np.ones((8, 1)), np.ones(8)]  # float64, cast to float32
    part = ["feature", "target", "weight"].index(role)
    parts[part].flat[row * parts[part][0].size] = value
    report = check_data(*parts)
    found = [f for f in report.findings if f.check == "overflow"]
    with np.errstate(over="ignore"):
        assert bool(found) == np.isinf(np.float32(value))
    if found:
        assert found[0].text.startswith(f"{role} column")
        assert "beyond float32's range" in found[0].text


def _around(limit: float, dtype: str) -> list[float]:
    """``limit`` and its neighbours in ``dtype``, both signs (and floatx's largest value)."""
    edge = np.array(limit, dtype)
    near = [
        np.nextafter(edge, edge.dtype.type(0)),
        edge,
        np.nextafter(edge, edge.dtype.type(np.inf)),
    ]
    return [sign * float(v) for v in near for sign in (1.0, -1.0)]


_CASTS = [("float32", "float64"), ("float16", "float32"), ("float16", "float64")]


@pytest.mark.parametrize(("floatx", "dtype"), _CASTS)
def test_the_scan_and_the_batch_checks_agree_at_floatx_limit(floatx: str, dtype: str) -> None:
    """Values just below, at and above the bound (floatx's largest, half a step on) are
    judged alike by the pre-flight scan and the batch checks, and as the cast judges them:
    both read ``check_rules.cast_limit``."""
    previous = keras.config.floatx()
    keras.config.set_floatx(floatx)
    try:
        limit = check_rules.cast_limit(tf.as_dtype(dtype))
        assert limit is not None and limit == check_rules.cast_limit(dtype, floatx)
        largest = float(np.finfo(floatx).max)
        (rule,) = check_rules.finite_rules((tf.TensorSpec([None], dtype),), "warn")
        for value in [largest, -largest, *_around(limit, dtype)]:
            column = np.ones(8, dtype)
            column[3] = value
            with np.errstate(over="ignore"):
                overflows = bool(np.isinf(column.astype(floatx)).any())
            scanned = [f for f in check_data(column[:, None]).findings if f.check == "overflow"]
            found, _, _ = rule.problem(tf.constant(column))
            checked = (bool(found), rule.numpy_problem(column) is not None)
            assert (bool(scanned), *checked) == (overflows,) * 3, (value, scanned, checked)
    finally:
        keras.config.set_floatx(previous)


def test_fit_stops_on_values_beyond_float32_before_training_to_inf() -> None:
    x = X.astype("float64")
    x[2, 1] = 1e300
    with pytest.raises(DataCheckError, match=r"'x\[:, 1\]' holds values beyond float32's"):
        trainer().fit(x, y_reg(), verbose=0, check="error")
    with pytest.warns(DataCheckWarning, match="makes infinite"):
        trainer().fit(x, y_reg(), verbose=0, epochs=1)
