"""A tf.data.Dataset of batches, for training and validation."""

import keras
import numpy as np
import tensorflow as tf

import fitpipe

x = np.random.default_rng(0).standard_normal((256, 4)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("float32")
train = tf.data.Dataset.from_tensor_slices((x[:192], y[:192])).shuffle(192, seed=0).batch(32)
val = tf.data.Dataset.from_tensor_slices((x[192:], y[192:])).batch(32)

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = trainer.fit(train, validation_data=val, epochs=2, verbose=2)
print("adapter:", fitpipe.adapt(train).adapter, "| val_accuracy:", history.history["val_accuracy"])
