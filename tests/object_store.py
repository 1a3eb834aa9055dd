"""A local S3-compatible server for tests: moto's server mode on 127.0.0.1, on a free port.

:func:`s3_server` starts it, points the usual environment variables at it
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``), and on leaving stops it and restores the environment: no service is
left running. Credentials are not checked until :meth:`S3.check_credentials` turns moto's
authentication on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

ACCESS = {
    "AWS_ACCESS_KEY_ID": "fitpipe-test",
    "AWS_SECRET_ACCESS_KEY": "fitpipe-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class S3:
    """A running server: its URL, a boto3 client and a pyarrow filesystem on it."""

    url: str
    client: Any
    filesystem: pafs.S3FileSystem

    def bucket(self, name: str) -> str:
        """Creates a bucket; returns its URI (``s3://name``)."""
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def upload(self, folder: Path, uri: str) -> list[str]:
        """Copies every file under ``folder`` to keys under ``uri``; returns their URIs."""
        prefix = uri.split("://", 1)[1].rstrip("/")
        done = []
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                with self.filesystem.open_output_stream(key) as stream:
                    stream.write(path.read_bytes())
                done.append(f"s3://{key}")
        return done

    def keys(self, bucket: str) -> list[str]:
        """Every key of a bucket holding data, sorted (not empty folder markers, ``out/``)."""
        found = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(item["Key"] for item in found if not item["Key"].endswith("/"))

    @contextlib.contextmanager
    def check_credentials(self) -> Iterator[None]:
        """Turns moto's authentication on: unknown access keys are refused (403)."""
        self._auth("0")
        try:
            yield
        finally:
            self._auth("inf")

    def _auth(self, count: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would be parsed away
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()


@contextlib.contextmanager
def s3_server() -> Iterator[S3]:
    """Runs a moto S3 server on 127.0.0.1 with the environment pointing at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in (*ACCESS, "AWS_ENDPOINT_URL")}
    os.environ.update(ACCESS, AWS_ENDPOINT_URL=url)
    try:
        client = boto3.client("s3", endpoint_url=url, **_lower(ACCESS))
        filesystem = pafs.S3FileSystem(
            access_key=ACCESS["AWS_ACCESS_KEY_ID"],
            secret_key=ACCESS["AWS_SECRET_ACCESS_KEY"],
            region=ACCESS["AWS_DEFAULT_REGION"],
            endpoint_override=url,
        )
        yield S3(url, client, filesystem)
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _lower(access: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": access["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": access["AWS_SECRET_ACCESS_KEY"],
        "region_name": access["AWS_DEFAULT_REGION"],
    }
