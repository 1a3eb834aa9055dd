"""fitpipe quickstart: train, validate, evaluate and predict with the Keras API on fitpipe.

Run: python3 examples/quickstart.py
"""

from __future__ import annotations

import numpy as np

import fitpipe
import keras


def make_data(rows: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An imbalanced two-class problem: 10% positives, separable by a noisy linear rule."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 8)).astype("float32")
    score = x @ rng.standard_normal(8).astype("float32") + rng.normal(0, 0.5, rows)
    y = (score > np.quantile(score, 0.9)).astype("int32")
    return x, y


def main() -> None:
    keras.utils.set_random_seed(0)
    x, y = make_data()
    model = fitpipe.Sequential(
        [
            keras.Input((8,), name="features"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
        steps_per_execution="auto",
    )
    print(f"adapter chosen for x: {fitpipe.adapt(x, y).adapter!r}")
    history = model.fit(
        x,
        y,
        batch_size=64,
        epochs=5,
        validation_split=0.2,
        class_weight={0: 1.0, 1: 9.0},
        verbose=2,
    )
    results = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    probabilities = model.predict(x[:5], verbose=0)
    print("final val_auc:", round(history.history["val_auc"][-1], 4))
    print("evaluate:", {k: round(v, 4) for k, v in results.items()})
    print("first predictions:", [round(float(p), 3) for p in probabilities[:, 0]])


if __name__ == "__main__":
    main()
