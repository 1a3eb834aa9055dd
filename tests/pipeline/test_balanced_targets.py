"""``class_weight="balanced"`` counts only targets that are classes.

String labels (in any form: NumPy, Arrow string or dictionary columns, pandas categoricals)
get the one "got string targets" error a class-weight map gets; a NaN target is refused,
naming its row, instead of being counted as a made-up class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.adapters import class_counts
from fitpipe.errors import FitpipeTypeError, FitpipeValueError

SCHEMA = fitpipe.Schema(features=["a", "b"], targets="y")


def _table(labels: list[str]) -> pa.Table:
    n = len(labels)
    return pa.table({"a": np.zeros(n, "float32"), "b": np.ones(n, "float32"), "y": labels})


_FORMS: dict[str, Callable[[list[str]], tuple[Any, dict[str, Any]]]] = {
    "arrow string": lambda labels: (_table(labels), {"schema": SCHEMA}),
    "arrow dictionary": lambda labels: (
        _table(labels).set_column(2, "y", pc.dictionary_encode(pa.array(labels))),
        {"schema": SCHEMA},
    ),
    "pandas categorical": lambda labels: (
        pd.DataFrame({"a": np.zeros(len(labels)), "b": 1.0, "y": pd.Categorical(labels)}),
        {"schema": SCHEMA},
    ),
    "pandas string column": lambda labels: (
        pd.DataFrame({"a": np.zeros(len(labels)), "b": 1.0, "y": labels}),
        {"schema": SCHEMA},
    ),
}


@settings(max_examples=16, deadline=None)
@given(
    form=st.sampled_from(sorted(_FORMS)),
    labels=st.lists(st.sampled_from(["cat", "dog", "7", "b"]), min_size=2, max_size=10),
    shuffle=st.booleans(),
)
def test_string_labels_with_balanced_get_the_string_targets_error(
    form: str, labels: list[str], shuffle: bool
) -> None:
    x, kwargs = _FORMS[form](labels)
    with pytest.raises(FitpipeTypeError, match=r"got string targets `y`.*Encode the targets"):
        fitpipe.adapt(x, class_weight="balanced", shuffle=shuffle, **kwargs)


@pytest.mark.parametrize(
    "y",
    [np.array(["a", "b"], dtype=object), np.array([b"a", b"b"], dtype=object)],
    ids=["str", "bytes"],
)
def test_class_counts_refuses_string_objects(y: np.ndarray) -> None:
    with pytest.raises(FitpipeTypeError, match="`fit` got string targets"):
        class_counts(y)


@settings(max_examples=20, deadline=None)
@given(
    rows=st.integers(2, 40),
    data=st.data(),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    column=st.booleans(),
    arrow=st.booleans(),
)
def test_a_nan_target_with_balanced_is_refused_naming_its_row(
    rows: int, data: st.DataObject, dtype: str, column: bool, arrow: bool
) -> None:
    y = (np.arange(rows) % 3).astype(dtype)
    bad = sorted(data.draw(st.sets(st.integers(0, rows - 1), min_size=1, max_size=rows)))
    y[bad] = np.nan
    x = np.zeros((rows, 2), "float32")
    kwargs: dict[str, Any] = {}
    if arrow:
        data_x: Any = pa.table({"a": x[:, 0], "b": x[:, 1], "y": y.astype("float32")})
        kwargs["schema"] = SCHEMA
    else:
        data_x, kwargs["y"] = x, (y[:, None] if column else y)
    with pytest.raises(
        FitpipeValueError,
        match=rf'class_weight="balanced"`: the target at row {bad[0]} is NaN.*'
        rf"Drop or fill the rows whose target is NaN.*{len(bad)} NaN target\(s\)",
    ):
        fitpipe.adapt(data_x, class_weight="balanced", **kwargs)


def test_whole_float_targets_count_and_fractional_ones_are_refused() -> None:
    assert class_counts(np.array([0.0, 1.0, 1.0, 2.0], "float32")) == {0: 1, 1: 2, 2: 1}
    with pytest.raises(ValueError, match=r"the target at row 2 is 1\.2\d*, not a class index"):
        class_counts(np.array([0.0, 1.0, 1.2, 2.0], "float32"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    labels=st.lists(st.integers(-3, 6), min_size=1, max_size=60),
    chunk=st.integers(1, 64),
    form=st.sampled_from(["int", "float", "column", "one-hot"]),
    bad=st.one_of(st.none(), st.integers(0, 59)),
)
def test_class_counts_a_chunk_at_a_time_equal_the_whole_count(
    monkeypatch: pytest.MonkeyPatch, labels: list[int], chunk: int, form: str, bad: int | None
) -> None:
    # Targets are counted a chunk of rows at a time (3e9 labels took a 24 GB int64 copy at
    # once): the counts, and the row an error names, are those of the whole target.
    from fitpipe.adapters import capabilities

    monkeypatch.setattr(capabilities, "COUNT_CHUNK_BYTES", chunk)  # (the same every example)
    whole = np.array(labels)
    y: np.ndarray = {
        "int": whole,
        "float": whole.astype("float32"),
        "column": whole.astype("float64")[:, None],
        "one-hot": np.eye(10, dtype="float32")[whole + 3],
    }[form]
    if bad is not None and bad < len(labels) and form != "one-hot" and form != "int":
        y = y.copy()
        y.reshape(len(y), -1)[bad, 0] = np.nan
        with pytest.raises(FitpipeValueError, match=f"row {bad + 7}\\b"):
            class_counts(y, first=7)
        return
    classes, counts = np.unique(whole + (3 if form == "one-hot" else 0), return_counts=True)
    assert class_counts(y) == dict(zip(classes.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_class_counts_of_a_large_target_hold_a_chunk_at_a_time(dtype: str) -> None:
    # 20,000,000 labels that take no memory of their own (a broadcast view): counted whole,
    # their int64 copy alone was 160 MB (3e9 such labels: 24 GB, before the first step).
    import tracemalloc

    y = np.broadcast_to(np.array(2, dtype), (20_000_000,))
    tracemalloc.start()
    try:
        counts = class_counts(y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts == {2: 20_000_000}
    assert peak < 80 * 2**20
