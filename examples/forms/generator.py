"""A Python generator of (x, y) batches; steps_per_epoch says how many batches an epoch has."""

import keras
import numpy as np

import fitpipe


def batches(seed=0):
    rng = np.random.default_rng(seed)
    while True:
        x = rng.standard_normal((32, 4)).astype("float32")
        yield x, (x[:, 0] > 0).astype("float32")


model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
trainer.fit(batches(), steps_per_epoch=8, epochs=2, verbose=2)
with fitpipe.adapt(batches()) as pipeline:  # close() stops the reader of the generator
    print("adapter:", pipeline.adapter)
print("evaluate:", trainer.evaluate(batches(1), steps=4, verbose=0, return_dict=True))
