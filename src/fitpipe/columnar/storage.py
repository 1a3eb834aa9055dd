"""Where Parquet data lives: local paths, or URIs of object stores through pyarrow's filesystems.

A URI (``s3://bucket/prefix/``, ``gs://...``, ``hdfs://...``) is opened with
``pyarrow.fs.FileSystem.from_uri``, which takes its credentials from the usual places: for S3,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), the region from
``AWS_DEFAULT_REGION`` or the bucket itself, and an S3-compatible server's address from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (``http://127.0.0.1:9000``), or from the URI's
own query (``s3://bucket/key?endpoint_override=host:9000&scheme=http``). A filesystem is made
once per scheme, host, query and credentials, and reused.

A URI is read once, by :func:`parse_uri`, into a :class:`Location`: the filesystem's root and
query, the path inside it and whether it names a prefix. Its path is percent-decoded as
``FileSystem.from_uri`` decodes it (``a%20b`` is the key ``a b``, ``%23`` a ``#``, ``%3F`` a
``?``, ``%5B`` a ``[`` that is no wildcard); a character a URI cannot hold as written (a space,
``é``) stands for itself. A ``#`` (the start of a fragment, which ``from_uri`` drops: another
object would be read) and a ``%`` starting no escape are refused. A trailing slash names a
prefix, never the object of the same name. Every URI made from a location (a glob's matches, a
bucket's) keeps its query, so it reaches the same store.

Every error names the URI as given, and says what the store answered (no such bucket, no such
key, access denied).
"""

from __future__ import annotations

import dataclasses
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
    "Location",
    "bucket_uri",
    "display_path",
    "files_below",
    "filesystem_of",
    "hidden_below",
    "is_uri",
    "list_prefix",
    "local_file_path",
    "missing_what",
    "name_below",
    "parse_uri",
    "partial_key",
    "resolve_uri",
    "store_path",
    "uri_info",
]

#: The schemes pyarrow's filesystems open (``file`` included, for completeness).
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: Glob characters of a URI: ``*``, ``**`` and ``[...]`` (``?`` starts the URI's query).
_GLOB = re.compile(r"[*[]")
#: What a URI holds as written besides letters, digits and ``-._~``: RFC 3986's delimiters of a
#: path, ``%`` escapes and a glob's ``*`` and ``[...]`` (anything else, a space or ``é``, is
#: percent-encoded before the URI is read: it stands for itself).
_WRITTEN = "/:@!$&'()+,;=*%[]"
#: A ``%`` that starts no escape.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: Characters of a key that a URI made from it encodes, as they mean something there.
_MEANING = re.compile(r"[%#?*\[\]]")
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


def _escaped(path: str) -> str:
    """``path`` with the characters that mean something in a URI percent-encoded."""
    return _MEANING.sub(lambda found: f"%{ord(found.group()):02X}", path)


@dataclasses.dataclass(frozen=True)
class Location:
    """A URI read once (:func:`parse_uri`): its filesystem, the path in it, what it names.

    Attributes:
        uri: The URI as given.
        scheme: Its scheme, in lower case.
        authority: Its host part as written (an S3 or GCS URI's bucket).
        query: Its query (``endpoint_override=host:9000&scheme=http``), "" for none.
        path: The path in the filesystem, percent-decoded, without a trailing slash
            (``bucket/key`` for S3).
        prefix: The URI ends with a slash (or names a bucket alone): a prefix (folder),
            never the object of the same name.
        glob: The path as written (percent-encoded) when it holds a wildcard; else None.
    """

    uri: str
    scheme: str
    authority: str
    query: str
    path: str
    prefix: bool
    glob: str | None

    @property
    def root(self) -> str:
        """``s3://bucket/``: what its filesystem is made for (with :attr:`query`)."""
        return f"{self.scheme}://{self.authority}/"

    @property
    def buckets(self) -> bool:
        """Its paths start with the bucket (``s3``, ``gs``)."""
        return self.scheme in _BUCKETS

    @property
    def glob_folder(self) -> str:
        """A glob's folder before its first wildcard, decoded ("" for none): listed for it."""
        if self.glob is None:
            return self.path
        fixed = self.glob[: _GLOB.search(self.glob).start()]  # type: ignore[union-attr]
        return urllib.parse.unquote(fixed.rsplit("/", 1)[0] if "/" in fixed else fixed)

    def uri_of(self, path: str) -> str:
        """The URI of ``path``, a path of the same filesystem, with the same query.

        The characters that mean something in a URI (``%``, ``#``, ``?``, ``*``, ``[``,
        ``]``) are percent-encoded, so that it names ``path`` again.
        """
        host = "" if self.buckets else self.authority
        return f"{self.scheme}://{host}{_escaped(path)}" + (f"?{self.query}" if self.query else "")


def _uri_error(uri: str, what: str, fix: str, caller: str) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            caller,
            f"cannot read the URI {uri}: {what}",
            "A URI's key is percent-encoded where it holds a character that means something "
            "in a URI: %23 for '#', %3F for '?', %25 for '%', %5B and %5D for '[' and ']', "
            "%2A for '*'",
            fix,
            x=uri,
        )
    )


