"""A torch.utils.data.DataLoader: its own batches and order, len() batches per epoch."""

import keras
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import fitpipe

x = np.random.default_rng(0).standard_normal((200, 4)).astype("float32")
y = (x[:, 2] > 0).astype("float32")
torch.manual_seed(0)  # the loader shuffles with torch's generator
rows = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
data = DataLoader(rows, batch_size=32, shuffle=True)

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
trainer = fitpipe.Trainer(model)
trainer.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
trainer.fit(data, epochs=2, verbose=2)
with fitpipe.adapt(data) as pipeline:
    print("adapter:", pipeline.adapter, "| batches per epoch:", pipeline.num_batches)
