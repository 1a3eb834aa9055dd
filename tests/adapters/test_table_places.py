"""Delta Lake and Iceberg tables' folders are no Parquet data, and no place for predictions.

A table's folder keeps files its current version no longer lists: any Parquet path inside
one (the folder, a partition or data folder of it, a file, a glob, as a path or a URI, in a
list) is refused, naming the table and how to read it. ``predict``'s output is refused
where it is a file of a columnar input (a table, a ``pyarrow.dataset.Dataset``) or lies
inside any table's folder: it would replace a data file, or be a stray file of the table.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.cli import main
from fitpipe.errors import DataMismatchError, FitpipeValueError
from object_store import S3, s3_server

deltalake = pytest.importorskip("deltalake")
pytest.importorskip("pyiceberg")
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402

SCHEMA = fitpipe.Schema(["a"], "y")
INSIDE = r"cannot read .* as Parquet files: .*(is|lies in) the folder of the {kind} table {root}"
FIX = {"Delta Lake": r"DeltaTable\(", "Iceberg": r"load_table"}


def _rows(n: int) -> pa.Table:
    a = np.arange(n, dtype="float64")
    return pa.table({"a": a, "y": a % 2, "k": np.where(a < n // 2, "p", "q")})


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A Delta table partitioned by ``k`` and an Iceberg table, both overwritten once."""
    base = tmp_path_factory.mktemp("tables")
    delta = str(base / "delta")
    deltalake.write_deltalake(delta, _rows(10), partition_by=["k"])
    deltalake.write_deltalake(delta, _rows(4), mode="overwrite", partition_by=["k"])
    catalog = SqlCatalog("t", uri=f"sqlite:///{base}/c.db", warehouse=f"file://{base}")
    catalog.create_namespace("ns")
    table = catalog.create_table("ns.t", schema=_rows(1).select(["a", "y"]).schema)
    table.append(_rows(10).select(["a", "y"]))
    table.overwrite(_rows(4).select(["a", "y"]))
    return {"Delta Lake": delta, "Iceberg": str(base / "ns" / "t")}


def _inner(kind: str, root: str) -> str:
    """A folder of data files inside the table (a partition folder, Iceberg's data/)."""
    return f"{root}/k=p" if kind == "Delta Lake" else f"{root}/data"


def _form(form: str, kind: str, root: str) -> Any:
    inner = _inner(kind, root)
    first = sorted(str(p) for p in Path(inner).rglob("*.parquet"))[0]
    return {
        "root": root,
        "root/": f"{root}/",
        "file://root": f"file://{root}",
        "file://root/": f"file://{root}/",
        "inner": inner,
        "file://inner/": f"file://{inner}/",
        "file": first,
        "glob": f"{root}/*/*.parquet",
        "file:// glob": f"file://{root}/*/*.parquet",
        "list": [first],
    }[form]


FORMS = ["root", "root/", "file://root", "file://root/", "inner", "file://inner/", "file"]


@pytest.mark.parametrize("kind", ["Delta Lake", "Iceberg"])
@pytest.mark.parametrize("form", [*FORMS, "glob", "file:// glob", "list"])
def test_a_parquet_path_inside_a_table_is_refused(
    tables: dict[str, str], kind: str, form: str
) -> None:
    root = tables[kind]
    pattern = INSIDE.format(kind=kind, root=root) + ".*" + FIX[kind]
    with pytest.raises(DataMismatchError, match=pattern):
        fitpipe.adapt(_form(form, kind, root), schema=SCHEMA)


