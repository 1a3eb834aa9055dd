"""``predict``'s output never replaces (nor, for ``fitpipe predict``, joins) its input.

The same files lie in a local folder and under ``s3://owb/in/`` (moto's server, see
``tests/object_store.py``). Every input form (a file, a folder with and without its trailing
slash, a glob, a list, the folder as a URI with a query or as a ``file://`` URI) meets every
relation of the output to it (an input file, a new file in the folder, a file in a subfolder,
a sibling folder whose name starts like the input's), for ``Trainer.predict`` and
``fitpipe predict``. A refusal leaves the input's bytes as they were; the sibling
(``in-out/``, whose name starts with ``in``) is never refused.
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

import fitpipe
from fitpipe.cli import main
from fitpipe.errors import DataMismatchError, FitpipeValueError
from object_store import S3, s3_server

#: It starts a server: out of the developers' fast loop, in CI's run.
pytestmark = pytest.mark.slow

SCHEMA = fitpipe.Schema(["x"], "y")
FORMS = ["file", "folder/", "folder", "glob", "list", "query"]
RELATIONS = ["input file", "new in folder", "in subfolder", "sibling"]

#: (form, relation) pairs ``fitpipe predict`` refuses; Trainer.predict refuses "input file".
CLI_REFUSES = {
    *((form, "input file") for form in FORMS),
    *((form, "new in folder") for form in ("folder/", "folder", "glob", "query")),
    *((form, "in subfolder") for form in ("folder/", "folder", "query")),
}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def bases(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``a.parquet`` and ``b.parquet`` in a local folder ``in/`` and under ``s3://owb/in/``."""
    folder = tmp_path_factory.mktemp("local") / "in"
    folder.mkdir()
    for name, start in (("a", 0), ("b", 10)):
        rows = np.arange(start, start + 4, dtype="float64")
        pq.write_table(pa.table({"x": rows, "y": rows * 0}), folder / f"{name}.parquet")
    s3.bucket("owb")
    s3.upload(folder, "s3://owb/in")
    return {"local": str(folder), "s3": "s3://owb/in"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A saved model and its schema file, for ``fitpipe predict``."""
    folder = tmp_path_factory.mktemp("model")
    keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]).save(folder / "m.keras")
    (folder / "schema.json").write_text(SCHEMA.to_json())
    return str(folder / "m.keras"), str(folder / "schema.json")


def _input(store: str, base: str, form: str, s3: S3) -> Any:
    if form == "query":  # the folder as a URI with a query; locally, as a file:// URI
        if store == "local":
            return f"file://{base}/"
        return f"{base}/?endpoint_override={s3.url.split('://')[1]}&scheme=http"
    return {
        "file": f"{base}/a.parquet",
        "folder/": f"{base}/",
        "folder": base,
        "glob": f"{base}/*.parquet",
        "list": [f"{base}/a.parquet", f"{base}/b.parquet"],
    }[form]


def _output(base: str, relation: str) -> str:
    return {
        "input file": f"{base}/a.parquet",
        "new in folder": f"{base}/new.parquet",
        "in subfolder": f"{base}/sub/z.parquet",
        "sibling": f"{base}-out/p.parquet",
    }[relation]


def _contents(store: str, base: str, s3: S3) -> dict[str, bytes]:
    """Every input file's bytes, by name (a refusal changes nothing)."""
    if store == "local":
        return {p.name: p.read_bytes() for p in sorted(Path(base).rglob("*")) if p.is_file()}
    keys = s3.keys("owb")
    return {key: s3.client.get_object(Bucket="owb", Key=key)["Body"].read() for key in keys}


def _predicted(x: Any, output: str) -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.predict(x, schema=SCHEMA, verbose=0, output=output)


def _cli(x: Any, output: str, saved: tuple[str, str]) -> tuple[int, str]:
    model, schema = saved
    args = ["predict", "--model", model, "--schema", schema, "--data", x, "--output", output]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*args, "--verbose", "0"])
    return code, err.getvalue()


REFUSED = r"`predict` got an `output` that .*the input"


@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize("form", FORMS)
def test_predict_refuses_to_replace_an_input_file(
    s3: S3, bases: dict[str, str], store: str, form: str
) -> None:
    base = bases[store]
    before = _contents(store, base, s3)
    with pytest.raises(FitpipeValueError, match=REFUSED):
        _predicted(_input(store, base, form, s3), _output(base, "input file"))
    assert _contents(store, base, s3) == before


@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize(("form", "relation"), sorted(CLI_REFUSES))
def test_fitpipe_predict_refuses_an_output_the_input_reads(
    s3: S3, bases: dict[str, str], saved: tuple[str, str], store: str, form: str, relation: str
) -> None:
    base = bases[store]
    x = _input(store, base, form, s3)
    data = x if isinstance(x, str) else x[0]  # (the command line names one path)
    before = _contents(store, base, s3)
    code, err = _cli(data, _output(base, relation), saved)
    assert code == 1 and "`predict` got an `output` that " in err and "the input" in err
    assert _contents(store, base, s3) == before


@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("relation", RELATIONS)
def test_one_check_answers_both_callers(
    s3: S3, bases: dict[str, str], store: str, form: str, relation: str
) -> None:
    """The shared check refuses what each caller refuses above, and nothing else."""
    from fitpipe.columnar import input_collision

    base = bases[store]
    x, output = _input(store, base, form, s3), _output(base, relation)
    cli_x = x if isinstance(x, str) else x[0]
    found = input_collision(output, cli_x, True, "fitpipe predict")
    assert (found is not None) == ((form, relation) in CLI_REFUSES)
    assert (input_collision(output, x, False, "predict") is not None) == (relation == "input file")


def test_a_new_file_in_an_input_folder_is_written_by_python_predict(
    s3: S3, bases: dict[str, str]
) -> None:
    """README: ``Trainer.predict`` writes a new file into an input folder if asked."""
    _predicted("s3://owb/in/", "s3://owb/in/new.parquet")
    try:
        assert pq.read_table("owb/in/new.parquet", filesystem=s3.filesystem).num_rows == 8
    finally:
        s3.client.delete_object(Bucket="owb", Key="in/new.parquet")


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("s3://b/in/", "s3://b/in", True),
        ("s3://b/in?endpoint_override=h:9000&scheme=http", "s3://b/in", True),
        ("S3://b/in/a.parquet", "s3://b/in/a.parquet", True),
        ("gcs://b/k", "gs://b/k", True),
        ("s3://b/in", "s3://c/in", False),
        ("s3://b/in", "gs://b/in", False),
        ("file:///tmp/in/", "/tmp/in", True),
        ("/tmp/in/../in/a.parquet", "/tmp/in/a.parquet", True),
        ("/tmp/in", "/tmp/in-out", False),
    ],
)
def test_places_compare_in_one_form(one: str, other: str, same: bool) -> None:
    from fitpipe.columnar import place_of

    assert (place_of(one) == place_of(other)) == same


def test_an_output_refused_by_the_store_is_worded_as_the_output(
    s3: S3, bases: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
    with s3.check_credentials(), pytest.raises(DataMismatchError) as caught:
        _predicted("s3://owb/in/", "s3://owb/o/p.parquet")
    text = str(caught.value)
    assert "cannot check the output s3://owb/o/p.parquet: the store refused" in text
    assert "cannot read" not in text
