"""Parquet in an object store: fit, evaluate and predict at ``s3://`` URIs, against a real server.

The tests start moto's S3 server on 127.0.0.1 (see ``tests/object_store.py``), write the same
Parquet files to a local folder and to a bucket, and check that training from the bucket is
training from the folder: the same History, in memory and streamed, with
``validation_split``; that ``predict(output="s3://...")`` writes the same table and leaves
nothing at the key when the write fails; and that every error names the URI.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest_arrow import linear_model, numbered_table, write_parts

import fitpipe
from fitpipe import limits
from fitpipe.cli import main
from fitpipe.columnar import write_atomically
from fitpipe.errors import DataMismatchError, FitpipeValueError
from object_store import S3, s3_server

#: It starts a server and trains a dozen times: out of the developers' fast loop, in CI's run.
pytestmark = pytest.mark.slow

SCHEMA = fitpipe.Schema(["a", "b"], "y", passthrough=["id"])


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """One server for the module, stopped after its last test."""
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def data(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """130 rows in 3 files (row groups of 16), in a local folder and under s3://data/train/."""
    folder = tmp_path_factory.mktemp("local") / "train"
    write_parts(folder, numbered_table(130), [50, 37, 43], row_group_size=16)
    s3.bucket("data")
    s3.upload(folder, "s3://data/train")
    return folder, "s3://data/train/"


def _trainer(seed: int = 3) -> fitpipe.Trainer:
    keras.utils.set_random_seed(seed)
    trainer = fitpipe.Trainer(linear_model(2))
    trainer.compile("sgd", "mse", metrics=["mae"])
    return trainer


def _history(x: Any, **kwargs: Any) -> dict[str, list[float]]:
    trainer = _trainer()
    keras.utils.set_random_seed(7)  # the same shuffle seed for both sources
    kwargs = {"epochs": 2, "batch_size": 16, "verbose": 0, **kwargs}
    return trainer.fit(x, schema=SCHEMA, **kwargs).history


@pytest.mark.parametrize(
    ("streamed", "form", "split"),
    [
        (False, "folder", 0.0),
        (True, "folder", 0.0),
        (False, "folder", 0.25),
        (True, "folder", 0.25),
        (True, "glob", 0.0),
        (False, "list", 0.25),
    ],
)
def test_fit_from_a_bucket_is_fit_from_the_same_local_files(
    data: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, streamed: bool, form: str, split: float
) -> None:
    folder, uri = data
    if streamed:
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    local: Any = str(folder)
    remote: Any = uri
    if form == "glob":
        local, remote = f"{folder}/part-*.parquet", f"{uri}part-*.parquet"
    elif form == "list":
        names = [f"part-{i:03d}.parquet" for i in (2, 0)]
        local, remote = [str(folder / n) for n in names], [uri + n for n in names]
    expected = _history(local, validation_split=split, shuffle=True)
    got = _history(remote, validation_split=split, shuffle=True)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)


def test_evaluate_and_predict_match_the_local_files(s3: S3, data: tuple[Path, str]) -> None:
    folder, uri = data
    trainer = _trainer()
    local = trainer.evaluate(str(folder), schema=SCHEMA, verbose=0, return_dict=True)
    remote = trainer.evaluate(uri, schema=SCHEMA, verbose=0, return_dict=True)
    assert remote == pytest.approx(local, rel=1e-6)
    expected = trainer.predict(
        str(folder), schema=SCHEMA, verbose=0, output=str(folder.parent / "p.parquet")
    )
    written = trainer.predict(uri, schema=SCHEMA, verbose=0, output="s3://data/out/p.parquet")
    assert written == "s3://data/out/p.parquet"
    got = pq.read_table("data/out/p.parquet", filesystem=s3.filesystem)
    assert got.equals(pq.read_table(expected))
    assert got.column_names[0] == "id" and got.num_rows == 130
    assert [k for k in s3.keys("data") if k.startswith("out/")] == ["out/p.parquet"]


def _tables_then(error: Exception, count: int) -> Iterator[pa.Table]:
    for i in range(count):
        yield pa.table({"id": np.arange(i * 10, i * 10 + 10)})
    raise error


@pytest.mark.parametrize("before", [False, True], ids=["new_key", "existing_key"])
def test_a_failed_prediction_leaves_the_key_as_it_was(s3: S3, before: bool) -> None:
    """The write goes to a hidden temporary key, moved to the key only once complete."""
    bucket = f"atomic-{int(before)}"
    s3.bucket(bucket)
    uri = f"s3://{bucket}/out/predictions.parquet"
    old = pa.table({"id": np.arange(3)})
    if before:
        write_atomically(uri, iter([old]), lambda rows: None)
    with pytest.raises(RuntimeError, match="the model failed"):
        write_atomically(uri, _tables_then(RuntimeError("the model failed"), 3), lambda r: None)
    assert s3.keys(bucket) == (["out/predictions.parquet"] if before else [])
    if before:
        assert pq.read_table(f"{bucket}/out/predictions.parquet", filesystem=s3.filesystem).equals(
            old
        )


