"""The pre-flight check catches two real mistakes in scikit-learn's digits before training.

Run: python3 examples/preflight/digits_check.py [FOLDER]   (default: a temporary folder)

The digits (1797 8x8 images, bundled with scikit-learn) are written to Parquet as an export
with two common mistakes would be: the labels stored 1-based (1 to 10, "digit one" is 1 ...
"zero" is 10) and a few pixels lost to NaN. The model has a softmax over 10 classes trained
with ``sparse_categorical_crossentropy``, so label 10 is outside ``[0, 10)``:

1. ``fitpipe check DATA --schema F --model M`` prints the report: the label range, the NaN
   column and its count, the class balance, and the constant pixel columns (a note);
2. ``fit(check="error")`` stops before the first step, naming the columns and counts;
3. with the labels made 0-based but the NaN kept, ``fit(check=False)`` trains weights to
   NaN without a word (the reported loss may still read as a number: how a NaN
   probability is clipped depends on the CPU, in Keras as here), where ``fit()``
   (``check="warn"``) warns first;
4. with the NaN rows dropped too, ``check="full"`` passes and the model trains.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings

import keras
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

import fitpipe
from fitpipe.cli import main as fitpipe_command
from fitpipe.errors import DataCheckError, DataCheckWarning

NAN_ROWS = (10, 500, 1200)


def write_data(folder: str) -> tuple[str, str]:
    """Writes the faulty export and its schema; returns their paths."""
    digits = load_digits()
    pixels = digits.data.astype("float32")
    pixels[list(NAN_ROWS), 27] = np.nan  # three pixels lost in the export
    columns: dict[str, object] = {f"px{i}": pixels[:, i] for i in range(64)}
    columns["digit"] = np.where(digits.target == 0, 10, digits.target).astype("int32")
    data = os.path.join(folder, "digits.parquet")
    pq.write_table(pa.table(columns), data, row_group_size=512)
    schema = os.path.join(folder, "schema.json")
    with open(schema, "w") as fh:
        json.dump({"features": "px*", "targets": "digit"}, fh)
    return data, schema


def build_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = fitpipe.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Rescaling(1 / 16),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(folder: str | None = None) -> dict[str, float]:
    folder = folder or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    data, schema_file = write_data(folder)
    model_file = os.path.join(folder, "model.keras")
    build_model().save(model_file)

    print("$ fitpipe check digits.parquet --schema schema.json --model model.keras")
    status = fitpipe_command(["check", data, "--schema", schema_file, "--model", model_file])
    print(f"exit status: {status}")

    schema = fitpipe.Schema.from_json(open(schema_file).read())
    try:
        build_model().fit(data, schema=schema, epochs=1, verbose=0, check="error")
    except DataCheckError as err:
        print(f"fit(check='error'): {str(err).split('. ')[0]}")

    # Labels fixed, NaN kept: unchecked, three NaN pixels train weights to NaN.
    table = pq.read_table(data)
    digit = table["digit"]
    zero_based = pc.if_else(pc.equal(digit, 10), 0, digit)  # "zero" back to 0
    table = table.set_column(table.schema.get_field_index("digit"), "digit", zero_based)
    labels_fixed = os.path.join(folder, "digits_labels_fixed.parquet")
    pq.write_table(table, labels_fixed)
    unchecked = build_model()
    unchecked.fit(labels_fixed, schema=schema, verbose=0, check=False)
    nan = sum(int(np.isnan(w).sum()) for w in unchecked.get_weights())
    print(f"fit(check=False): {nan} of {unchecked.count_params()} weights NaN")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataCheckWarning)
        build_model().fit(labels_fixed, schema=schema, verbose=0)  # check="warn", the default
    for warning in caught:
        if issubclass(warning.category, DataCheckWarning):
            print(f"fit() warns: {str(warning.message).split('. ')[0]}")

    fixed = table.filter(pc.invert(pc.is_nan(table["px27"])))  # drop the rows with NaN
    fixed_file = os.path.join(folder, "digits_fixed.parquet")
    pq.write_table(fixed, fixed_file)
    history = build_model().fit(
        fixed_file, schema=schema, epochs=10, verbose=0, validation_split=0.2, check="full"
    )
    accuracy = history.history["val_accuracy"][-1]
    print(f"fixed data: {fixed.num_rows} rows, check passed, val_accuracy {accuracy:.3f}")
    return {"status": status, "val_accuracy": accuracy}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
