"""``fitpipe fit`` with a grouped (``split_by``) or stratified ``validation_split``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_project import ROWS, SPEC, make_table

from fitpipe.cli import main
from fitpipe.columnar import key_array, key_hashes, validation_mask

USERS = 23


@pytest.fixture
def grouped(project: Path) -> Path:
    """The project's data with a ``user`` column: keys interleaved, several rows per key."""
    users = (np.arange(ROWS) * 7) % USERS  # every key's rows spread over the files
    table = make_table().append_column("user", [users.astype("int64")])
    (project / "grouped").mkdir()
    pq.write_table(table.slice(0, 40), project / "grouped" / "a.parquet", row_group_size=20)
    pq.write_table(table.slice(40), project / "grouped" / "b.parquet")
    return project


def _spec(project: Path, fit_lines: str, name: str = "split.toml") -> Path:
    text = SPEC.replace('source = "data"', 'source = "grouped"')
    text = text.replace("validation_split = 0.2\n", f"validation_split = 0.25\n{fit_lines}\n")
    text = text.replace('dir = "run"', 'dir = "split"')
    path = project / name
    path.write_text(text)
    return path


def test_grouped_split_puts_no_key_on_both_sides_and_reports_the_sizes(
    grouped: Path, capsys
) -> None:
    path = _spec(grouped, 'split_by = "user"')
    assert main(["fit", str(path), "--verbose", "2", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "validation_split=0.25 by split_by='user': " in out, out
    written = grouped / "split" / "validation_split.json"
    assert f"  {written}" in out.splitlines()  # listed with the files the run wrote
    sizes = json.loads(written.read_text())
    # The same sides, computed here from the keys alone: each key wholly on one side.
    users = pq.read_table(grouped / "grouped", columns=["user"]).column("user").to_numpy()
    held = validation_mask(key_hashes(key_array(users, "user")), 0.25)
    train_users, val_users = set(users[~held]), set(users[held])
    assert train_users and val_users and not train_users & val_users
    assert sizes == {
        "by": "split_by='user'",
        "validation_split": 0.25,
        "train_rows": int((~held).sum()),
        "validation_rows": int(held.sum()),
        "train_keys": len(train_users),
        "validation_keys": len(val_users),
    }
    assert sizes["train_keys"] + sizes["validation_keys"] == USERS
    history = json.loads((grouped / "split" / "history.json").read_text())["history"]
    assert len(history["val_loss"]) == 2


def test_stratified_split_from_the_cli_reports_rows_per_class(grouped: Path) -> None:
    path = _spec(grouped, "stratify = true")
    assert main(["fit", str(path), "--verbose", "0", "--no-plot"]) == 0
    sizes = json.loads((grouped / "split" / "validation_split.json").read_text())
    labels = pq.read_table(grouped / "grouped", columns=["y"]).column("y").to_numpy()
    assert sizes["by"] == "stratify" and sizes["validation_rows"] == ROWS - math.floor(
        ROWS * 0.75
    )  # as Keras
    assert set(sizes["classes"]) == {"0", "1"}  # JSON keys
    for label, side in sizes["classes"].items():
        count = int((labels == int(label)).sum())
        assert side["train"] + side["validation"] == count
        assert abs(side["validation"] - 0.25 * count) <= 1


def test_split_by_naming_no_column_is_refused_naming_the_key(grouped: Path, capsys) -> None:
    path = _spec(grouped, 'split_by = "usr"')
    assert main(["fit", str(path), "--verbose", "0", "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert f"cannot use `fit.split_by` in {path}: it names no column of" in err, err
    assert "(did you mean 'user'?)" in err and "Received: fit.split_by='usr'" in err
    assert "Traceback" not in err and not (grouped / "split").exists()


def test_a_plain_split_writes_no_split_sizes(grouped: Path) -> None:
    path = _spec(grouped, "")
    assert main(["fit", str(path), "--verbose", "0", "--no-plot"]) == 0
    assert not (grouped / "split" / "validation_split.json").exists()
    assert (grouped / "split" / "model.keras").exists()
