"""fitpipe quickstart: a real data set through Parquet, trained with the Keras API.

1. Export scikit-learn's bundled breast cancer data set (569 tumours, 30 features) to a
   folder of Parquet files, as a data pipeline would: several files, several row groups,
   an ``id`` column.
2. Declare which columns feed the model with a ``fitpipe.Schema``.
3. Train a plain Keras model with ``fitpipe.Trainer`` straight from the Parquet folder, with
   class weights computed from the label counts and a validation split.
4. Evaluate, then stream predictions back to Parquet with the ``id`` column alongside.

Run: python3 examples/quickstart.py [OUTPUT_DIR]   (default: a new temporary folder;
the FITPIPE_EXAMPLE_DIR environment variable also sets it)
"""

from __future__ import annotations

import math
import os
import sys
import tempfile

import keras
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn.datasets import load_breast_cancer

import fitpipe

VALIDATION_SPLIT = 0.2


def export_to_parquet(folder: str, files: int = 2) -> list[str]:
    """Writes the data set, shuffled, as ``files`` Parquet files of 150-row row groups."""
    data = load_breast_cancer()
    features = [name.replace(" ", "_") for name in data.feature_names]
    order = np.random.default_rng(0).permutation(len(data.target))
    columns = {"id": order.astype("int64")}
    columns.update({name: data.data[order, i].astype("float32") for i, name in enumerate(features)})
    columns["malignant"] = (data.target[order] == 0).astype("int32")  # sklearn: 0 = malignant
    table = pa.table(columns)
    os.makedirs(folder, exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(table.num_rows), files)):
        chunk = table.slice(int(rows[0]), len(rows))
        pq.write_table(chunk, os.path.join(folder, f"part-{part}.parquet"), row_group_size=150)
    return features


def build_model(features: int, mean: np.ndarray, variance: np.ndarray) -> keras.Model:
    """A small classifier that standardises its inputs."""
    return keras.Sequential(
        [
            keras.Input((features,), name="features"),
            keras.layers.Normalization(mean=mean, variance=variance),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def check_predictions(path: str, table: pa.Table) -> float:
    """Reads the predictions back, joins them to the labels by id, and returns the accuracy."""
    written = pq.read_table(path)
    labels = dict(zip(table["id"].to_pylist(), table["malignant"].to_pylist(), strict=True))
    truth = np.array([labels[i] for i in written["id"].to_pylist()])
    accuracy = float(np.mean((written["prediction"].to_numpy() > 0.5) == truth))
    print(f"predictions in {path}: {written.num_rows} rows, {written.column_names}")
    print(written.slice(0, 5).to_pandas().to_string(index=False))
    print("accuracy of the written predictions:", round(accuracy, 4))
    return accuracy


def main(out: str | None = None) -> dict[str, float]:
    keras.utils.set_random_seed(0)
    out = out or os.environ.get("FITPIPE_EXAMPLE_DIR") or tempfile.mkdtemp(prefix="fitpipe-")
    data_dir = os.path.join(out, "breast_cancer")
    features = export_to_parquet(data_dir)
    schema = fitpipe.Schema(features=features, targets="malignant", passthrough=["id"])
    with fitpipe.adapt(data_dir, schema=schema, batch_size=32) as pipeline:  # from metadata
        print(f"adapter: {pipeline.adapter!r}, {pipeline.num_batches} batches of 32 in all")
    rows = pq.ParquetDataset(data_dir).read(columns=["id"]).num_rows
    # validation_split=0.2 sets apart the last 20% of the rows (in file order) before training.
    train_rows = math.floor(rows * (1 - VALIDATION_SPLIT))
    batches = (math.ceil(train_rows / 32), math.ceil((rows - train_rows) / 32))
    print(
        f"{rows} rows: {train_rows} for training "
        f"({batches[0]} batches of 32 per epoch), {rows - train_rows} for validation "
        f"({batches[1]} batches)"
    )

    # Class weights from the label counts, and feature statistics, read with pyarrow.
    table = pq.read_table(data_dir)
    counts = {int(c["values"]): int(c["counts"]) for c in pc.value_counts(table["malignant"])}
    class_weight = {k: table.num_rows / (len(counts) * n) for k, n in counts.items()}
    matrix = np.stack([table[name].to_numpy() for name in features], axis=1)
    print("label counts:", counts, "-> class_weight:", class_weight)

    trainer = fitpipe.Trainer(build_model(len(features), matrix.mean(0), matrix.var(0)))
    trainer.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    history = trainer.fit(
        data_dir,
        schema=schema,
        batch_size=32,
        epochs=8,
        validation_split=VALIDATION_SPLIT,
        class_weight=class_weight,
        verbose=2,
    )
    results = trainer.evaluate(data_dir, schema=schema, batch_size=128, verbose=0, return_dict=True)
    predictions = os.path.join(out, "predictions.parquet")
    trainer.predict(data_dir, schema=schema, output=predictions, verbose=0)

    accuracy = check_predictions(predictions, table)
    print("final val_auc:", round(history.history["val_auc"][-1], 4))
    print("evaluate:", {k: round(v, 4) for k, v in results.items()})
    return {"accuracy": accuracy, "val_auc": history.history["val_auc"][-1], **results}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
