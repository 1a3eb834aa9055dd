"""Columnar data a user can get wrong raises a fitpipe error naming what the user controls
(the argument, the column, the file), never a raw Arrow or NumPy error (issue 13).

Before: two columns of one name gave ``KeyError``, a ``fill`` of the wrong type
``ArrowInvalid`` (or silently truncated 1.5 to 1 in an integer column), invalid ``lengths``
NumPy's "negative dimensions", a column whose type differs between files "corrupt or truncated
file", an empty folder blamed the schema, a null list row with a ``fill`` ``ArrowTypeError``,
and a ragged list column fed to a dense input failed inside the XLA conversion.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError, FitpipeError, SchemaError

ROWS = 6


def _trainer(width: int = 2) -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((width,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    return trainer


def _columns(**extra: Any) -> dict[str, Any]:
    base = {
        "a": np.arange(ROWS, dtype="float32"),
        "b": np.ones(ROWS, dtype="float32"),
        "y": np.zeros(ROWS, dtype="float32"),
    }
    return {**base, **extra}


def _fit(x: Any, schema: fitpipe.Schema, width: int = 2) -> Any:
    return _trainer(width).fit(x, schema=schema, epochs=1, verbose=0)


def _assert_named(err: BaseException, caller: str, *names: str) -> None:
    assert isinstance(err, FitpipeError), f"{type(err).__name__}: {err}"
    assert isinstance(err, (ValueError, TypeError))
    text = str(err)
    assert text.startswith(f"`{caller}` "), text
    for name in names:
        assert name in text, f"{name!r} not named in: {text}"


# ----------------------------------------------------------------- two columns of one name
def _repeated_table() -> pa.Table:
    cols = _columns()
    return pa.Table.from_arrays(
        [pa.array(v) for v in cols.values()] + [pa.array(cols["a"])], names=[*cols, "a"]
    )


@pytest.mark.parametrize("caller", ["fit", "predict"])
@pytest.mark.parametrize("form", ["table", "reader", "pandas", "file", "later-file"])
def test_two_columns_of_one_name(form: str, caller: str, tmp_path: Path) -> None:
    table = _repeated_table()
    x: Any = table
    where = "Table"
    if form == "reader":
        x, where = table.to_reader(), "RecordBatchReader"
    elif form == "pandas":
        x = pd.DataFrame({f"c{i}": col.to_numpy() for i, col in enumerate(table.columns)})
        x.columns = table.column_names
        where = "pandas.DataFrame"
    elif form == "file":
        x = where = str(tmp_path / "dup.parquet")
        pq.write_table(table, x)
    elif form == "later-file":
        x = str(tmp_path)
        pq.write_table(pa.table(_columns()), tmp_path / "part-0.parquet")
        pq.write_table(table, tmp_path / "part-1.parquet")
        where = "part-1.parquet"
    schema = fitpipe.Schema(["a", "b"], "y")
    with pytest.raises(FitpipeError) as info:
        if caller == "fit":
            _fit(x, schema)
        else:
            _trainer().predict(x, schema=schema, verbose=0)
    _assert_named(info.value, caller, "two columns named 'a'", where)


def test_a_repeated_column_the_schema_does_not_use_is_fine() -> None:
    table = _repeated_table().rename_columns(["a", "b", "y", "unused"])
    table = pa.Table.from_arrays(
        [*table.columns, table["unused"]], names=[*table.column_names, "unused"]
    )
    _fit(table, fitpipe.Schema(["a", "b"], "y"))


def test_a_pandas_column_arrow_cannot_convert_is_named() -> None:
    frame = pd.DataFrame(_columns(c=np.array([1, "two", 3.0, None, 5, 6], dtype=object)))
    frame["unused"] = [object()] * ROWS  # not used by the schema: not converted
    with pytest.raises(SchemaError) as info:
        _fit(frame, fitpipe.Schema(["a", "b"], "y", passthrough=["c"]))
    _assert_named(info.value, "fit", "pandas.DataFrame", "'c'")
    _fit(frame, fitpipe.Schema(["a", "b"], "y"))


# ------------------------------------------------------------------------- fill and lengths
@pytest.mark.parametrize(
    ("column", "fill"),
    [
        (pa.array([1.0, None] * 3), "x"),  # a string for floats
        (pa.array([1, None] * 3), 1.5),  # Arrow would truncate it to 1
        (pa.array([1, None] * 3, pa.int8()), 300),  # out of range
        (pa.array([True, None] * 3), 2),  # not a bool
        (pa.array([[1.0], None] * 3), "x"),  # a list column's values
        (pa.array(["s", None] * 3), 0),  # a number for strings
    ],
    ids=["str-for-float", "fraction-for-int", "int8-range", "int-for-bool", "list", "int-for-str"],
)
def test_a_fill_of_the_wrong_type_names_the_column_before_any_step(
    column: pa.Array, fill: Any
) -> None:
    table = pa.table(_columns(c=column))
    schema = fitpipe.Schema(["a", "b"], "y", passthrough=["c"], fill={"c": fill})
    with pytest.raises(SchemaError) as info:
        _trainer().predict(table, schema=schema, verbose=0)
    _assert_named(info.value, "predict", "'c'", repr(fill), str(column.type))


@pytest.mark.parametrize("fill", [[0], {"a": 0}, None, object()])
def test_a_fill_that_is_not_one_value_is_refused_by_schema(fill: Any) -> None:
    with pytest.raises(FitpipeError) as info:
        fitpipe.Schema("a", fill={"a": fill})
    _assert_named(info.value, "Schema", "fill", "'a'")


@pytest.mark.parametrize("length", [-1, 0, 2.5, "3", True, None])
def test_invalid_lengths_are_refused_by_schema(length: Any) -> None:
    with pytest.raises(FitpipeError) as info:
        fitpipe.Schema("l", lengths={"l": length})
    _assert_named(info.value, "Schema", "lengths", "'l'")


@pytest.mark.parametrize(
    ("column", "lengths", "expected"),
    [
        (pa.array([[1.0, 2.0], None, [3.0]]), {"l": 2}, [[1, 2], [0, 0], [3, 0]]),
        (
            pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float64(), 2)),
            {},
            [[1, 2], [7, 7], [3, 4]],
        ),
    ],
    ids=["variable", "fixed"],
)
def test_a_null_list_row_is_filled(
    column: pa.Array, lengths: dict[str, int], expected: Any
) -> None:
    table = pa.table({"l": column})
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.set_weights([np.ones((2, 1), "float32")])
    schema = fitpipe.Schema("l", fill={"l": 7.0}, lengths=lengths)
    got = fitpipe.Trainer(model).predict(table, schema=schema, verbose=0)
    np.testing.assert_allclose(got[:, 0], np.sum(expected, axis=1))


# ------------------------------------------------------------------ types that differ by file
def _two_files(folder: Path, first: pa.Array, second: pa.Array) -> str:
    y = np.zeros(3, "float32")
    pq.write_table(pa.table({"a": first, "y": y}), folder / "part-0.parquet")
    pq.write_table(pa.table({"a": second, "y": y}), folder / "part-1.parquet")
    return str(folder)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pa.array([1, 2, 3], pa.int32()), pa.array([4, 5, 2**40], pa.int64())),
        (pa.array([1, 2, 3], pa.int64()), pa.array([0.5, 1.5, 2.5], pa.float64())),
        (pa.array([1.0, 2.0, 3.0], pa.float32()), pa.array([4.0, 5.0, 6.0], pa.float64())),
        (pa.nulls(3, pa.null()), pa.array([4.0, 5.0, 6.0])),  # a column of nulls, filled
    ],
    ids=["int32-int64", "int-float", "float32-float64", "null-float"],
)
def test_types_arrow_can_unify_are_unified_across_files(
    first: pa.Array, second: pa.Array, tmp_path: Path
) -> None:
    folder = _two_files(tmp_path, first, second)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.set_weights([np.ones((1, 1), "float32")])
    schema = fitpipe.Schema(["a"], fill={"a": 0})
    got = fitpipe.Trainer(model).predict(folder, schema=schema, verbose=0)
    expected = [0.0 if v is None else float(v) for v in first.to_pylist() + second.to_pylist()]
    np.testing.assert_allclose(got[:, 0], np.asarray(expected, "float32"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pa.array([1, 2, 3], pa.int32()), pa.array(["4", "5", "6"])),  # was cast silently
        (pa.array([1.0, 2.0, 3.0]), pa.array([[1.0], [2.0], [3.0]])),
        (pa.array([True, False, True]), pa.array([1, 0, 1], pa.int8())),
    ],
    ids=["int-string", "float-list", "bool-int"],
)
def test_types_arrow_cannot_unify_name_column_types_and_files(
    first: pa.Array, second: pa.Array, tmp_path: Path
) -> None:
    folder = _two_files(tmp_path, first, second)
    with pytest.raises(SchemaError) as info:
        _fit(folder, fitpipe.Schema(["a"], "y"), width=1)
    text = str(info.value)
    _assert_named(info.value, "fit", "'a'", "part-0.parquet", "part-1.parquet")
    assert str(first.type) in text and str(second.type).split("<")[0] in text
    assert "corrupt" not in text


# ------------------------------------------------------------------ empty folder, ragged input
def test_an_empty_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "_SUCCESS").write_text("")  # a marker file, no data
    with pytest.raises(DataMismatchError) as info:
        _fit(str(tmp_path), fitpipe.Schema(["a", "b"], "y"))
    _assert_named(info.value, "fit", "no Parquet files", str(tmp_path))
    assert "column" not in str(info.value)


@pytest.mark.parametrize("caller", ["fit", "evaluate", "predict"])
def test_a_ragged_list_column_fed_to_a_dense_input_is_named(caller: str) -> None:
    table = pa.table(_columns(l=pa.array([[1.0, 2.0], [3.0]] * 3)))
    schema = fitpipe.Schema("l", "y")
    trainer = _trainer(width=2)
    with pytest.raises(DataMismatchError) as info:
        if caller == "predict":
            trainer.predict(table, schema=schema, verbose=0)
        else:
            getattr(trainer, caller)(table, schema=schema, verbose=0)
    _assert_named(info.value, caller, "ragged", "lengths")
    trainer.fit(table, schema=fitpipe.Schema("l", "y", lengths={"l": 2}), verbose=0)


# -------------------------------------------------------------------------- property test
DEFECTS = ["repeated", "null", "fill-type", "missing", "struct", "stacked-list", "file-types"]
FORMS = ["table", "reader", "pandas", "file", "folder"]


def _defective(defect: str, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Columns and schema arguments holding ``defect``."""
    width = int(rng.integers(1, 4))
    names = [f"f{i}" for i in range(width)]
    cols: dict[str, Any] = {n: rng.random(ROWS).astype("float32") for n in names}
    cols["y"] = rng.random(ROWS).astype("float32")
    kwargs: dict[str, Any] = {"features": list(names), "targets": "y"}
    victim = names[int(rng.integers(0, width))]
    if defect == "null":
        cols[victim] = pa.array([None, *cols[victim][1:].tolist()], pa.float32())
    elif defect == "fill-type":
        cols[victim] = pa.array([None, *cols[victim][1:].tolist()], pa.float32())
        kwargs["fill"] = {victim: "zero"}
    elif defect == "missing":
        kwargs["features"] = [*names, "absent"]
    elif defect == "struct":
        cols[victim] = pa.array([{"q": 1.0}] * ROWS)
    elif defect == "stacked-list":
        cols[victim] = pa.array([[1.0, 2.0]] * ROWS)
        kwargs["features"] = [*names, "y"] if width == 1 else names
    return cols, kwargs