def parse_uri(uri: str, caller: str) -> Location:
    """Reads ``uri`` into a :class:`Location`, as ``pyarrow.fs.FileSystem.from_uri`` reads it.

    Raises:
        FitpipeValueError: The URI holds a ``#`` (a fragment: ``from_uri`` drops it and reads
            another object), a ``%`` that starts no escape, or escapes of no UTF-8 text.
    """
    if "#" in uri:
        fix = "Write %23 for a '#' of a key (s3://bucket/runs/v1%23fixed/)"
        raise _uri_error(uri, "a '#' starts the URI's fragment, which names no object", fix, caller)
    base, _, query = uri.partition("?")
    written = urllib.parse.quote(base, safe=_WRITTEN)  # a space or "é" stands for itself
    parsed = urllib.parse.urlsplit(written)
    scheme = parsed.scheme.lower()
    raw = parsed.netloc + parsed.path if scheme in _BUCKETS else parsed.path
    try:
        if _BAD_ESCAPE.search(raw):
            raise ValueError
        path = urllib.parse.unquote(raw, errors="strict")
    except (ValueError, UnicodeDecodeError) as err:
        fix = "Write %25 for a '%' of a key, and escapes (%XX) of UTF-8 text"
        raise _uri_error(uri, "a '%' that starts no escape of text", fix, caller) from err
    prefix = raw.endswith("/") or (scheme in _BUCKETS and "/" not in raw)
    glob = raw if _GLOB.search(raw) else None
    return Location(uri, scheme, parsed.netloc, query, path.rstrip("/") or path, prefix, glob)


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


def filesystem_of(location: Location, caller: str, doing: str = READ) -> pafs.FileSystem:
    """The filesystem of a location, made with its query (one per root, query and credentials).

    ``doing``: what the request is for, as an error words it (:data:`READ`, :data:`CHECK`,
    :data:`WRITE`).

    Raises:
        DataMismatchError: pyarrow cannot make a filesystem of the URI.
    """
    environment = tuple(os.environ.get(name) for name in _ENVIRONMENT)
    try:
        return _filesystem(location.root, location.query, environment)
    except (pa.ArrowException, OSError, ValueError) as err:
        what = "no filesystem opens it"
        if location.query:  # ("Unexpected query parameter": a '?' of a key?)
            what += ", with its query (a '?' starts it: write %3F for a '?' of a key)"
        raise _store_error(location.uri, what, err, caller, doing) from err


def store_path(uri: str, caller: str = "predict") -> tuple[str, str]:
    """The store of ``uri`` and the path in it, as every request of it reads them.

    The store is the scheme for a store of buckets (``s3``; ``gcs`` is ``gs``), else the
    scheme and host (``hdfs://namenode``); the path is ``bucket/key`` (S3) or the path on
    the host, decoded, without the URI's query and trailing slashes (:func:`parse_uri`).
    """
    location = parse_uri(uri, caller)
    if location.buckets:
        return ("gs" if location.scheme == "gcs" else location.scheme), location.path
    return f"{location.scheme}://{location.authority}", location.path


