"""Where Parquet data lives: local paths, or URIs of object stores through pyarrow's filesystems.

A URI (``s3://bucket/prefix/``, ``gs://...``, ``hdfs://...``) is opened with
``pyarrow.fs.FileSystem.from_uri``, which takes its credentials from the usual places: for S3,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), the region from
``AWS_DEFAULT_REGION`` or the bucket itself, and an S3-compatible server's address from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (``http://127.0.0.1:9000``), or from the URI's
own query (``s3://bucket/key?endpoint_override=host:9000&scheme=http``). A filesystem is made
once per scheme, host and credentials, and reused.

Every error names the URI as given, and says what the store answered (no such bucket, no such
key, access denied).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import urllib.parse
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from fitpipe.errors import DataMismatchError, FitpipeValueError, message

__all__ = [
    "CHECK",
    "READ",
    "WRITE",
    "display_path",
    "expand_uri",
    "is_uri",
    "local_file_path",
    "missing_what",
    "partial_key",
    "resolve_uri",
    "store_path",
    "uri_glob_matches",
    "uri_info",
]

#: The schemes pyarrow's filesystems open (``file`` included, for completeness).
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: Glob characters of a URI: ``*``, ``**`` and ``[...]`` (``?`` starts the URI's query).
_GLOB = re.compile(r"[*[]")
#: Schemes whose paths start with the bucket (the URI's host): ``s3://bucket/key``.
_BUCKETS = ("s3", "gs", "gcs")
#: Environment variables a filesystem is made from (one is made again when they change).
_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
)


def is_uri(x: Any) -> bool:
    """True for a string URI of a filesystem pyarrow opens (``s3://``, ``gs://``, ...)."""
    if not isinstance(x, str):
        return False
    found = _URI.match(x)
    return found is not None and found.group(1).lower() in SCHEMES


def local_file_path(x: Any) -> str | None:
    """The local path a ``file://`` URI names (``file:///tmp/a%20b`` is ``/tmp/a b``).

    None for anything else, a ``file://`` URI of another host than ``localhost`` included.
    """
    if not isinstance(x, str) or not x[:7].lower() == "file://":
        return None
    parsed = urllib.parse.urlsplit(x)
    if parsed.netloc not in ("", "localhost") or not parsed.path:
        return None
    return urllib.parse.unquote(parsed.path)


def local_target(path: str | os.PathLike[str]) -> str:
    """The absolute local path a write to ``path`` lands on.

    A ``file://`` URI is its local path, a bare name the working folder's, and a symbolic
    link the path of the file it points at (written through; the link stays).
    """
    target = os.path.abspath(local_file_path(path) or os.fspath(path))
    return os.path.realpath(target) if os.path.islink(target) else target


def _scheme_and_root(uri: str) -> str:
    """``s3://bucket/`` of ``s3://bucket/a/b``: what one filesystem is made for."""
    parsed = urllib.parse.urlsplit(uri)
    return f"{parsed.scheme.lower()}://{parsed.netloc}/"


@functools.lru_cache(maxsize=32)
def _filesystem(root: str, query: str, environment: tuple[str | None, ...]) -> pafs.FileSystem:
    del environment  # part of the cache key only: new credentials make a new filesystem
    filesystem, _ = pafs.FileSystem.from_uri(root + ("?" + query if query else ""))
    return filesystem


#: What a request of a URI was for, as errors word it (the output's check, its write).
READ, CHECK, WRITE = "read", "check the output", "write"


def _store_error(
    uri: str, what: str, err: BaseException | None, caller: str, doing: str = READ
) -> FitpipeValueError:
    cause = f" ({err})" if err is not None else ""
    needs = (
        "A URI names a bucket and a key or prefix that exist, readable"
        if doing == READ
        else "An output URI names a key in a bucket that exists, writable"
    )
    return DataMismatchError(
        message(
            caller,
            f"cannot {doing} {uri}: {what}{cause}",
            f"{needs} with the credentials of the environment (for S3: AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL for an "
            "S3-compatible server)",
            "Check the bucket and the key, and the credentials and endpoint in the environment",
            x=uri,
        )
    )


def store_path(uri: str) -> tuple[str, str]:
    """The store of ``uri`` and the path in it, as every request of it reads them.

    The store is the scheme for a store of buckets (``s3``; ``gcs`` is ``gs``), else the
    scheme and host (``hdfs://namenode``); the path is ``bucket/key`` (S3) or the path on
    the host, without the URI's query (``?endpoint_override=...``) and trailing slashes.
    """
    base = uri.partition("?")[0]
    parsed = urllib.parse.urlsplit(base)
    scheme = parsed.scheme.lower()
    if scheme in _BUCKETS:
        store, path = ("gs" if scheme == "gcs" else scheme), parsed.netloc + parsed.path
    else:
        store, path = f"{scheme}://{parsed.netloc}", parsed.path
    return store, path.rstrip("/") or path


def resolve_uri(uri: str, caller: str, doing: str = READ) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` and the path inside it (``bucket/key`` for S3).

    ``doing``: what the request is for, as an error words it (:data:`READ`, :data:`CHECK`,
    :data:`WRITE`).

    Raises:
        DataMismatchError: pyarrow cannot make a filesystem of the URI.
    """
    base, _, query = uri.partition("?")
    environment = tuple(os.environ.get(name) for name in _ENVIRONMENT)
    try:
        filesystem = _filesystem(_scheme_and_root(base), query, environment)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _store_error(uri, "no filesystem opens it", err, caller, doing) from err
    return filesystem, store_path(uri)[1]


def _uri_of(uri: str, path: str) -> str:
    """The URI of ``path``, a path of the filesystem of ``uri``."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme.lower() in _BUCKETS:
        return f"{parsed.scheme}://{path}"
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def uri_info(
    uri: str, caller: str, doing: str = READ
) -> tuple[pafs.FileSystem, str, pafs.FileInfo]:
    """The filesystem, path and :class:`pyarrow.fs.FileInfo` of ``uri``.

    ``doing``: what the request is for, as an error words it (see :func:`resolve_uri`).

    Raises:
        DataMismatchError: The store refuses the request (credentials, permissions, network).
    """
    filesystem, path = resolve_uri(uri, caller, doing)
    try:
        info = filesystem.get_file_info(path)
    except (pa.ArrowException, OSError) as err:
        raise _store_error(uri, "the store refused the request", err, caller, doing) from err
    return filesystem, path, info


def missing_what(uri: str, caller: str) -> str:
    """Why a missing URI is missing: its bucket, or only its key or prefix."""
    bucket = resolve_uri(uri, caller)[1].split("/", 1)[0]
    if uri_info(_uri_of(uri, bucket), caller)[2].type == pafs.FileType.NotFound:
        return f"no such bucket {bucket!r}"
    return "no such key or prefix"


def _pattern(glob: str) -> re.Pattern[str]:
    """A regular expression for a glob: ``*`` within a name, ``**/`` any folders, ``[...]``."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 1 :]:
            end = glob.index("]", i + 1)
            out.append("[" + glob[i + 1 : end].replace("!", "^", 1) + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def expand_uri(uri: str, caller: str) -> list[str]:
    """``uri``, or with a glob the URIs of the files it matches in sorted order.

    ``*`` matches within a name, ``**/`` any folders, ``[...]`` one character of a set; ``?``
    is not a wildcard in a URI (it starts the query, which each match keeps).

    Raises:
        DataMismatchError: The store refuses to list the folder above the glob.
    """
    base, mark, query = uri.partition("?")
    found = _GLOB.search(base)
    if found is None:
        return [uri]
    filesystem, path = resolve_uri(uri, caller)
    fixed = path[: _GLOB.search(path).start()]  # type: ignore[union-attr]
    folder = fixed.rsplit("/", 1)[0] if "/" in fixed else fixed
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(folder, recursive=True))
    except FileNotFoundError:
        return []
    except (pa.ArrowException, OSError) as err:
        raise _store_error(uri, "the store refused to list it", err, caller) from err
    pattern = _pattern(path)
    return sorted(
        _uri_of(base, info.path) + mark + query
        for info in infos
        if info.type == pafs.FileType.File and pattern.match(info.path)
    )


def uri_glob_matches(glob: str, uri: str) -> bool:
    """Whether ``uri`` is a key the URI glob ``glob`` matches (as :func:`expand_uri` lists)."""
    (store, pattern), (other, path) = store_path(glob), store_path(uri)
    return store == other and _pattern(pattern).match(path) is not None


def display_path(filesystem: pafs.FileSystem, path: str) -> str:
    """A path of ``filesystem`` as the user knows it: a URI for an object store."""
    kind = filesystem.type_name
    if kind == "local":
        return path
    scheme = "gs" if kind == "gcs" else kind
    return f"{scheme}://{path}"


def partial_key(path: str) -> str:
    """A hidden key next to ``path`` (``.name.<random>.partial``) for a write in progress.

    Readers skip names starting with '.', so a partial object is never read as data.
    """
    folder, name = posixpath.split(path)
    hidden = f".{name}.{uuid.uuid4().hex}.partial"
    return f"{folder}/{hidden}" if folder else hidden