def test_parquet_beside_a_table_is_read(tables: dict[str, str], tmp_path: Path) -> None:
    """A folder next to a table, or holding a folder named like a table's, is plain data."""
    beside = Path(tables["Delta Lake"] + "-export")
    beside.mkdir(exist_ok=True)
    pq.write_table(_rows(6), beside / "a.parquet")
    (tmp_path / "metadata").mkdir()  # no *.metadata.json: no Iceberg table
    (tmp_path / "metadata" / "notes.json").write_text("{}")
    pq.write_table(_rows(6), tmp_path / "a.parquet")
    for source in (str(beside), f"file://{beside}/", str(tmp_path / "a.parquet")):
        assert fitpipe.adapt(source, schema=SCHEMA, batch_size=6).num_batches == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["Delta Lake", "Iceberg"]),
    depth=st.integers(0, 3),
    as_uri=st.booleans(),
    slash=st.booleans(),
    file=st.booleans(),
)
def test_any_depth_inside_a_table_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    depth: int,
    as_uri: bool,
    slash: bool,
    file: bool,
) -> None:
    root = tmp_path_factory.mktemp("fake")
    if kind == "Delta Lake":
        (root / "_delta_log").mkdir()
    else:
        (root / "metadata").mkdir()
        (root / "metadata" / "00000-x.metadata.json").write_text("{}")
    folder = root.joinpath(*[f"d{i}=v" for i in range(depth)])
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(_rows(4), folder / "part-0.parquet")
    path = str(folder / "part-0.parquet") if file else str(folder) + "/" * slash
    source = f"file://{path}" if as_uri else path
    with pytest.raises(DataMismatchError, match=INSIDE.format(kind=kind, root=root)):
        fitpipe.adapt(source, schema=SCHEMA)


@pytest.mark.parametrize("kind", ["Delta Lake", "Iceberg"])
@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "uri"])
def test_a_folder_holding_a_table_below_it_is_refused(
    tables: dict[str, str], tmp_path: Path, kind: str, levels: int, as_uri: bool
) -> None:
    """A lake folder holding a table (and plain Parquet beside it) reads no table's files."""
    lake = tmp_path / "lake"
    root = lake.joinpath(*["x"] * (levels - 1), "t")
    root.parent.mkdir(parents=True)
    os.symlink(tables[kind], root)  # (pyarrow lists below a link as below a folder)
    (lake / "plain").mkdir()
    pq.write_table(_rows(4), lake / "plain" / "p.parquet")
    source = f"file://{lake}/" if as_uri else str(lake)
    inside = rf"{lake}/.*\.parquet lies in the folder of the {kind} table {root}\b"
    with pytest.raises(DataMismatchError, match=inside):
        fitpipe.adapt(source, schema=SCHEMA)
    assert fitpipe.adapt(str(lake / "plain"), schema=SCHEMA, batch_size=4).num_batches == 1


def _inspect(source: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["inspect", source])
    return code, err.getvalue()


@pytest.mark.parametrize("kind", ["Delta Lake", "Iceberg"])
def test_fitpipe_inspect_refuses_a_table_folder_and_says_what_to_do(
    tables: dict[str, str], kind: str
) -> None:
    code, err = _inspect(_inner(kind, tables[kind]))
    assert code == 1
    assert f"the {kind} table {tables[kind]}" in err
    assert "the `fitpipe` command reads Parquet paths only" in err


# ----------------------------------------------------------------------------- object stores
@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3_tables(s3: S3, tables: dict[str, str]) -> dict[str, str]:
    """The tables copied under ``s3://lake/``."""
    s3.bucket("lake")
    found = {}
    for kind, folder in tables.items():
        found[kind] = f"s3://lake/{kind[0].lower()}/t"
        s3.upload(Path(folder), found[kind])
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["Delta Lake", "Iceberg"])
@pytest.mark.parametrize(
    "form", ["root", "root/", "inner", "file", "glob", "query", "list", "above"]
)
def test_a_table_in_an_object_store_is_refused(
    s3: S3, s3_tables: dict[str, str], kind: str, form: str
) -> None:
    root = s3_tables[kind]
    inner = _inner(kind, root)
    keys = s3.keys("lake")
    first = sorted(k for k in keys if k.endswith(".parquet") and k.startswith(kind[0].lower()))
    file = "s3://lake/" + first[0]
    source = {
        "root": root,
        "root/": f"{root}/",
        "inner": f"{inner}/",
        "file": file,
        "glob": f"{root}/*/*.parquet",
        "query": f"{inner}/?endpoint_override={s3.url.split('://')[1]}&scheme=http",
        "list": [file],
        "above": f"s3://lake/{kind[0].lower()}/",
    }[form]
    with pytest.raises(DataMismatchError, match=INSIDE.format(kind=kind, root=root)):
        fitpipe.adapt(source, schema=SCHEMA)


