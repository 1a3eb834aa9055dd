"""Files of one Parquet source whose columns or types differ (schema evolution).

A column the schema uses that some files lack is an error naming the first file lacking it
and a file holding it, wherever the lacking files are: Arrow's dataset schema is the first
file's, so a column added to later files was reported missing from the whole folder, with
only the first file's columns listed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.errors import SchemaError
from fitpipe.training import check_data

SCHEMA = fitpipe.Schema(["x", "z"], "y")


def _write_files(folder: Path, holds: list[bool]) -> list[Path]:
    """One file per entry: columns x, y, and z (between them) where the entry is True."""
    paths = []
    for i, has_z in enumerate(holds):
        columns = {"x": [0.5, 1.5]} | ({"z": [2.0, 3.0]} if has_z else {}) | {"y": [0.0, 1.0]}
        paths.append(folder / f"part-{i}.parquet")
        pq.write_table(pa.table(columns), paths[-1])
    return paths


@given(holds=st.lists(st.booleans(), min_size=2, max_size=5).filter(lambda h: 0 < sum(h) < len(h)))
def test_a_column_some_files_lack_names_the_first_lacking_and_a_holding_file(
    tmp_path_factory: pytest.TempPathFactory, holds: list[bool]
) -> None:
    folder = tmp_path_factory.mktemp("evolved")
    paths = _write_files(folder, holds)
    lacking, having = paths[holds.index(False)], paths[holds.index(True)]
    with pytest.raises(
        SchemaError,
        match=rf"`adapt` cannot find column 'z' in {lacking}, though other files of the source "
        rf"have it \({having}\)\. Every file of the source holds the columns the schema uses; "
        rf"{lacking} has columns \['x', 'y'\]\. Rewrite the files that lack the column",
    ):
        fitpipe.adapt(str(folder), schema=SCHEMA)


@pytest.mark.parametrize("form", ["folder", "glob", "list"])
def test_the_pre_flight_check_names_the_file_lacking_a_column(tmp_path: Path, form: str) -> None:
    paths = _write_files(tmp_path, [False, True])
    source = {"folder": str(tmp_path), "glob": f"{tmp_path}/*.parquet", "list": paths}[form]
    with pytest.raises(SchemaError, match=rf"cannot find column 'z' in {paths[0]}, though"):
        check_data(source if form != "list" else [str(p) for p in paths], schema=SCHEMA)


def _two_files(folder: Path, first: pa.Array, second: pa.Array) -> str:
    """Files ``a`` and ``b``: column ``f`` of each array and a target ``y``."""
    for name, values in (("a", first), ("b", second)):
        table = pa.table({"f": values, "y": [float(name == "b")] * len(values)})
        pq.write_table(table, folder / f"{name}.parquet")
    return str(folder)


@pytest.fixture(params=["in-memory", "streamed"])
def held(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both Parquet paths: small data read whole, and streamed by row group."""
    if request.param == "streamed":
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    return str(request.param)


TEXT = {
    "dictionary": pa.array(["a", "b"]).dictionary_encode(),
    "plain": pa.array(["c", "a"]),
    "large": pa.array(["c", "a"], pa.large_string()),
    "view": pa.array(["c", "a"], pa.string_view()),
}


@pytest.mark.parametrize(
    ("first", "second"),
    [("dictionary", "plain"), ("plain", "dictionary"), ("plain", "view"), ("dictionary", "large")],
)
def test_text_stored_plain_dictionary_encoded_or_as_views_is_one_column(
    tmp_path: Path, held: str, first: str, second: str
) -> None:
    """As pandas reads the folder: the values, whatever their encoding in each file."""
    folder = _two_files(tmp_path, TEXT[first], TEXT[second])
    pipeline = fitpipe.adapt(folder, schema=fitpipe.Schema("f", "y"), batch_size=8, shuffle=False)
    got = [v.decode() for x, _ in pipeline.dataset for v in x.numpy().tolist()]
    assert got == [str(v) for v in pd.read_parquet(folder)["f"]]


def test_a_time_zone_in_one_file_and_none_in_another_says_what_unifies(tmp_path: Path) -> None:
    aware = pa.array([1000], pa.timestamp("ms", tz="UTC"))
    folder = _two_files(tmp_path, aware, pa.array([1_000_000], pa.timestamp("us")))
    with pytest.raises(
        SchemaError,
        match=r"found column 'f' of type timestamp\[ms, tz=UTC\] in \S+a\.parquet but of type "
        r"timestamp\[us\] in \S+b\.parquet\. A column has one type in every file, or types "
        r"fitpipe unifies: .*timestamps of several units \(with one time zone in every file, or "
        r"none in any\), text or bytes stored plain, dictionary-encoded or as views",
    ):
        fitpipe.adapt(folder, schema=fitpipe.Schema("f", "y"))


@pytest.mark.parametrize("floats", [pa.float32(), pa.float64()], ids=str)
@pytest.mark.parametrize("big_first", [True, False], ids=["big first", "big later"])
def test_an_integer_past_what_the_unified_float_holds_names_column_and_types(
    tmp_path: Path, held: str, floats: pa.DataType, big_first: bool
) -> None:
    big, decimal = pa.array([2**53 + 1], pa.int64()), pa.array([1.5], floats)
    folder = _two_files(tmp_path, *((big, decimal) if big_first else (decimal, big)))
    name = "a" if big_first else "b"
    with pytest.raises(
        (SchemaError, tf.errors.InvalidArgumentError),
        match=rf"`adapt` cannot read column 'f' of \S+{name}\.parquet \(stored there as int64\) "
        r"as double, its type unified over the files: Integer value 9007199254740993 not in "
        r"range.*\. A column's values fit the one type it has over every file .*Rewrite the "
        r"files so the column has one type in all of them",
    ):
        list(fitpipe.adapt(folder, schema=fitpipe.Schema(["f"], "y"), batch_size=4).dataset)
