"""What the documentation's blocks take as given (``# placeholders: ...``), made for real.

Each name maps to a function ``make(folder, spec_toml)`` returning the Python value to bind
(files and folders are written into ``folder``, the block's working folder, and bind
nothing). Names ending in ``/`` or with a file extension are files or folders.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Folders real Spark wrote (tests/data/make_spark_fixtures.py).
SPARK = Path(__file__).resolve().parents[1] / "data" / "spark"

#: The columns the README's tabular examples use.
COLUMNS = ("id", "age", "income", "label", "w")

FACTORY = """\
import keras


def build():
    return keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
"""


def table(rows: int = 120, seed: int = 0, nulls: bool = True, label: bool = True) -> pa.Table:
    """People with an age and an income (a few incomes null) and a 0/1 label."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 70, rows).astype("float32")
    income = rng.uniform(10, 90, rows).astype("float32")
    columns: dict[str, Any] = {"id": np.arange(rows, dtype="int64") + 1000, "age": age}
    mask = (np.arange(rows) % 17 == 3) if nulls else None
    columns["income"] = pa.array(income, mask=mask)
    if label:
        columns["label"] = (age + income > 90).astype("int32")
        columns["w"] = np.ones(rows, "float32")
    return pa.table(columns)


def _parquet_folder(folder: Path, label: bool = True, nulls: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = table(nulls=nulls, label=label)
    pq.write_table(data.slice(0, 60), folder / "part-0.parquet", row_group_size=30)
    pq.write_table(data.slice(60), folder / "part-1.parquet")


def _model(inputs: int) -> Any:
    import keras

    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(4, "relu"), keras.layers.Dense(1, "sigmoid")]
    )


def _trainer(_: Path, __: str) -> Any:
    import fitpipe

    trainer = fitpipe.Trainer(_model(2))
    trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return trainer


def _xy(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((256, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def _generator(_: Path, __: str) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    def generator() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        x, y = _xy(1)
        while True:
            for start in range(0, 256, 32):
                yield x[start : start + 32], y[start : start + 32].astype("float32")

    return generator


def _schema(_: Path, __: str) -> Any:
    import fitpipe

    return fitpipe.Schema(
        features=["age", "income"],
        targets="label",
        sample_weight="w",
        passthrough=["id"],
        fill={"income": 0.0},
    )


def _polars_frame(_: Path, __: str) -> Any:
    import polars

    return polars.from_arrow(table(seed=2))


def _files(make: Callable[[Path], None]) -> Callable[[Path, str], None]:
    return lambda folder, _: make(folder)


def _run(folder: Path, spec: str) -> None:
    from fitpipe.cli import main

    if not (folder / "run" / "model.keras").exists():
        for name in ("data/train/", "spec.toml", "model_factory.py"):
            make_placeholder(name, folder, spec)
        assert main(["fit", str(folder / "spec.toml"), "--verbose", "0", "--no-plot"]) == 0


def _spec(folder: Path, spec: str) -> None:
    (folder / "spec.toml").write_text(spec)


#: Services the placeholders started (a local S3 server), stopped by :func:`close_services`.
_SERVICES = contextlib.ExitStack()
_BUCKETS: dict[str, Any] = {}


def _bucket(folder: Path, _: str) -> None:
    """A local S3 server (started once, environment pointing at it) with s3://my-bucket/."""
    from object_store import s3_server

    if "server" not in _BUCKETS:
        _BUCKETS["server"] = _SERVICES.enter_context(s3_server())
        _BUCKETS["server"].bucket("my-bucket")
        local = folder / "my-bucket"
        _parquet_folder(local / "exports")
        _parquet_folder(local / "new-rows", label=False)
        _BUCKETS["server"].upload(local, "s3://my-bucket")


def close_services() -> None:
    """Stops what the placeholders started (the S3 server) and restores the environment."""
    _SERVICES.close()
    _BUCKETS.clear()


MAKERS: dict[str, Callable[[Path, str], Any]] = {
    "model": lambda *_: _model(8),
    "x": lambda *_: _xy(0)[0],
    "y": lambda *_: _xy(0)[1],
    "generator": _generator,
    "trainer": _trainer,
    "schema": _schema,
    "polars_frame": _polars_frame,
    "path": lambda folder, _: str(Path("exports/2026-11/part-0.parquet")),
    "make_model": lambda *_: lambda: _model(2),
    "exports/2026-11/": _files(lambda f: _parquet_folder(f / "exports" / "2026-11")),
    "new-rows/": _files(lambda f: _parquet_folder(f / "new-rows", label=False)),
    "train/": _files(lambda f: _parquet_folder(f / "train")),
    "data/train/": _files(lambda f: _parquet_folder(f / "data" / "train", nulls=False)),
    "new/": _files(lambda f: _parquet_folder(f / "new", label=False, nulls=False)),
    "sales/": _files(lambda f: shutil.copytree(SPARK / "sales", f / "sales", dirs_exist_ok=True)),
    "model_factory.py": _files(lambda f: (f / "model_factory.py").write_text(FACTORY)),
    "spec.toml": _spec,
    "run/": _run,
    "s3://my-bucket/": _bucket,
}


def make_placeholder(name: str, folder: Path, spec: str) -> Any:
    """Makes one placeholder; returns its value (None for files).

    Args:
        name: The name as the block writes it.
        folder: The block's working folder.
        spec: The document's TOML spec block (for ``spec.toml``).

    """
    if name not in MAKERS:
        raise KeyError(f"no placeholder {name!r}: add it to tests/docs/placeholders.py")
    return MAKERS[name](folder, spec)


def is_file(name: str) -> bool:
    """Whether the placeholder is a file or folder (binds no Python name)."""
    return name.endswith("/") or "." in name
