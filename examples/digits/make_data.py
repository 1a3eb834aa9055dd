"""Writes scikit-learn's bundled digits (8x8 images) as Parquet for the digits walkthrough.

Run: python3 examples/digits/make_data.py [FOLDER]   (default: examples/digits/data)

Writes ``train/`` (1697 images in three files) and ``new/`` (100 images to predict, without
the ``digit`` column). Each row has an ``id``, the 64 pixels ``px0`` ... ``px63`` (0 to 16,
row by row), the ``digit`` (0-9, the target) and its ``name`` (a string: "zero" ...).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NEW_ROWS = 100


def table() -> pa.Table:
    """The 1797 images, shuffled (the data set is ordered by digit)."""
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    columns: dict[str, object] = {"id": order.astype("int64")}
    pixels = digits.data[order].astype("float32")
    columns.update({f"px{i}": pixels[:, i] for i in range(pixels.shape[1])})
    columns["digit"] = digits.target[order].astype("int32")
    columns["name"] = pa.array([NAMES[d] for d in digits.target[order]])
    return pa.table(columns)


def main(folder: str | None = None) -> str:
    folder = folder or os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    data = table()
    train, new = data.slice(0, data.num_rows - NEW_ROWS), data.slice(data.num_rows - NEW_ROWS)
    os.makedirs(os.path.join(folder, "train"), exist_ok=True)
    os.makedirs(os.path.join(folder, "new"), exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(train.num_rows), 3)):
        chunk = train.slice(int(rows[0]), len(rows))
        path = os.path.join(folder, "train", f"part-{part}.parquet")
        pq.write_table(chunk, path, row_group_size=256)
    pq.write_table(new.drop_columns(["digit"]), os.path.join(folder, "new", "part-0.parquet"))
    print(f"wrote {train.num_rows} training and {new.num_rows} new images to {folder}")
    return folder


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
