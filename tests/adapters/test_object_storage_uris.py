"""URIs of keys holding the characters a URI gives a meaning, against a real S3 server.

The same URI names the same object for fitpipe as for ``pyarrow.fs.FileSystem.from_uri``
(``%23`` a ``#``, ``%20`` a space, ``%25`` a ``%``, ``%5B`` a ``[`` that is no wildcard); a
space or ``é`` as written stands for itself (pyarrow refuses the URI); a trailing slash names
the prefix though an object of the same name exists (pyarrow drops the slash); a ``#`` is
refused (pyarrow drops what follows it and reads another object). An endpoint given in the
URI's query reaches every request made for it, and errors name the failing object's URI.
"""

from __future__ import annotations

import fnmatch
import io
import itertools
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.columnar import expand_paths, open_dataset
from fitpipe.errors import DataMismatchError, FitpipeError, FitpipeValueError, SchemaError
from object_store import S3, s3_server

#: It starts a server and writes a few hundred objects.
pytestmark = pytest.mark.slow

#: Characters a key's name is drawn from: those a URI gives a meaning, a space, non-ASCII
#: letters, and the delimiters a key keeps as written.
_CHARACTERS = "ab#?%[] é+=&ü"
_RUNS = itertools.count()
_REFUSED = None


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as server:
        for bucket in ("keys", "errs", "qry"):
            server.bucket(bucket)
        yield server


def _put(s3: S3, key: str, x: float) -> None:
    pq.write_table(pa.table({"x": [x]}), key, filesystem=s3.filesystem)


def _rows(table: pa.Table) -> list[float]:
    return sorted(table.column("x").to_pylist())


def _listed(filesystem: pafs.FileSystem, folder: str) -> list[str]:
    selector = pafs.FileSelector(folder, allow_not_found=True, recursive=True)
    infos = filesystem.get_file_info(selector)
    return [i.path for i in infos if i.type == pafs.FileType.File]


def _pyarrow_rows(uri: str, slash: bool, s3: S3) -> list[float] | None:
    """The rows pyarrow reads at ``uri``'s path (a trailing slash: the prefix); None: none.

    A URI pyarrow cannot parse for a space or "é" as written is read with them encoded; one
    with a '#' reads nothing (pyarrow would read the object before it).
    """
    if "#" in uri:
        return _REFUSED
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError) as err:
        if "Cannot parse URI" not in str(err):
            return _REFUSED
        try:
            filesystem, path = pafs.FileSystem.from_uri(urllib.parse.quote(uri, safe=":/?&=%+"))
        except (pa.ArrowInvalid, ValueError):
            return _REFUSED
    info = filesystem.get_file_info(path)
    files = [path] if info.type == pafs.FileType.File and not slash else _listed(filesystem, path)
    if not files:
        return _REFUSED
    return _rows(pq.read_table(files, filesystem=filesystem))


def _glob_rows(uri: str, run: str, s3: S3) -> list[float] | None:
    """The rows of the keys a URI with a '[' as written matches, as fnmatch matches them."""
    pattern = uri.removeprefix("s3://")
    files = [path for path in _listed(s3.filesystem, run) if fnmatch.fnmatchcase(path, pattern)]
    return _rows(pq.read_table(files, filesystem=s3.filesystem)) if files else _REFUSED


def _fitpipe_rows(uri: str) -> list[float] | None:
    try:
        return _rows(open_dataset(uri, "fit").to_table())
    except FitpipeError as err:
        assert uri in str(err) or repr(uri) in str(err), err  # the refusal names the URI
        return _REFUSED


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(st.sampled_from(_CHARACTERS), min_size=1, max_size=5),
    layout=st.sampled_from(["prefix", "object", "both"]),
    written=st.sampled_from(["as is", "encoded", "meaning"]),
    slash=st.booleans(),
)
def test_a_uri_names_the_object_pyarrow_names(
    s3: S3, name: str, layout: str, written: str, slash: bool
) -> None:
    """fitpipe reads the rows pyarrow reads for the same URI, or refuses it naming it."""
    run = f"keys/run-{next(_RUNS)}"
    if layout in ("object", "both"):
        _put(s3, f"{run}/{name}", 1.0)
    if layout in ("prefix", "both"):
        _put(s3, f"{run}/{name}/part-0.parquet", 2.0)
    _put(s3, f"{run}/{name}-sibling", 3.0)  # a name the URI's path starts
    if written == "encoded":
        name = urllib.parse.quote(name, safe="")
    elif written == "meaning":  # only what means something in a URI
        name = "".join(f"%{ord(c):02X}" if c in "%#?[]" else c for c in name)
    uri = f"s3://{run}/{name}" + "/" * slash
    bracket = "[" in name and "%" not in name and "#" not in name and "?" not in name
    expected = _glob_rows(uri, run, s3) if bracket else _pyarrow_rows(uri, slash, s3)
    assert _fitpipe_rows(uri) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3://keys/g/a%5B1%5D.parquet", [1.0]),  # an encoded '[': the key a[1].parquet
        ("s3://keys/g/a%5B1%5D*", [1.0]),  # with a wildcard after it
        ("s3://keys/g/a[1].parquet", [2.0]),  # a set: a1.parquet
        ("s3://keys/g/*.parquet", [1.0, 2.0]),  # its matches name a[1].parquet again
        ("s3://keys/g/h%23/", [4.0]),  # the prefix h#/, not h
    ],
)
def test_an_encoded_bracket_is_no_wildcard(s3: S3, source: str, expected: list[float]) -> None:
    for key, x in [("a[1].parquet", 1.0), ("a1.parquet", 2.0), ("h", 3.0)]:
        _put(s3, f"keys/g/{key}", x)
    _put(s3, "keys/g/h#/part-0.parquet", 4.0)
    assert _rows(open_dataset(source, "fit").to_table()) == expected


