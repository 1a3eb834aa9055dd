"""A pyarrow.Table read through a fitpipe.Schema: named columns become features and targets."""

import keras
import numpy as np
import pyarrow as pa

import fitpipe

rng = np.random.default_rng(0)
table = pa.table(
    {
        "id": np.arange(200),
        "height": rng.normal(170, 10, 200).astype("float32"),
        "weight": rng.normal(70, 12, 200).astype("float32"),
        "label": rng.integers(0, 2, 200).astype("int32"),
    }
)
schema = fitpipe.Schema(features=["height", "weight"], targets="label", passthrough=["id"])

model = keras.Sequential(
    [keras.Input((2,)), keras.layers.Rescaling(0.01), keras.layers.Dense(1, "sigmoid")]
)
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
trainer.fit(table, schema=schema, batch_size=32, epochs=2, validation_split=0.2, verbose=2)
print("adapter:", fitpipe.adapt(table, schema=schema).adapter)
print("predictions:", trainer.predict(table.slice(0, 3), schema=schema, verbose=0).ravel())
