"""Writes scikit-learn's bundled iris data set as Parquet for the CLI example.

Run: python3 examples/cli/make_data.py [FOLDER]   (default: examples/cli/data)

Writes ``train/`` (two files), ``new/`` (rows to predict, without the label) and
``schema.json``; ``spec.toml`` reads them.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_iris

import fitpipe

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main(folder: str | None = None) -> str:
    folder = folder or os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    iris = load_iris()
    order = np.random.default_rng(0).permutation(len(iris.target))  # the file is sorted by class
    columns = {"id": order.astype("int64")}
    columns.update({name: iris.data[order, i].astype("float32") for i, name in enumerate(FEATURES)})
    columns["species"] = iris.target[order].astype("int32")
    table = pa.table(columns)
    for name in ("train", "new"):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    pq.write_table(table.slice(0, 70), os.path.join(folder, "train", "part-0.parquet"))
    pq.write_table(table.slice(70, 60), os.path.join(folder, "train", "part-1.parquet"))
    pq.write_table(
        table.slice(130).drop_columns(["species"]), os.path.join(folder, "new", "part-0.parquet")
    )
    schema = fitpipe.Schema(features=FEATURES, targets="species", passthrough=["id"])
    with open(os.path.join(folder, "schema.json"), "w", encoding="utf-8") as handle:
        handle.write(schema.to_json())
    print(f"wrote {folder}/train (130 rows), {folder}/new (20 rows), {folder}/schema.json")
    return folder


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
