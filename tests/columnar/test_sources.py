"""Which folders of a Parquet source's paths are Hive partitions (``open_dataset``).

Only folders below what was passed give columns: below a folder, below a glob's base (the
folder before its first wildcard); none for files passed by name. A folder named ``k=v``
above them (``/data/y=1/export/part-0.parquet``) gave a column ``y`` that silently replaced
the file's own ``y`` by the folder's value (or, of another type, a raw ``ArrowTypeError``).
A file below a partition folder that stores the folder's column with another type is an
error naming the column, the file and the folder.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import open_dataset
from fitpipe.errors import SchemaError

#: Folder names above the passed path: some name a stored column (of another type, or not).
ABOVE = st.lists(
    st.tuples(st.sampled_from(["y", "x", "run", "part"]), st.integers(0, 9)),
    min_size=1,
    max_size=3,
)

#: Partition folders below the passed path: names no file stores.
BELOW = st.lists(st.sampled_from(["k", "day", "shard"]), max_size=2, unique=True)

FORMS = ("folder", "glob", "file", "list")


def _write(root: Path, below: list[str], files: int) -> tuple[list[str], pa.Table]:
    """``files`` files under ``root``, each below one folder per name of ``below``."""
    paths, tables = [], []
    for i in range(files):
        folder = root.joinpath(*(f"{name}={i + 1}" for name in below))
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {"x": np.arange(3, dtype=np.float64) + 10 * i, "y": pa.array([i, 0, i], pa.int32())}
        )
        pq.write_table(table, folder / f"part-{i}.parquet")
        paths.append(str(folder / f"part-{i}.parquet"))
        tables.append(table)
    return paths, pa.concat_tables(tables)


def _source(form: str, root: Path, below: list[str], paths: list[str]) -> object:
    return {
        "folder": str(root),
        "glob": str(root) + "/" + "*/" * len(below) + "*.parquet",
        "file": paths[0],
        "list": paths,
    }[form]


@given(above=ABOVE, below=BELOW, form=st.sampled_from(FORMS), files=st.integers(1, 2))
def test_only_folders_below_the_passed_path_are_partitions(
    tmp_path_factory: pytest.TempPathFactory,
    above: list[tuple[str, int]],
    below: list[str],
    form: str,
    files: int,
) -> None:
    root = tmp_path_factory.mktemp("src").joinpath(*(f"{k}={v}" for k, v in above), "export")
    paths, stored = _write(root, below, files)
    table = open_dataset(_source(form, root, below, paths), "fit").to_table()
    partitions = below if form in ("folder", "glob") else []
    rows = stored if form != "file" else stored.slice(0, 3)
    assert table.column_names == ["x", "y", *partitions]
    assert table.select(["x", "y"]).equals(rows)
    for name in partitions:
        assert table.column(name).to_pylist() == [i + 1 for i in range(files) for _ in range(3)]


@pytest.mark.parametrize(
    ("pattern", "columns"),
    [
        ("{root}/*/*.parquet", ["x", "y", "k"]),
        ("{root}/k=*/*.parquet", ["x", "y", "k"]),
        ("{root}/k=1/*.parquet", ["x", "y"]),
        ("{root}/**/*.parquet", ["x", "y", "k"]),
    ],
    ids=["wildcard folder", "wildcard value", "fixed partition folder", "recursive"],
)
def test_a_glob_reads_partitions_below_its_base(tmp_path: Path, pattern: str, columns: list[str]):
    root = tmp_path / "run=7" / "data"
    _write(root, ["k"], 2)
    found = open_dataset(pattern.format(root=root), "fit")
    assert found.schema.names == columns


def test_a_list_of_folders_reads_each_folders_partitions(tmp_path: Path) -> None:
    _write(tmp_path / "a", ["k"], 2)
    _write(tmp_path / "b", [], 1)
    table = open_dataset([str(tmp_path / "a"), str(tmp_path / "b")], "fit").to_table()
    assert table.column_names == ["x", "y", "k"]
    assert table.column("k").to_pylist() == [1, 1, 1, 2, 2, 2, None, None, None]
    assert table.column("x").to_pylist()[-3:] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("form", ["file", "glob", "list"])
def test_training_reads_the_files_own_target_under_a_folder_named_like_it(
    tmp_path: Path, form: str
) -> None:
    folder = tmp_path / "y=1" / "export"
    paths, _ = _write(folder, [], 1)
    source = {"file": paths[0], "glob": str(folder / "*.parquet"), "list": paths}[form]
    pipeline = fitpipe.adapt(source, schema=fitpipe.Schema(["x"], "y"), shuffle=False)
    (_, y), *_ = pipeline.dataset
    assert y.numpy().tolist() == [0, 0, 0]


def _stored_partition(root: Path, depth: int, kind: pa.DataType) -> None:
    """Hive folders ``k=1/``, ``k=2/`` (under ``depth`` other ones) whose files store ``k``."""
    for k in (1, 2):
        folder = root.joinpath(*(f"d{i}={i}" for i in range(depth)), f"k={k}")
        folder.mkdir(parents=True)
        table = pa.table({"x": [0.1, 0.2], "k": pa.array([k, k]).cast(kind), "y": [0.0, 1.0]})
        pq.write_table(table, folder / "part-0.parquet")


@pytest.mark.parametrize("kind", [pa.int64(), pa.string(), pa.float64()], ids=str)
@pytest.mark.parametrize("depth", [0, 2])
@pytest.mark.parametrize("form", ["folder", "glob"])
def test_a_file_storing_its_partition_column_as_another_type_is_named(
    tmp_path: Path, kind: pa.DataType, depth: int, form: str
) -> None:
    _stored_partition(tmp_path / "t", depth, kind)
    source = str(tmp_path / "t") + ("/**/*.parquet" if form == "glob" else "")
    with pytest.raises(
        SchemaError,
        match=rf"`fit` found column 'k' stored as {kind} in \S+k=1/part-0\.parquet, below its "
        r"partition folder 'k=1', which gives the column another type\. .*Drop the column 'k' "
        r"from the files or rename the folders; .*pyarrow\.dataset\.dataset\(<path>, "
        r"format='parquet'\)`\. Received: column='k'",
    ):
        open_dataset(source, "fit")
    assert glob.glob(source, recursive=True)


@pytest.mark.parametrize("method", ["fit", "predict"])
def test_fit_and_predict_name_the_partition_column_clash(tmp_path: Path, method: str) -> None:
    _stored_partition(tmp_path, 0, pa.int64())
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    with pytest.raises(SchemaError, match=rf"`{method}` found column 'k' stored as int64"):
        getattr(trainer, method)(str(tmp_path), schema=fitpipe.Schema(["x"], "y"), verbose=0)


def _write_rows(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": np.arange(rows, dtype="float64")}), path)


LINKS = {
    # name: (links made in the folder d, beside d/a.parquet of 10 rows; t/ holds 7 rows)
    "a folder's link to itself": [("loop", ".")],
    "a folder's link to its parent": [("sub/up", "..")],
    "two links to one file": [("b.parquet", "../t/t.parquet"), ("c.parquet", "../t/t.parquet")],
    "a file link and a folder link to its folder": [("b.parquet", "../t/t.parquet"), ("s", "../t")],
}


@pytest.mark.parametrize("links", list(LINKS.values()), ids=list(LINKS))
@pytest.mark.parametrize("form", ["folder", "glob"])
def test_a_file_reached_again_through_a_link_is_refused(
    tmp_path: Path, links: list[tuple[str, str]], form: str
) -> None:
    """pyarrow lists such a file once per path to it (24 rows read as 970 for a loop)."""
    folder = tmp_path / "d"
    _write_rows(folder / "a.parquet", 10)
    _write_rows(tmp_path / "t" / "t.parquet", 7)
    for name, target in links:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(target)
    given = str(folder) if form == "folder" else f"{folder}/**/*.parquet"
    with pytest.raises(fitpipe.errors.DataMismatchError, match=r"would read the file .* twice"):
        open_dataset(given, "fit")


@pytest.mark.parametrize("form", ["folder", "glob"])
def test_links_to_files_read_once_each_are_read(tmp_path: Path, form: str) -> None:
    folder = tmp_path / "d"
    _write_rows(folder / "a.parquet", 10)
    _write_rows(tmp_path / "t" / "t.parquet", 7)
    _write_rows(tmp_path / "u" / "u.parquet", 3)
    (folder / "b.parquet").symlink_to("../t/t.parquet")
    (folder / "s").symlink_to("../u")
    given = str(folder) if form == "folder" else f"{folder}/**/*.parquet"
    assert open_dataset(given, "fit").count_rows() == 20


def test_a_file_listed_twice_on_purpose_is_read_twice(tmp_path: Path) -> None:
    _write_rows(tmp_path / "a.parquet", 10)
    path = str(tmp_path / "a.parquet")
    assert open_dataset([path, path], "fit").count_rows() == 20


@pytest.mark.parametrize(
    ("pattern", "kept"),
    [
        ("d/**/*.parquet", {"a", "p/b"}),
        ("d/*/*.parquet", {"p/b"}),
        ("d/_temporary/**/*.parquet", {"_temporary/0/c"}),
        ("d/_*/*.parquet", {"_x/e"}),
        ("d/**/_*.parquet", {"_f"}),
        ("d/*.parquet", {"a"}),
    ],
)
def test_a_glob_skips_hidden_names_below_its_fixed_folders_unless_named(
    tmp_path: Path, pattern: str, kept: set[str]
) -> None:
    """As a folder's listing: Spark's ``_temporary/`` of a job still writing is not read."""
    for name in ("a", "p/b", "_temporary/0/c", "_x/e", "_f", ".h/g"):
        _write_rows(tmp_path / "d" / f"{name}.parquet", 1)
    files = open_dataset(f"{tmp_path}/{pattern}", "fit").files
    assert {str(Path(f).relative_to(tmp_path / "d").with_suffix("")) for f in files} == kept


@pytest.mark.parametrize("form", ["file", "folder", "glob", "list"])
def test_a_file_arrow_cannot_open_for_an_unused_repeated_name_says_so(
    tmp_path: Path, form: str
) -> None:
    """The schema does not use the repeated column: the message does not say it does."""
    repeated = pa.table([np.arange(3.0), np.arange(3.0), np.arange(3.0)], names=["x", "u", "u"])
    pq.write_table(repeated, tmp_path / "a.parquet")
    _write_rows(tmp_path / "b.parquet", 3)
    given: Any = {
        "file": str(tmp_path / "a.parquet"),
        "folder": str(tmp_path),
        "glob": f"{tmp_path}/*.parquet",
        "list": [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")],
    }[form]
    with pytest.raises(SchemaError, match=r"two columns named 'u' .*used by the schema or not"):
        open_dataset(given, "fit")
