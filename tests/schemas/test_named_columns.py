"""Every column a schema names is in the data, or the call says which one is not.

``fill`` keys and passthrough names the data lacked were ignored by ``fit``/``adapt`` (a
misspelt fill left its column's nulls an error elsewhere; a misspelt passthrough surfaced
only at ``predict(output=)``), and a misspelt feature of a pandas DataFrame got no "did you
mean" (the error listed only the columns the schema used). These tests hold the class: in
every source, a name in any part of the schema that the data lacks is the one unknown-column
error, naming the closest column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fitpipe
from fitpipe.errors import SchemaError

FRAME = pd.DataFrame(
    {
        "income": [1.0, None],
        "age": [1.0, 2.0],
        "tags": [[1.0], [2.0, 3.0]],
        "y": [0, 1],
        "id": [7, 8],
    }
)
BASE: dict[str, Any] = {"features": ["income", "age"], "targets": "y"}
TYPOS = {
    "feature": {"features": ["incme", "age"]},
    "fill": {"fill": {"incom": 0.0}},
    "passthrough": {"passthrough": ["idd"]},
    "lengths": {"lengths": {"tgs": 2}},
}
GUESS = {"feature": "income", "fill": "income", "passthrough": "id", "lengths": "tags"}


def _source(form: str, tmp_path: Path) -> Any:
    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    if form == "pandas":
        return FRAME
    if form == "arrow":
        return table
    if form == "reader":
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    pq.write_table(table, tmp_path / "d.parquet")
    return str(tmp_path / "d.parquet")


@pytest.mark.parametrize("form", ["pandas", "arrow", "reader", "parquet"])
@pytest.mark.parametrize("typo", list(TYPOS))
def test_a_name_the_data_lacks_is_an_error_with_a_guess(form: str, typo: str, tmp_path) -> None:
    schema = fitpipe.Schema(**{**BASE, "fill": {"income": 0.0}, **TYPOS[typo]})
    guess = GUESS[typo]
    with pytest.raises(SchemaError, match=rf"cannot find column .* \(did you mean '{guess}'\?\)"):
        fitpipe.adapt(_source(form, tmp_path), schema=schema)


def _trainer() -> fitpipe.Trainer:
    import keras

    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def test_fit_refuses_a_misspelt_fill() -> None:
    schema = fitpipe.Schema(["income", "age"], "y", fill={"incme": 0.0})
    with pytest.raises(SchemaError, match=r"`fit` cannot find column 'incme'.*'income'"):
        _trainer().fit(FRAME, schema=schema, verbose=0)


@pytest.mark.parametrize("form", ["pandas", "arrow", "parquet"])
def test_the_fill_of_a_target_that_prediction_data_lacks_is_no_error(form: str, tmp_path) -> None:
    data = _source(form, tmp_path)
    schema = fitpipe.Schema(["income", "age"], "label", fill={"label": 0, "income": 0.0})
    assert _trainer().predict(data, schema=schema, verbose=0).shape == (2, 1)
    with pytest.raises(SchemaError, match="cannot find column 'label'"):
        _trainer().evaluate(data, schema=schema, verbose=0)