def test_glob_matches_are_uris_of_their_keys(s3: S3) -> None:
    for key in ["a[1].parquet", "b#c.parquet", "d%20e.parquet", "f g.parquet"]:
        _put(s3, f"keys/m/{key}", 0.0)
    assert expand_paths("s3://keys/m/*.parquet") == [
        "s3://keys/m/a%5B1%5D.parquet",
        "s3://keys/m/b%23c.parquet",
        "s3://keys/m/d%2520e.parquet",
        "s3://keys/m/f g.parquet",
    ]


@pytest.mark.parametrize(
    "uri", ["s3://keys/runs2/v1#fixed/", "s3://keys/t#1/*.parquet", "s3://keys/a#"]
)
def test_a_hash_is_refused_with_its_encoding(s3: S3, uri: str) -> None:
    with pytest.raises(FitpipeValueError, match=r"'#' starts the URI's fragment.*%23"):
        open_dataset(uri, "fit")


def test_a_slash_names_the_prefix_beside_a_folder_marker(s3: S3) -> None:
    """A zero-byte object ``exports`` (a folder marker) is not the prefix ``exports/``."""
    with s3.filesystem.open_output_stream("keys/mark/exports"):
        pass
    _put(s3, "keys/mark/exports/a.parquet", 5.0)
    assert _rows(open_dataset("s3://keys/mark/exports/", "fit").to_table()) == [5.0]
    with pytest.raises(SchemaError, match=r"file s3://keys/mark/exports \(.*0 bytes"):
        open_dataset("s3://keys/mark/exports", "fit")  # the object, as named


def _query(s3: S3) -> str:
    return f"?endpoint_override={s3.url.removeprefix('http://')}&scheme=http"


@pytest.fixture
def no_endpoint(s3: S3, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment names no endpoint: only the URI's query does."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    _put(s3, "qry/t/a.parquet", 1.0)
    return _query(s3)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("s3://qry/nothing/", "'s3://qry/nothing/{q}': no such key or prefix"),
        ("s3://no-such-bucket/t/", "'s3://no-such-bucket/t/{q}': no such bucket 'no-such-bucket'"),
    ],
)
def test_a_missing_path_is_looked_for_at_the_query_endpoint(
    no_endpoint: str, source: str, match: str
) -> None:
    expected = match.format(q=no_endpoint)
    with pytest.raises(DataMismatchError) as caught:
        open_dataset(source + no_endpoint, "fit")
    assert expected in str(caught.value)


def _trainer() -> fitpipe.Trainer:
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    return trainer


def test_an_output_bucket_is_looked_for_at_the_query_endpoint(s3: S3, no_endpoint: str) -> None:
    schema = fitpipe.Schema(["x"])
    source = f"s3://qry/t/{no_endpoint}"
    _trainer().predict(
        source, schema=schema, verbose=0, output=f"s3://qry/o/p.parquet{no_endpoint}"
    )
    assert pq.read_table("qry/o/p.parquet", filesystem=s3.filesystem).num_rows == 1
    missing = f"s3://no-such-bucket/p.parquet{no_endpoint}"
    with pytest.raises(FitpipeValueError, match="no bucket 'no-such-bucket'"):
        _trainer().predict(source, schema=schema, verbose=0, output=missing)
    with pytest.raises(FitpipeValueError, match="is a folder"):
        _trainer().predict(source, schema=schema, verbose=0, output=f"s3://qry/o/{no_endpoint}")


def _put_bytes(s3: S3, key: str, data: bytes) -> None:
    with s3.filesystem.open_output_stream(key) as stream:
        stream.write(data)


@pytest.mark.parametrize(
    ("source", "bad", "named"),
    [
        ("s3://errs/junk/", "junk/notes.txt", "s3://errs/junk/notes.txt"),
        ("s3://errs/zero/", "zero/a.parquet", "s3://errs/zero/a.parquet"),
        ("s3://errs/odd%23/", "odd#/a%b.parquet", "s3://errs/odd%23/a%25b.parquet"),
        ("s3://errs/glob/*", "glob/a.parquet", "s3://errs/glob/a.parquet"),
    ],
)
def test_an_unreadable_object_is_named_by_its_uri(
    s3: S3, source: str, bad: str, named: str
) -> None:
    """The error names the object (a URI that reads it again), not the folder.

    (The bad object comes first: pyarrow reads its footer when the dataset is made.)
    """
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0]}), buffer)
    folder = bad.rsplit("/", 1)[0]
    _put_bytes(s3, f"errs/{folder}/z-good.parquet", buffer.getvalue())
    _put_bytes(s3, f"errs/{bad}", b"" if "zero" in bad else b"not parquet")
    with pytest.raises(SchemaError) as caught:
        open_dataset(source, "fit")
    assert f"cannot read the Parquet file {named} (" in str(caught.value)
    assert _named_reads(named, s3) == f"errs/{bad}"


def _named_reads(uri: str, s3: Any) -> str:
    """The key a URI names."""
    from fitpipe.columnar import resolve_uri

    return resolve_uri(uri, "fit")[1]
