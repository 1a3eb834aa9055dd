"""A keras.utils.PyDataset: batches by index, len() batches per epoch."""

import math

import keras
import numpy as np

import fitpipe


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[rows], self.y[rows]


x = np.random.default_rng(0).standard_normal((200, 4)).astype("float32")
y = (x[:, 2] > 0).astype("float32")
data = Batches(x, y, batch_size=32)

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
trainer.fit(data, epochs=2, verbose=2)
with fitpipe.adapt(data) as pipeline:
    print("adapter:", pipeline.adapter, "| batches per epoch:", pipeline.num_batches)
