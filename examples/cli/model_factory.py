"""The model of the CLI example: ``factory = "model_factory:build"`` in spec.toml."""

import keras


def build(features: int = 4, classes: int = 3, units: int = 16) -> keras.Model:
    """A small softmax classifier; ``[model.args]`` in the spec sets the arguments."""
    return keras.Sequential(
        [
            keras.Input((features,), name="measurements"),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
