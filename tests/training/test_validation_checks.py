"""A bad value in ``fit``'s validation batches is named as one of the validation data.

The value checks (labels in range, finite weights, finite features under ``check="error"``)
run on the validation batches too; their errors must not read as errors in ``x``: the user
would search the training data for a value that is not there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitpipe import Trainer
from fitpipe.errors import FitpipeWarning

ROWS, D, CLASSES = 24, 3, 3
Data = tuple[np.ndarray, np.ndarray, np.ndarray]


def _data(problem: str) -> tuple[Data, Data]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, D)).astype("float32")
    y = rng.integers(0, CLASSES, ROWS)
    w = np.ones(ROWS, "float32")
    bad_x, bad_y, bad_w = x.copy(), y.copy(), w.copy()
    if problem == "label":
        bad_y[-3] = CLASSES + 4
    elif problem == "weight":
        bad_w[-3] = np.nan
    else:
        bad_x[-3, 1] = np.inf
    return (x, y, w), (bad_x, bad_y, bad_w)


def _arrays(bad: Data) -> Any:
    return bad


def _dataset(bad: Data) -> Any:
    return tf.data.Dataset.from_tensor_slices(bad).batch(5)


def _generator(bad: Data) -> Any:
    def batches() -> Iterator[Data]:
        for start in range(0, ROWS, 5):
            yield tuple(part[start : start + 5] for part in bad)  # type: ignore[misc]

    return batches()


FORMS: dict[str, Callable[[Data], Any]] = {
    "arrays": _arrays,
    "tf.data": _dataset,
    "generator": _generator,
}


def _trainer() -> Trainer:
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(CLASSES)])
    trainer = Trainer(model)
    trainer.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return trainer


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("problem", ["label", "weight", "feature"])
def test_a_bad_validation_value_is_named_as_the_validation_datas(form: str, problem: str) -> None:
    good, bad = _data(problem)
    check = "error"  # rows held in memory: found by the pre-flight scan, which says so too
    with pytest.raises(ValueError, match=r"(of|in) the validation data\b") as caught:
        _trainer().fit(
            good[0],
            good[1],
            sample_weight=good[2],
            validation_data=FORMS[form](bad),
            epochs=1,
            batch_size=5,
            verbose=0,
            check=check,
        )
    assert "label" in str(caught.value) or problem != "label"


@pytest.mark.parametrize("problem", ["label", "weight"])
def test_the_same_value_in_the_training_data_is_not_called_validation_data(problem: str) -> None:
    good, bad = _data(problem)
    with pytest.raises(ValueError) as caught:
        _trainer().fit(
            bad[0],
            bad[1],
            sample_weight=bad[2],
            validation_data=good,
            epochs=1,
            batch_size=5,
            verbose=0,
        )
    assert "validation" not in str(caught.value)


def test_validation_split_rows_are_named_as_validation_data() -> None:
    _, (x, y, _w) = _data("label")  # the bad label is in the last rows: the split's
    with pytest.raises(ValueError, match=r"label 7 in row \d+ of the targets of the validation"):
        _trainer().fit(x, y, validation_split=0.25, epochs=1, batch_size=5, verbose=0)


def _unknown_length(batches: int) -> tf.data.Dataset:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batches * 4, D)).astype("float32")
    y = rng.integers(0, CLASSES, batches * 4)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    return data.filter(lambda *_: True)  # the length is now unknown


@pytest.mark.parametrize("call", ["validation", "evaluate", "predict"])
def test_a_pass_cut_short_is_warned_of_in_the_words_of_its_own_argument(call: str) -> None:
    """Not ``steps_per_epoch * epochs``, which a validation or ``evaluate`` never asked for."""
    trainer, data = _trainer(), _unknown_length(3)
    words = {
        "validation": r"validation data ran out of data.*`validation_steps`",
        "evaluate": r"ran out of data before `steps` batches",
        "predict": r"ran out of data before `steps` batches",
    }
    with pytest.warns(FitpipeWarning, match=words[call]) as caught:
        if call == "validation":
            trainer.fit(_unknown_length(5), validation_data=data, validation_steps=10, verbose=0)
        elif call == "evaluate":
            trainer.evaluate(data, steps=10, verbose=0)
        else:
            trainer.predict(data.map(lambda x, y: x), steps=10, verbose=0)
    assert not any("steps_per_epoch" in str(w.message) for w in caught)
