"""Temporal columns reach the model in one unit, whatever unit and source they were stored in.

README's type table: timestamps become int64 microseconds since 1970-01-01 UTC, dates int64
days, "the same way from every source". A nanosecond column (pandas, pyarrow's default) gave
counts 1000x those of a microsecond one (Spark, Python datetimes). These tests hold the class:
every unit, time zone and source of the same instant gives the same microseconds (finer
units floored), dates give days, durations and times of day microseconds, fills are in those
units, and a value beyond int64 microseconds is an error instead of a wrapped number.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.columnar import column_array
from fitpipe.errors import SchemaError

NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
UNITS = st.sampled_from(list(NS_PER))
ZONES = st.sampled_from([None, "UTC", "Asia/Kolkata", "America/New_York"])
#: Instants in nanoseconds that every unit holds (and pandas, and Parquet's INT96).
INSTANTS = st.integers(-(2**63) + 10**9, 2**63 - 10**9)
CTX = ("the table", 0, "fit")


def stored(instant_ns: int, unit: str) -> int:
    """The instant as a count of ``unit`` (floored, as a writer of that unit would round)."""
    return instant_ns // NS_PER[unit]


def micros(instant_ns: int, unit: str) -> int:
    """What the model must get: the stored instant in microseconds, floored."""
    return stored(instant_ns, unit) * NS_PER[unit] // 1000


def first_feature(data: Any, name: str = "ts") -> int:
    with fitpipe.adapt(data, schema=fitpipe.Schema(name, "y"), batch_size=4) as pipeline:
        return int(next(iter(pipeline.dataset))[0].numpy().ravel()[0])


def _table(instant_ns: int, unit: str, zone: str | None) -> pa.Table:
    kind = pa.timestamp(unit, zone)
    return pa.table({"ts": pa.array([stored(instant_ns, unit)] * 2, kind), "y": [0.0, 1.0]})


def _source(table: pa.Table, source: str, folder: Path) -> Any:
    if source == "arrow":
        return table
    if source == "pandas":
        return table.to_pandas()
    if source == "reader":
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    path = folder / f"{source}.parquet"
    int96 = source == "int96"
    pq.write_table(table, path, version="2.6", use_deprecated_int96_timestamps=int96)
    return str(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instant=INSTANTS, unit=UNITS, zone=ZONES)
def test_any_unit_and_zone_converts_to_floored_micros(instant: int, unit: str, zone: Any) -> None:
    array = _table(instant, unit, zone).column("ts")
    converted = column_array(array, "ts", fitpipe.Schema("ts"), CTX)
    assert converted.tolist() == [micros(instant, unit)] * 2


# Years pandas and INT96 hold in every unit, drawn by second, then by nanosecond within it.
PANDAS_INSTANTS = st.builds(
    lambda second, nanos: second * 10**9 + nanos,
    st.integers(-(2**63) // 10**9 + 1, 2**63 // 10**9 - 2),
    st.integers(0, 10**9 - 1),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    instant=PANDAS_INSTANTS,
    unit=UNITS,
    zone=ZONES,
    source=st.sampled_from(["arrow", "pandas", "reader", "parquet", "int96"]),
)
def test_every_source_gives_the_same_micros(
    instant: int, unit: str, zone: Any, source: str, tmp_path_factory: Any
) -> None:
    folder = tmp_path_factory.mktemp("ts")
    table = _table(instant, unit, zone)
    assert first_feature(_source(table, source, folder)) == micros(instant, unit)


def test_the_same_instant_is_the_same_number_held_and_streamed(tmp_path, monkeypatch):
    when = datetime.datetime(2024, 1, 1, 12, 0, 0, 123456)
    expected = 1704110400123456
    for unit in NS_PER:
        column = pa.array([when] * 4, pa.timestamp("us"))
        column = column.cast(pa.timestamp(unit, "UTC"), safe=False)
        table = pa.table({"ts": column, "y": [0.0] * 4})
        pq.write_table(table, tmp_path / f"{unit}.parquet", version="2.6", row_group_size=2)
    held = [first_feature(str(tmp_path / f"{unit}.parquet")) for unit in NS_PER]
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    streamed = [first_feature(str(tmp_path / f"{unit}.parquet")) for unit in NS_PER]
    floor = {"s": expected // 10**6 * 10**6, "ms": expected // 1000 * 1000}
    assert held == streamed == [floor.get(unit, expected) for unit in NS_PER]


def test_predict_output_reads_features_in_micros(tmp_path):
    when = pa.array([datetime.datetime(2024, 1, 1)] * 3, pa.timestamp("us"))
    expected = 1704067200000000
    is_expected = keras.layers.Lambda(
        lambda t: keras.ops.cast(keras.ops.equal(t, expected), "float32")
    )
    model = keras.Sequential([keras.Input((), dtype="int64"), is_expected])
    trainer = fitpipe.Trainer(model)
    trainer.compile(loss="mse")
    for unit in ("s", "ns"):
        table = pa.table({"ts": when.cast(pa.timestamp(unit)), "id": [1, 2, 3]})
        out = tmp_path / f"{unit}.parquet"
        schema = fitpipe.Schema("ts", passthrough=["id"])
        trainer.predict(table.to_pandas(), schema=schema, output=str(out), verbose=0)
        scores = pq.read_table(out).drop_columns(["id"]).column(0).to_pylist()
        assert np.ravel(scores).tolist() == [1.0] * 3, unit


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        (pa.date32(), [-1, 0, 19723], [-1, 0, 19723]),
        (pa.date64(), [-1, 86_400_000 * 2, 86_400_000 * 2 + 5], [-1, 2, 2]),
        (pa.duration("ns"), [-1, 1500, 2_000], [-1, 1, 2]),
        (pa.duration("s"), [-2, 3], [-2_000_000, 3_000_000]),
        (pa.time32("ms"), [1, 86_399_999], [1_000, 86_399_999_000]),
        (pa.time64("ns"), [999, 86_399_999_999_999], [0, 86_399_999_999]),
    ],
)
def test_dates_are_days_durations_and_times_micros(kind, values, expected):
    array = pa.array(values, kind)
    assert column_array(array, "t", fitpipe.Schema("t"), CTX).tolist() == expected


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_beyond_int64_micros_is_an_error_naming_the_row(unit):
    big = (2**63 - 1) // {"s": 10**6, "ms": 10**3}[unit] + 1
    array = pa.array([0, big], pa.timestamp(unit))
    with pytest.raises(SchemaError, match=r"column 'ts'.*row 1 of the table.*out of range"):
        column_array(array, "ts", fitpipe.Schema("ts"), CTX)


@pytest.mark.parametrize("unit", list(NS_PER))
def test_a_fill_is_micros_in_every_unit(unit):
    array = pa.array([None, 5_000_000], pa.timestamp("us")).cast(pa.timestamp(unit))
    fill = fitpipe.Schema("ts", fill={"ts": 1_000_000})
    assert column_array(array, "ts", fill, CTX).tolist() == [1_000_000, 5_000_000]
    listed = pa.FixedSizeListArray.from_arrays(array, 1)
    assert column_array(listed, "ts", fill, CTX).tolist() == [[1_000_000], [5_000_000]]


def test_an_interval_column_is_refused_before_the_first_step():
    interval = pa.array([pa.MonthDayNano([1, 2, 3])] * 2, pa.month_day_nano_interval())
    table = pa.table({"i": interval, "y": [0.0, 1.0]})
    with pytest.raises(SchemaError, match="cannot convert column 'i' of type month_day_nano"):
        fitpipe.adapt(table, schema=fitpipe.Schema("i", "y"))
