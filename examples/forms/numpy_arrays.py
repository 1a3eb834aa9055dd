"""NumPy arrays: x and y as arrays, exactly as with keras.Model.fit."""

import keras
import numpy as np

import fitpipe

x = np.random.default_rng(0).standard_normal((256, 4)).astype("float32")
y = (x.sum(axis=1) > 0).astype("float32")

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = trainer.fit(x, y, batch_size=32, epochs=2, validation_split=0.25, verbose=2)
print("adapter:", fitpipe.adapt(x, y).adapter, "| history keys:", sorted(history.history))
print("predictions:", trainer.predict(x[:3], verbose=0).ravel())
