"""``predict(..., output=path)``: every input form it documents, and every check of ``output``
made before the first batch (issue 13).

Before: arrays always failed (``ArrowInvalid: Expected length 0``), a bare file name crashed
after predicting every row (``FileNotFoundError: ''``), a folder was found out after
predicting everything, a passthrough column named like a model output gave a file with two
columns of one name, and the file carried the input's stale pandas metadata (issue 14).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fitpipe
from fitpipe.errors import FitpipeError

ROWS = 24
FEATURES = ["f0", "f1", "f2", "f3"]
SCHEMA = fitpipe.Schema(FEATURES, passthrough=["id"])


class Batches(keras.callbacks.Callback):
    """Counts the predicted batches."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_predict_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.count += 1


def _x() -> np.ndarray:
    return np.linspace(-1.0, 1.0, ROWS * 4, dtype="float32").reshape(ROWS, 4)


def _table() -> pa.Table:
    x = _x()
    columns = {name: x[:, i] for i, name in enumerate(FEATURES)}
    extra = {"note": ["n"] * ROWS, "prediction": np.zeros(ROWS)}
    return pa.table({"id": np.arange(ROWS) + 100, **columns, **extra})


def _one_output(name: str = "score") -> keras.Model:
    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, keras.layers.Dense(1, name=name)(inputs))


def _two_outputs(names: tuple[str, str] = ("classes", "value"), as_dict: bool = True) -> Any:
    inputs = keras.Input((4,), name="x")
    first = keras.layers.Dense(3, activation="softmax", name=names[0])(inputs)
    second = keras.layers.Dense(1, name=names[1])(inputs)
    outputs = dict(zip(names, (first, second), strict=True)) if as_dict else [first, second]
    return keras.Model(inputs, outputs)


def _two_inputs() -> keras.Model:
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(1, name="score")(joined))


def _parquet(tmp: Path) -> str:
    path = str(tmp / "in.parquet")
    pq.write_table(_table(), path, row_group_size=10)
    return path


# name: (model, input maker, schema or None, passthrough ids expected)
INPUTS: dict[str, tuple[Callable[[], keras.Model], Callable[[Path], Any], Any, bool]] = {
    "numpy": (_one_output, lambda tmp: _x(), None, False),
    "numpy-two-outputs": (_two_outputs, lambda tmp: _x(), None, False),
    "numpy-list-outputs": (
        lambda: _two_outputs(as_dict=False),
        lambda tmp: _x(),
        None,
        False,
    ),
    "dict-of-arrays": (
        _two_inputs,
        lambda tmp: {"a": _x()[:, :2], "b": _x()[:, 2:]},
        None,
        False,
    ),
    "pandas-numeric": (_one_output, lambda tmp: pd.DataFrame(_x(), columns=FEATURES), None, False),
    "pandas-schema": (_one_output, lambda tmp: _table().to_pandas(), SCHEMA, True),
    "arrow-table": (_two_outputs, lambda tmp: _table(), SCHEMA, True),
    "arrow-reader": (_one_output, lambda tmp: _table().to_reader(max_chunksize=7), SCHEMA, True),
    "parquet": (_two_outputs, _parquet, SCHEMA, True),
}


def _expected(model: keras.Model) -> dict[str, np.ndarray]:
    predicted = model.predict(_x(), verbose=0)
    if isinstance(predicted, dict):
        return predicted
    if isinstance(predicted, list):
        return dict(zip(model.output_names, predicted, strict=True))
    return {model.output_names[0]: predicted}


@pytest.mark.parametrize("name", list(INPUTS))
def test_every_documented_input_writes_its_predictions(name: str, tmp_path: Path) -> None:
    make_model, make_input, schema, has_ids = INPUTS[name]
    model = make_model()
    out = tmp_path / "out.parquet"
    x = make_input(tmp_path)
    if name == "dict-of-arrays":
        expected = {"score": model.predict(x, verbose=0)}
    else:
        expected = _expected(model)
    path = fitpipe.Trainer(model).predict(x, schema=schema, output=out, verbose=0)
    assert os.fspath(path) == os.fspath(out)
    written = pq.read_table(out)
    assert written.num_rows == ROWS
    assert written.column_names == ["id"] * has_ids + list(expected)
    if has_ids:
        np.testing.assert_array_equal(written["id"].to_numpy(), np.arange(ROWS) + 100)
    for column, values in expected.items():
        got = np.array(written[column].to_pylist(), dtype="float32").reshape(values.shape)
        np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-6)


