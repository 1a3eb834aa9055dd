"""Arrow streams: a pyarrow.RecordBatchReader (read once), and Polars or DuckDB when installed."""

import importlib.util

import keras
import numpy as np
import pyarrow as pa

import fitpipe

rng = np.random.default_rng(0)
x = rng.standard_normal((300, 2)).astype("float32")
table = pa.table({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype("int32")})
schema = fitpipe.Schema(features=["a", "b"], targets="y")

model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

# A stream of record batches is read once: one epoch.
reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=64))
print("adapter:", fitpipe.registry.find(reader).name)  # asks the registry; reads nothing
trainer.fit(reader, schema=schema, batch_size=32, epochs=1, verbose=2)

# Frames that export the Arrow C stream interface are taken as they are.
if importlib.util.find_spec("polars") is not None:
    import polars as pl

    frame = pl.from_arrow(table)
    trainer.fit(frame, schema=schema, batch_size=32, epochs=1, verbose=2)
    print("polars adapter:", fitpipe.adapt(frame, schema=schema).adapter)
else:
    print("polars is not installed: skipped")
if importlib.util.find_spec("duckdb") is not None:
    import duckdb

    arrow_data = table  # DuckDB finds Python variables by name
    result = duckdb.sql("SELECT * FROM arrow_data WHERE a > -1")
    print("duckdb evaluate:", trainer.evaluate(result, schema=schema, verbose=0, return_dict=True))
else:
    print("duckdb is not installed: skipped")
