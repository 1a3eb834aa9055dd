"""Dict batches with entries that name no model input: the fix offered is one that works.

``extra="ignore"`` leaves such entries out of a dict ``x`` of arrays; a dataset's or a
generator's batches were refused with the advice to pass it, and passing it changed nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.errors import DataMismatchError

A = np.arange(24, dtype="float32").reshape(12, 2)
B = np.ones((12, 1), "float32")
Y = np.zeros((12, 1), "float32")


def _trainer() -> fitpipe.Trainer:
    inputs = {"a": keras.Input((2,), name="a"), "b": keras.Input((1,), name="b")}
    joined = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(joined)))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


def _dataset() -> tf.data.Dataset:
    x = {"a": A, "b": B, "id": np.arange(12)}  # as make_csv_dataset yields every column
    return tf.data.Dataset.from_tensor_slices((x, Y)).batch(4)


def _generator() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    for start in range(0, 12, 4):
        rows = slice(start, start + 4)
        yield {"a": A[rows], "b": B[rows], "id": np.arange(4)}, Y[rows]


INPUTS: dict[str, Callable[[], Any]] = {"tf.data": _dataset, "generator": _generator}
CALLS: dict[str, Callable[[fitpipe.Trainer, Any, dict[str, Any]], Any]] = {
    "fit": lambda t, x, kw: t.fit(x, epochs=1, verbose=0, **kw),
    "evaluate": lambda t, x, kw: t.evaluate(x, verbose=0, **kw),
}


@pytest.mark.parametrize("form", list(INPUTS))
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("extra", [{}, {"extra": "ignore"}])
def test_batches_with_extra_entries_are_advised_to_select_them(
    form: str, call: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(DataMismatchError) as info:
        CALLS[call](_trainer(), INPUTS[form](), extra)
    text = str(info.value)
    assert re.search(r"unknown \['id'\]", text)
    assert "select the model's inputs in the batches" in text
    assert 'pass `extra="ignore"`' not in text


def test_the_advised_selection_trains() -> None:
    """The fix's own code, as worded, makes the dataset's batches fit the model."""
    with pytest.raises(DataMismatchError) as info:
        _trainer().fit(_dataset(), verbose=0)
    code = re.search(r"`dataset\.map\((.*?)\)`, or yield", str(info.value))
    assert code is not None
    selected = _dataset().map(eval(code.group(1)))  # the message's own code
    history = _trainer().fit(selected, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_a_dict_of_arrays_is_still_advised_extra_ignore() -> None:
    x = {"a": A, "b": B, "id": np.arange(12)}
    with pytest.raises(DataMismatchError, match=r'pass `extra="ignore"` to leave'):
        _trainer().fit(x, Y, verbose=0)
    history = _trainer().fit(x, Y, extra="ignore", epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