def test_a_bare_file_name_is_written_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = _one_output()
    path = fitpipe.Trainer(model).predict(_table(), schema=SCHEMA, output="preds.parquet")
    assert path == "preds.parquet"
    assert os.listdir(tmp_path) == ["preds.parquet"]
    assert pq.read_table(tmp_path / "preds.parquet").column_names == ["id", "score"]


def _refused(
    tmp_path: Path, model: keras.Model, x: Any, schema: Any, output: Any, match: str
) -> FitpipeError:
    before = set(os.listdir(tmp_path))
    batches = Batches()
    with pytest.raises(FitpipeError, match=match) as info:
        fitpipe.Trainer(model).predict(
            x, schema=schema, output=output, callbacks=[batches], verbose=0
        )
    assert batches.count == 0, "the error came after predicting"
    assert set(os.listdir(tmp_path)) == before
    assert str(info.value).startswith("`predict` ")
    return info.value


@pytest.mark.parametrize("form", ["folder", "missing-folder", "not-a-path"])
def test_a_bad_output_is_refused_before_the_first_batch(form: str, tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir()
    output: Any = {
        "folder": tmp_path / "existing",
        "missing-folder": tmp_path / "nope" / "p.parquet",
        "not-a-path": 3,
    }[form]
    match = {"folder": "is a folder", "missing-folder": "no such folder", "not-a-path": "path"}
    err = _refused(tmp_path, _one_output(), _x(), None, output, match[form])
    assert "output" in str(err)


@pytest.mark.parametrize(
    ("model", "passthrough", "column"),
    [
        (lambda: _one_output("id"), ["id"], "id"),  # a functional model's output name
        (  # a Sequential model's output is named "prediction"
            lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]),
            ["prediction"],
            "prediction",
        ),
        (lambda: _two_outputs(("classes", "note")), ["id", "note"], "note"),  # a dict key
        (lambda: _two_outputs(("id", "v"), as_dict=False), ["id"], "id"),  # a list output
        (_one_output, ["id", "id"], "id"),  # one passthrough column twice
    ],
    ids=["functional", "sequential", "dict-key", "list-output", "repeated-passthrough"],
)
@pytest.mark.parametrize("source", ["arrow", "pandas", "parquet"])
def test_colliding_column_names_are_refused_before_the_first_batch(
    model: Callable[[], keras.Model],
    passthrough: list[str],
    column: str,
    source: str,
    tmp_path: Path,
) -> None:
    x = {"arrow": _table(), "pandas": _table().to_pandas(), "parquet": _parquet(tmp_path)}[source]
    schema = fitpipe.Schema(FEATURES, passthrough=passthrough)
    out = tmp_path / "out.parquet"
    err = _refused(tmp_path, model(), x, schema, out, f"two columns named '{column}'")
    assert "passthrough" in str(err)


@pytest.mark.parametrize("source", ["pandas", "pandas-parquet"])
def test_written_file_has_no_stale_pandas_metadata(source: str, tmp_path: Path) -> None:
    frame = _table().to_pandas().set_index("note", drop=False)  # extra columns and an index
    x: Any = frame
    if source == "pandas-parquet":
        x = str(tmp_path / "from-pandas.parquet")
        frame.to_parquet(x)
    out = tmp_path / "out.parquet"
    fitpipe.Trainer(_one_output()).predict(x, schema=SCHEMA, output=out, verbose=0)
    metadata = pq.read_schema(out).metadata or {}
    if b"pandas" in metadata:
        described = [c["name"] for c in json.loads(metadata[b"pandas"])["columns"]]
        assert described == ["id", "score"], described
    read = pd.read_parquet(out)
    assert list(read.columns) == ["id", "score"]
    assert list(read.index) == list(range(ROWS))
