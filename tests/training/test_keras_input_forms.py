"""Differential tests: input forms and arguments Keras takes, trained on Keras and on fitpipe.

Each case trains a Keras model and a fitpipe twin from the same initial weights on the same
data and compares histories, ``evaluate``, ``predict`` and the final weights.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from differential import (
    Side,
    classification_data,
    dense_model,
    run_both,
)

XC, LABELS = classification_data(n=96, d=6, classes=3)
CLASS_WEIGHT = {0: 0.5, 1: 2.0, 2: 1.25}
CLS_COMPILE = {
    "optimizer": "adam",
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "weighted_metrics": ["accuracy"],
}


def _cls() -> keras.Model:
    return dense_model(d=6, units=3, activation="softmax")


# ------------------------------------------------------------------ class_weight keys


def test_digit_string_class_weight_keys_train_like_int_keys() -> None:
    # Keras 3.16 reads {"0": ...} keys as class indices; the oracle here (3.15) is given ints.
    def fit_kwargs(side: Side) -> dict[str, Any]:
        weights: dict[Any, float] = dict(CLASS_WEIGHT)
        if side == "fitpipe":
            weights = {str(k): v for k, v in CLASS_WEIGHT.items()}
        return {"x": XC, "y": LABELS, "batch_size": 16, "epochs": 2, "class_weight": weights}

    run_both(_cls, CLS_COMPILE, fit_kwargs)


def test_digit_string_class_weight_keys_in_train_on_batch() -> None:
    from differential import make_twins

    import fitpipe

    ref, twin = make_twins(_cls)
    ref.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    trainer = fitpipe.Trainer(twin)
    trainer.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    expected = ref.train_on_batch(XC[:16], LABELS[:16], class_weight=CLASS_WEIGHT)
    text = {str(k): v for k, v in CLASS_WEIGHT.items()}
    got = trainer.train_on_batch(XC[:16], LABELS[:16], class_weight=text)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with pytest.raises(TypeError, match="non-integer `class_weight` key 'cat'"):
        trainer.train_on_batch(XC[:16], LABELS[:16], class_weight={"cat": 1.0})