def resolve_uri(uri: str, caller: str, doing: str = READ) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` and the path inside it (``bucket/key`` for S3).

    ``doing``: what the request is for, as an error words it (see :func:`filesystem_of`).

    Raises:
        FitpipeValueError: The URI cannot be read (:func:`parse_uri`).
        DataMismatchError: pyarrow cannot make a filesystem of the URI.
    """
    location = parse_uri(uri, caller)
    return filesystem_of(location, caller, doing), location.path


def hidden_below(relative: str, pattern: str = "") -> bool:
    """True for a path below a name starting '.' or '_' that ``pattern`` does not name so.

    ``relative``: a path below a folder; ``pattern``: the glob below the same folder that
    matched it ("" for a folder's listing, which skips every such name).
    """
    named = {part[0] for part in pattern.split("/") if part[:1] in ("_", ".")}
    return any(part[:1] in ("_", ".") and part[0] not in named for part in relative.split("/"))


def list_prefix(
    filesystem: pafs.FileSystem, folder: str, uri: str, caller: str
) -> tuple[list[str], list[str]]:
    """The files below ``folder`` in path order: those read, and all of them.

    Those read skip names starting '.' or '_'; all of them show what else the folder holds
    (a table's log).

    Raises:
        DataMismatchError: The store refuses to list the folder.
    """
    cut = len(folder) + 1 if folder else 0
    files = files_below(filesystem, folder, uri, caller)
    return [path for path in files if not hidden_below(path[cut:])], files


def files_below(filesystem: pafs.FileSystem, folder: str, uri: str, caller: str) -> list[str]:
    """Every file below ``folder`` (at any depth), in path order; none for a missing folder.

    Raises:
        DataMismatchError: The store refuses to list the folder.
    """
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(folder, recursive=True))
    except FileNotFoundError:
        return []
    except (pa.ArrowException, OSError) as err:
        raise _store_error(uri, "the store refused to list it", err, caller) from err
    return sorted({i.path for i in infos if i.type == pafs.FileType.File})


def _info(filesystem: pafs.FileSystem, location: Location) -> pafs.FileInfo:
    """The location's :class:`pyarrow.fs.FileInfo`; a prefix's is a folder's or missing.

    pyarrow drops a trailing slash: ``bucket/exports/`` would be the object ``exports``.
    """
    info = filesystem.get_file_info(location.path)
    if not location.prefix or info.type != pafs.FileType.File:
        return info
    below = filesystem.get_file_info(pafs.FileSelector(location.path, allow_not_found=True))
    kind = pafs.FileType.Directory if below else pafs.FileType.NotFound
    return pafs.FileInfo(location.path, kind)


def uri_info(
    uri: str, caller: str, doing: str = READ
) -> tuple[pafs.FileSystem, str, pafs.FileInfo]:
    """The filesystem, path and :class:`pyarrow.fs.FileInfo` of ``uri``.

    A URI ending with a slash is a prefix: a folder when keys lie below it, else missing
    (an object of the same name is not read). ``doing``: see :func:`filesystem_of`.

    Raises:
        DataMismatchError: The store refuses the request (credentials, permissions, network).
    """
    location = parse_uri(uri, caller)
    filesystem = filesystem_of(location, caller, doing)
    try:
        info = _info(filesystem, location)
    except (pa.ArrowException, OSError) as err:
        raise _store_error(uri, "the store refused the request", err, caller, doing) from err
    return filesystem, location.path, info


def bucket_uri(uri: str, caller: str) -> str | None:
    """The URI of the bucket of ``uri``, with its query; None for a scheme without buckets."""
    location = parse_uri(uri, caller)
    return location.uri_of(location.path.split("/", 1)[0]) if location.buckets else None


def missing_what(uri: str, caller: str) -> str:
    """Why a missing URI is missing: its bucket, or only its key or prefix."""
    bucket = bucket_uri(uri, caller)
    if bucket is not None and uri_info(bucket, caller)[2].type == pafs.FileType.NotFound:
        return f"no such bucket {parse_uri(bucket, caller).path!r}"
    return "no such key or prefix"


#: The attribute of a Python filesystem's handler naming the folder its paths lie below.
_BELOW = "fitpipe_below"


def name_below(filesystem: pafs.FileSystem, folder: str) -> None:
    """Names the paths of a Python filesystem (deltalake's) below ``folder`` in messages.

    ``folder``: a local path or a URI; :func:`display_path` then names a path ``folder/path``
    (the handler keeps it when pickled).
    """
    if isinstance(filesystem, pafs.PyFileSystem):
        setattr(filesystem.handler, _BELOW, local_file_path(folder) or folder)


def display_path(filesystem: pafs.FileSystem, path: str) -> str:
    """A path of ``filesystem`` as the user knows it: a URI for an object store.

    The URI names the object again: a key's ``%``, ``#``, ``?``, ``*``, ``[`` and ``]`` are
    percent-encoded. A Python filesystem's path is named below its folder (:func:`name_below`).
    """
    kind = filesystem.type_name
    if kind == "local":
        return path
    below = getattr(getattr(filesystem, "handler", None), _BELOW, None)
    if below is not None:
        return below.rstrip("/") + "/" + path
    scheme = "gs" if kind == "gcs" else kind
    return f"{scheme}://{_escaped(path)}"


def partial_key(path: str) -> str:
    """A hidden key next to ``path`` (``.name.<random>.partial``) for a write in progress.

    Readers skip names starting with '.', so a partial object is never read as data.
    """
    folder, name = posixpath.split(path)
    hidden = f".{name}.{uuid.uuid4().hex}.partial"
    return f"{folder}/{hidden}" if folder else hidden
