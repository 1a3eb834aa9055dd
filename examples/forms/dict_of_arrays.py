"""A dict of arrays feeds a model's named inputs."""

import keras
import numpy as np

import fitpipe

rng = np.random.default_rng(0)
x = {
    "age": rng.uniform(18, 90, (200, 1)).astype("float32"),
    "scores": rng.standard_normal((200, 3)).astype("float32"),
}
y = (x["scores"].sum(axis=1) > 0).astype("float32")

age = keras.Input((1,), name="age")
scores = keras.Input((3,), name="scores")
joined = keras.layers.Concatenate()([keras.layers.Rescaling(1 / 90)(age), scores])
model = fitpipe.Model({"age": age, "scores": scores}, keras.layers.Dense(1, "sigmoid")(joined))
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, batch_size=32, epochs=2, verbose=2)
print("adapter:", fitpipe.adapt(x, y).adapter)
print("evaluate:", model.evaluate(x, y, verbose=0, return_dict=True))
