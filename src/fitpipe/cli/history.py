"""A run's history on disk: per-epoch logs as CSV and JSON, and a PNG of the curves."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import keras

from fitpipe.errors import FitpipeValueError, message

__all__ = [
    "EpochRecorder",
    "dump_json",
    "require_matplotlib",
    "write_csv",
    "write_json",
    "write_plot",
]

_HINT = 'pip install matplotlib (or pip install "fitpipe[examples]")'


class EpochRecorder(keras.callbacks.Callback):
    """Keeps each epoch's logs with the epoch number (validation may skip epochs)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Records the epoch's logs as plain floats."""
        row: dict[str, Any] = {"epoch": int(epoch)}
        row.update({key: float(value) for key, value in (logs or {}).items()})
        self.records.append(row)


def _keys(records: Sequence[dict[str, Any]]) -> list[str]:
    keys: list[str] = ["epoch"]
    for row in records:
        keys.extend(k for k in row if k not in keys)
    return keys


def write_csv(records: Sequence[dict[str, Any]], path: str) -> str:
    """Writes one row per epoch (an empty cell where an epoch has no validation)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_keys(records), restval="")
        writer.writeheader()
        writer.writerows(records)
    return path


def write_json(records: Sequence[dict[str, Any]], path: str) -> str:
    """Writes ``{"epoch": [...], "history": {key: [...]}, "records": [...]}``.

    ``history`` is what ``keras.callbacks.History.history`` holds (a key's list skips epochs
    without that key); ``records`` has one object per epoch.
    """
    history: dict[str, list[float]] = {}
    for row in records:
        for key, value in row.items():
            if key != "epoch":
                history.setdefault(key, []).append(value)
    data = {"epoch": [row["epoch"] for row in records], "history": history, "records": records}
    return dump_json(data, path)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (in lists and tables too) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def dump_json(data: Any, path: str) -> str:
    """Writes ``data`` as valid JSON (RFC 8259): a NaN or infinity becomes ``null``."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(_finite(data), handle, indent=2, allow_nan=False)
    return path


def require_matplotlib(caller: str) -> Any:
    """Imports matplotlib's pyplot on the Agg backend, or says what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise FitpipeValueError(
            message(
                caller,
                "needs matplotlib to plot the history",
                "The plot of the loss and metric curves is drawn with matplotlib",
                f"Install it: {_HINT}; or pass --no-plot",
            )
        ) from err
    return plt


def write_plot(records: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """Draws the loss and each metric, train and validation, one panel each, to a PNG."""
    plt = require_matplotlib("fitpipe fit")
    names = [k for k in _keys(records) if k != "epoch" and not k.startswith("val_")]
    names.sort(key=lambda name: name != "loss")  # loss first, metrics in log order
    columns = min(len(names), 3) or 1
    rows = math.ceil(len(names) / columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            points = [(r["epoch"] + 1, r[key]) for r in records if key in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.fspath(path)
