"""A pandas DataFrame of features and a Series of targets."""

import keras
import numpy as np
import pandas as pd

import fitpipe

rng = np.random.default_rng(0)
frame = pd.DataFrame(rng.standard_normal((200, 3)), columns=["a", "b", "c"], dtype="float32")
target = (frame["a"] - frame["b"] > 0).astype("float32")

model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
trainer.fit(frame, target, batch_size=32, epochs=2, verbose=2)
print("adapter:", fitpipe.adapt(frame, target).adapter)
print("evaluate:", trainer.evaluate(frame, target, verbose=0, return_dict=True))
