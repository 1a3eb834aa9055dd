"""The digits walkthrough's model: 64 pixels in, 10 class probabilities out."""

from __future__ import annotations

import keras


def build(units: int = 32) -> keras.Model:
    """A small classifier of 8x8 digits (pixels 0 to 16)."""
    return keras.Sequential(
        [
            keras.Input((64,), name="pixels"),
            keras.layers.Rescaling(1 / 16),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
