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
from hypothesis import given, settings
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
