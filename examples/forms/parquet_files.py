"""A folder of Parquet files: planned from metadata, streamed by row group, predicted to Parquet."""

import os
import sys
import tempfile

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import fitpipe

folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="fitpipe-parquet-")
rng = np.random.default_rng(0)
for part in range(3):
    x = rng.standard_normal((100, 2)).astype("float32")
    table = pa.table(
        {
            "id": np.arange(100) + 100 * part,
            "x0": x[:, 0],
            "x1": x[:, 1],
            "y": (x[:, 0] > x[:, 1]).astype("int32"),
        }
    )
    pq.write_table(table, os.path.join(folder, f"part-{part}.parquet"), row_group_size=100)

schema = fitpipe.Schema(features=["x0", "x1"], targets="y", passthrough=["id"])
with fitpipe.adapt(folder, schema=schema, batch_size=32) as pipeline:  # planned from metadata
    print("adapter:", pipeline.adapter, "| batches per epoch:", pipeline.num_batches)

model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
trainer.fit(folder, schema=schema, batch_size=32, epochs=2, validation_split=0.2, verbose=2)
output = trainer.predict(
    folder, schema=schema, output=os.path.join(folder, "preds.parquet"), verbose=0
)
print("wrote", output, pq.read_table(output).column_names)