def _source(form: str, defect: str, cols: dict[str, Any], folder: str) -> Any:
    names = list(cols)
    arrays = [pa.array(v) if not isinstance(v, pa.Array) else v for v in cols.values()]
    if defect == "repeated":
        names, arrays = [*names, names[0]], [*arrays, arrays[0]]
    table = pa.Table.from_arrays(arrays, names=names)
    form = "folder" if defect == "file-types" else form  # a defect of several files
    if form == "table":
        return table
    if form == "reader":
        return table.to_reader()
    if form == "pandas" and defect not in ("repeated", "struct"):
        return table.to_pandas()
    path = os.path.join(folder, "part-0.parquet")
    pq.write_table(table, path)
    if form == "folder" or defect == "file-types":
        other = table.set_column(0, names[0], pa.array([str(i) for i in range(ROWS)]))
        pq.write_table(
            other if defect == "file-types" else table, os.path.join(folder, "part-1.parquet")
        )
        return folder
    return path


@settings(max_examples=min(30, settings.default.max_examples))
@given(
    defect=st.sampled_from(DEFECTS),
    form=st.sampled_from(FORMS),
    caller=st.sampled_from(["fit", "predict"]),
    seed=st.integers(0, 2**16),
)
def test_random_defects_always_give_a_fitpipe_error(
    defect: str, form: str, caller: str, seed: int
) -> None:
    cols, kwargs = _defective(defect, np.random.default_rng(seed))
    if caller == "predict" and defect == "stacked-list" and "y" in kwargs["features"]:
        caller = "fit"
    with tempfile.TemporaryDirectory() as folder:
        x = _source(form, defect, cols, folder)
        schema = fitpipe.Schema(**kwargs)
        trainer = _trainer(width=len(kwargs["features"]))
        call: Callable[[], Any] = (
            (lambda: trainer.fit(x, schema=schema, epochs=1, verbose=0))
            if caller == "fit"
            else (lambda: trainer.predict(x, schema=schema, verbose=0))
        )
        try:
            call()
        except FitpipeError as err:
            _assert_named(err, caller)
        else:
            pytest.fail(f"no error for {defect} in {form}")
