"""A Parquet file that goes away while it is read: the operating system's error, not "corrupt".

Streamed files are opened again every epoch; one deleted or moved in between raised a
``SchemaError`` (a ``ValueError``) telling the user to replace a corrupt file, which
``except OSError`` does not catch. It is now the ``OSError`` of its kind, worded by fitpipe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fitpipe
from fitpipe import limits
from fitpipe.errors import SchemaError

FEATURES = ["f0", "f1"]


class _Remove(keras.callbacks.Callback):
    """Deletes (or moves) a file at the end of the first epoch."""

    def __init__(self, path: Path, moved: bool) -> None:
        super().__init__()
        self.path, self.moved = path, moved

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == 0:
            if self.moved:
                self.path.rename(self.path.with_name("elsewhere.bin"))
            else:
                os.remove(self.path)


def _folder(tmp_path: Path) -> Path:
    x = np.random.default_rng(0).normal(size=(400, 2)).astype("float32")
    for k, part in enumerate((x[:200], x[200:])):
        columns = {**{f: part[:, i] for i, f in enumerate(FEATURES)}, "label": part[:, 0]}
        pq.write_table(pa.table(columns), tmp_path / f"{k}.parquet", row_group_size=50)
    return tmp_path


@pytest.mark.parametrize("moved", [False, True])
def test_a_streamed_file_gone_between_epochs_is_a_file_not_found_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: bool
) -> None:
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed, read every epoch
    folder = _folder(tmp_path)
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] `fit` cannot read the Parquet "):
        trainer.fit(
            str(folder),
            schema=fitpipe.Schema(FEATURES, "label"),
            batch_size=50,
            epochs=3,
            callbacks=[_Remove(folder / "1.parquet", moved)],
            verbose=0,
        )


def test_a_truncated_file_is_still_a_schema_error_naming_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    path = folder / "1.parquet"
    path.write_bytes(path.read_bytes()[:40])
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(SchemaError, match=r"cannot read the Parquet file .*1\.parquet"):
        trainer.fit(str(folder), schema=fitpipe.Schema(FEATURES, "label"), verbose=0)


class _Rewrite(keras.callbacks.Callback):
    """Writes other rows over a file (renamed over it, as an export job does) after epoch 1."""

    def __init__(self, path: Path, rows: int, group: int) -> None:
        super().__init__()
        self.path, self.rows, self.group = path, rows, group

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == 0:
            part = np.random.default_rng(9).normal(size=(self.rows, 2)).astype("float32")
            columns = {**{f: part[:, i] for i, f in enumerate(FEATURES)}, "label": part[:, 1]}
            staged = self.path.with_name("staged.bin")
            pq.write_table(pa.table(columns), staged, row_group_size=self.group, **_PLAIN)
            os.replace(staged, self.path)


#: Parquet written alike for equal rows: the same bytes long whatever the values.
_PLAIN: dict[str, Any] = {"compression": "none", "use_dictionary": False, "write_statistics": False}


@pytest.mark.parametrize(
    ("rows", "group"), [(230, 40), (200, 50)], ids=["another layout", "the same layout"]
)
def test_a_streamed_file_rewritten_between_epochs_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, group: int
) -> None:
    # A streamed file is read again every epoch by the row groups its footer listed when
    # planned: rewritten, another layout gave pyarrow's "Couldn't deserialize thrift" as a
    # corrupt file (SchemaError: "Replace or remove the file"); the same layout read the new
    # rows silently, mid-run.
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed, read every epoch
    x = np.random.default_rng(0).normal(size=(200, 2)).astype("float32")
    path = tmp_path / "rows.parquet"
    columns = {**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": x[:, 0]}
    pq.write_table(pa.table(columns), path, row_group_size=50, **_PLAIN)
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(OSError, match=r"rewritten after it was planned.*moves, rewrites") as err:
        trainer.fit(
            str(path),
            schema=fitpipe.Schema(FEATURES, "label"),
            batch_size=50,
            epochs=3,
            callbacks=[_Rewrite(path, rows, group)],
            verbose=0,
        )
    assert not isinstance(err.value, ValueError) and str(path) in str(err.value)
    history = trainer.fit(str(path), schema=fitpipe.Schema(FEATURES, "label"), verbose=0)
    assert len(history.epoch) == 1  # the next `fit` plans the new file and reads it


@pytest.mark.parametrize("columns", [1, 2])
def test_corrupt_pages_under_an_intact_footer_are_worded_as_a_corrupt_file(
    tmp_path: Path, columns: int
) -> None:
    # A column stored and read as the same type cannot fail for its type: Arrow's "Couldn't
    # deserialize thrift" of a damaged page header was advised to cast the column.
    path = tmp_path / "damaged.parquet"
    names = FEATURES[:columns]
    table = pa.table(
        {**{f: np.arange(100, dtype="float32") for f in names}, "label": np.zeros(100)}
    )
    pq.write_table(table, path, **_PLAIN)
    data = bytearray(path.read_bytes())
    data[4:40] = b"\xff" * 36  # the first page header; the footer stays readable
    path.write_bytes(bytes(data))
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((columns,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(SchemaError, match="Replace or remove the file if it is corrupt") as err:
        trainer.fit(str(path), schema=fitpipe.Schema(names, "label"), verbose=0)
    assert str(path) in str(err.value) and "one type" not in str(err.value)
