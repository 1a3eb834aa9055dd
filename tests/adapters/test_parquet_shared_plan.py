"""A Parquet plan as bytes: rebuilt by another worker, the same plan, without any footer read.

Under a multi-worker strategy the chief alone plans a source and shares its plan as bytes
(:func:`fitpipe.columnar.plan_bytes`); the other workers rebuild it
(:func:`fitpipe.columnar.plan_from_bytes`) from the paths, row counts and schema it holds,
opening no file. Here the two sides run in one process, with a stand-in for the collective.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from conftest_arrow import write_null_parts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parquet_planning import SCHEMA, _rows, _write

import fitpipe
from fitpipe.adapters import AdaptRequest
from fitpipe.adapters.parquet_plans import planned
from fitpipe.columnar import ParquetPlan, parquet, plan_bytes, plan_from_bytes, plan_source
from fitpipe.errors import DataMismatchError, SchemaError
from fitpipe.schemas import Mode
from fitpipe.testing.strategies import parquet_layouts

_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _no_footer(*args: object) -> None:
    raise AssertionError("a footer was read")


def _same(rebuilt: ParquetPlan, plan: ParquetPlan) -> None:
    assert rebuilt.arrow_schema == plan.arrow_schema
    assert rebuilt.schema == plan.schema
    assert _rows(rebuilt) == _rows(plan)
    assert [p.start for p in rebuilt.pieces] == [p.start for p in plan.pieces]
    columns = list(plan.arrow_schema.names)
    for a, b in zip(rebuilt.pieces, plan.pieces, strict=True):  # partition columns too
        assert list(a.read(columns)) == list(b.read(columns))


@_SETTINGS
@given(layout=parquet_layouts(), partitioned=st.booleans())
def test_a_plan_rebuilt_from_its_bytes_is_the_plan(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    layout: list[list[int]],
    partitioned: bool,
) -> None:
    folder = tmp_path_factory.mktemp("layout")
    _write(folder, layout, partitioned)
    schema = fitpipe.Schema(["a", "k"] if partitioned else ["a"], "y")
    plan = plan_source(str(folder), schema, "fit")
    data = plan_bytes(plan)
    with monkeypatch.context() as patched:
        patched.setattr(parquet, "_footer", _no_footer)
        rebuilt = plan_from_bytes(data, str(folder), schema, "fit", Mode.TRAIN)
    _same(rebuilt, plan)


def test_a_dataset_is_rebuilt_from_its_own_fragments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, [[2, 3], [4], [1, 1]], partitioned=True)
    dataset = pads.dataset(str(tmp_path), format="parquet", partitioning="hive")
    schema = fitpipe.Schema(["a", "k"], "y")
    plan = plan_source(dataset, schema, "fit")
    monkeypatch.setattr(parquet, "_footer", _no_footer)
    _same(plan_from_bytes(plan_bytes(plan), dataset, schema, "fit", Mode.TRAIN), plan)


def test_fragments_of_some_row_groups_count_rows_from_the_start_of_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset of fragments holding some of their files' row groups (as one made from a
    ``_metadata`` file may): each piece starts at its row of the file (messages name it),
    not at a count from the first group held, on the chief and when rebuilt."""
    null_parts = write_null_parts(tmp_path / "nulls")  # 60 + 40 rows, groups of 16
    dataset = pads.dataset(str(null_parts), format="parquet")
    first, second = dataset.get_fragments()
    held = [first.subset(row_group_ids=[0, 2]), second.subset(row_group_ids=[1, 2])]
    subset = pads.FileSystemDataset(held, dataset.schema, dataset.format, dataset.filesystem)
    schema = fitpipe.Schema(["a", "b"], "y")
    plan = plan_source(subset, schema, "fit")
    assert [(p.start, p.rows) for p in plan.pieces] == [(0, 16), (32, 16), (16, 16), (32, 8)]
    monkeypatch.setattr(parquet, "_footer", _no_footer)
    _same(plan_from_bytes(plan_bytes(plan), subset, schema, "fit", Mode.TRAIN), plan)
    monkeypatch.undo()
    with pytest.raises(SchemaError, match=r"(?s)'a' at row 17 of .*part-001\.parquet"):
        fitpipe.adapt(subset, schema=schema)  # row 77 of the folder, in the second file's group 1


def test_a_filtered_dataset_travels_as_its_row_count(tmp_path: Path) -> None:
    _write(tmp_path, [[2, 3], [4]], partitioned=False)
    dataset = pads.dataset(str(tmp_path), format="parquet").filter(pads.field("a") > 2)
    plan = plan_source(dataset, SCHEMA, "fit")
    rebuilt = plan_from_bytes(plan_bytes(plan), dataset, SCHEMA, "fit", Mode.TRAIN)
    assert plan.rows == rebuilt.rows == 6
    _same(rebuilt, plan)


def test_a_thousand_row_groups_take_a_few_bytes(tmp_path: Path) -> None:
    _write(tmp_path, [[1] * 100] * 10, partitioned=True)
    plan = plan_source(str(tmp_path), SCHEMA, "fit")
    assert len(plan.pieces) == 1000
    assert len(plan_bytes(plan)) < 4000  # paths, schema and row counts, compressed


def test_the_chief_plans_and_the_others_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, [[2, 1], [3]], partitioned=False)
    data: list[bytes] = []

    def chief(make: Callable[[], bytes]) -> bytes:
        data.append(make())
        return data[0]

    own = planned(AdaptRequest(str(tmp_path), schema=SCHEMA, share=chief), str(tmp_path), None, "")
    assert _rows(own) == _rows(plan_source(str(tmp_path), SCHEMA, "fit"))
    monkeypatch.setattr(parquet, "_footer", _no_footer)
    missing = str(tmp_path / "not-here")  # the others neither look for the paths
    request = AdaptRequest(missing, schema=SCHEMA, share=lambda make: data[0])
    rebuilt = planned(request, str(tmp_path), None, "")
    _same(rebuilt, own)


@pytest.mark.parametrize("case", ["missing", "schema"])
def test_the_chiefs_planning_error_is_raised(tmp_path: Path, case: str) -> None:
    _write(tmp_path, [[2]], partitioned=False)
    x = str(tmp_path / "not-here") if case == "missing" else str(tmp_path)
    schema = SCHEMA if case == "missing" else fitpipe.Schema(["a", "absent"], "y")
    request = AdaptRequest(x, schema=schema, share=lambda make: make())
    error = DataMismatchError if case == "missing" else SchemaError
    with pytest.raises(error):
        planned(request, x, None, "")