# ----------------------------------------------------------------------------- predict's output
def _predict(x: Any, output: str) -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.predict(x, schema=SCHEMA, verbose=0, output=output)


def _snapshot(folder: str) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _table_input(kind: str, root: str) -> tuple[Any, str]:
    """The table object and one of its live data files."""
    if kind == "Delta Lake":
        table = deltalake.DeltaTable(root)
        return table, sorted(table.file_uris())[0]
    from pyiceberg.table import StaticTable

    metadata = sorted(Path(root, "metadata").glob("*.metadata.json"))[-1]
    table = StaticTable.from_metadata(str(metadata))
    live = sorted(task.file.file_path for task in table.scan().plan_files())[0]
    return table, live.removeprefix("file://")


@pytest.mark.parametrize("kind", ["Delta Lake", "Iceberg"])
@pytest.mark.parametrize("where", ["live file", "live file as file://", "new file", "new inner"])
@pytest.mark.parametrize("scan", [False, True])
def test_predict_refuses_an_output_in_its_input_table(
    tables: dict[str, str], kind: str, where: str, scan: bool
) -> None:
    root = tables[kind]
    x, live = _table_input(kind, root)
    if scan:  # a Delta table loaded at a version, or an Iceberg scan
        x = deltalake.DeltaTable(root, version=1) if kind == "Delta Lake" else x.scan()
    output = {
        "live file": live,
        "live file as file://": f"file://{live}",
        "new file": f"{root}/predictions.parquet",
        "new inner": f"{_inner(kind, root)}/predictions.parquet",
    }[where]
    before = _snapshot(root)
    with pytest.raises(FitpipeValueError, match=f"lies in the folder of the {kind} table"):
        _predict(x, output)
    assert _snapshot(root) == before


def test_predict_refuses_an_output_in_any_table_folder(
    tables: dict[str, str], tmp_path: Path
) -> None:
    pq.write_table(_rows(4), tmp_path / "in.parquet")
    for kind, root in tables.items():
        with pytest.raises(FitpipeValueError, match=f"the {kind} table {root}"):
            _predict(str(tmp_path / "in.parquet"), f"{_inner(kind, root)}/out.parquet")


@pytest.mark.parametrize("form", ["path", "file://"])
def test_predict_refuses_an_output_that_is_a_file_of_an_input_dataset(
    tmp_path: Path, form: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        pq.write_table(_rows(4), folder / f"{name}.parquet")
    dataset = pads.dataset(str(folder), format="parquet")
    output = str(folder / "b.parquet")
    before = _snapshot(str(folder))
    with pytest.raises(FitpipeValueError, match=r"is the input file .*b\.parquet"):
        _predict(dataset, f"file://{output}" if form == "file://" else output)
    assert _snapshot(str(folder)) == before
    _predict(dataset, str(tmp_path / "out.parquet"))  # beside it: written
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 8


def test_fitpipe_predict_refuses_an_output_in_a_table_folder(
    tables: dict[str, str], tmp_path: Path
) -> None:
    keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]).save(tmp_path / "m.keras")
    (tmp_path / "schema.json").write_text(SCHEMA.to_json())
    pq.write_table(_rows(4), tmp_path / "in.parquet")
    root = tables["Delta Lake"]
    args = ["predict", "--model", str(tmp_path / "m.keras"), "--schema"]
    args += [str(tmp_path / "schema.json"), "--data", str(tmp_path / "in.parquet")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*args, "--output", f"{root}/k=p/out.parquet", "--verbose", "0"])
    assert code == 1
    assert f"the Delta Lake table {root}" in err.getvalue()
    assert not os.path.exists(f"{root}/k=p/out.parquet")