class _FailOnBatch(keras.callbacks.Callback):
    """Raises when prediction batch ``n`` (counted over the whole call) begins."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.seen = n, 0

    def on_predict_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if self.seen == self.n:
            raise RuntimeError(f"the model failed on batch {self.n}")


def test_a_failed_predict_call_writes_nothing(s3: S3, data: tuple[Path, str]) -> None:
    """A model that fails on the third chunk: no object at the output key, no temporary left."""
    _, uri = data
    s3.bucket("failing")
    failing = _FailOnBatch(3)
    with pytest.raises(RuntimeError, match="failed on batch 3"):
        _trainer().predict(
            uri, schema=SCHEMA, verbose=0, output="s3://failing/p.parquet", callbacks=[failing]
        )
    assert failing.seen == 3
    assert s3.keys("failing") == []


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("s3://no-such-bucket/train/", r"s3://no-such-bucket/train/'?: no such bucket"),
        ("s3://data/no-such-prefix/", r"s3://data/no-such-prefix/'?: no such key or prefix"),
        ("s3://data/train/nothing-*.parquet", r"s3://data/train/nothing-\*.parquet'?: no file"),
    ],
)
def test_missing_data_is_an_error_naming_the_uri(
    data: tuple[Path, str], source: str, match: str
) -> None:
    with pytest.raises(DataMismatchError, match=match):
        _trainer().fit(source, schema=SCHEMA, verbose=0)


def test_bad_credentials_are_an_error_naming_the_uri(
    s3: S3, data: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
    with s3.check_credentials(), pytest.raises(DataMismatchError) as caught:
        _trainer().fit("s3://data/train/", schema=SCHEMA, verbose=0)
    text = str(caught.value)
    assert "cannot read s3://data/train/: the store refused the request" in text
    assert "ACCESS_DENIED" in text and "AWS_ACCESS_KEY_ID" in text


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ("s3://no-such-bucket/p.parquet", "cannot write s3://no-such-bucket/p.parquet: no bucket"),
        ("s3://data/train/", r"got an `output` that is a folder \(s3://data/train/\)"),
        ("s3://data/train", r"got an `output` that is a folder \(s3://data/train\)"),
    ],
)
def test_a_bad_output_uri_is_refused_before_predicting(
    data: tuple[Path, str], output: str, match: str
) -> None:
    _, uri = data
    with pytest.raises(FitpipeValueError, match=match):
        _trainer().predict(uri, schema=SCHEMA, verbose=0, output=output)


def test_inspect_reads_a_bucket(data: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, uri = data
    assert main(["inspect", uri]) == 0
    printed = capsys.readouterr().out
    assert f"source:   {uri}" in printed
    assert "files:    3 (" in printed and "rows:     130" in printed


def test_the_command_line_predicts_into_a_bucket(
    s3: S3, data: tuple[Path, str], tmp_path: Path
) -> None:
    folder, uri = data
    model = linear_model(2)
    model.save(tmp_path / "model.keras")
    (tmp_path / "schema.json").write_text(SCHEMA.to_json())
    out = "s3://data/cli/predictions.parquet"
    argv = ["predict", "--model", str(tmp_path / "model.keras"), "--data", uri]
    argv += ["--schema", str(tmp_path / "schema.json"), "--output", out, "--verbose", "0"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    table = pq.read_table("data/cli/predictions.parquet", filesystem=s3.filesystem)
    assert table.num_rows == 130 and table.column("id").to_pylist() == sorted(
        pq.read_table(folder).column("id").to_pylist()
    )


def test_a_source_in_two_stores_is_refused(data: tuple[Path, str]) -> None:
    folder, uri = data
    with pytest.raises(DataMismatchError, match="got paths of several filesystems"):
        _trainer().fit([str(folder / "part-000.parquet"), uri], schema=SCHEMA, verbose=0)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("s3://data/train/part-00[02].parquet", ["part-000.parquet", "part-002.parquet"]),
        ("s3://data/**/part-*.parquet", [f"part-00{i}.parquet" for i in range(3)]),
        ("s3://data/t[a-z]ain/*.parquet", [f"part-00{i}.parquet" for i in range(3)]),
    ],
)
def test_globs_match_listed_keys(data: tuple[Path, str], pattern: str, expected: list[str]) -> None:
    from fitpipe.columnar import expand_paths

    assert expand_paths(pattern) == [f"s3://data/train/{name}" for name in expected]


@pytest.mark.parametrize(
    ("source", "columns"),
    [
        ("s3://hive/y=1/export/", ["x", "y", "k"]),
        ("s3://hive/y=1/export/*/*.parquet", ["x", "y", "k"]),
        ("s3://hive/y=1/export/k=2/*.parquet", ["x", "y"]),
        ("s3://hive/y=1/export/k=2/part-0.parquet", ["x", "y"]),
        (["s3://hive/y=1/export/k=2/part-0.parquet"], ["x", "y"]),
    ],
    ids=["prefix", "glob", "glob in a partition", "key", "list"],
)
def test_partitions_of_keys_are_below_the_given_prefix(
    s3: S3, tmp_path: Path, source: Any, columns: list[str]
) -> None:
    """A prefix named ``y=1`` above the source is no column: the files' own ``y`` is read."""
    from fitpipe.columnar import open_dataset

    for k in (1, 2):
        (tmp_path / f"k={k}").mkdir()
        table = pa.table({"x": [0.5, 1.5], "y": pa.array([0, 0], pa.int32())})
        pq.write_table(table, tmp_path / f"k={k}" / "part-0.parquet")
    with contextlib.suppress(Exception):
        s3.bucket("hive")
    s3.upload(tmp_path, "s3://hive/y=1/export")
    table = open_dataset(source, "fit").to_table()
    assert table.column_names == columns
    assert set(table.column("y").to_pylist()) == {0}
