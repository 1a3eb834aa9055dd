"""The fix offered for inputs that do not fit the model is one that works for the input.

``extra="ignore"`` leaves entries out of a dict ``x`` of arrays; a dataset's or a
generator's batches were refused with the advice to pass it, and passing it changed nothing.
An unbatched dataset (``keras.utils.split_dataset`` gives them) was advised to reshape its
data, and its error blamed ``validation_data`` when both were unbatched.
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


def _single_samples() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((A, Y))  # not batched: elements of shape (2,)


def _two_inputs_trainer() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


@pytest.mark.parametrize("validation_batched", [False, True])
def test_an_unbatched_dataset_is_advised_to_batch_and_named_first(
    validation_batched: bool,
) -> None:
    """As ``keras.utils.split_dataset`` gives them: the training data's error comes first."""
    validation = _single_samples().batch(4) if validation_batched else _single_samples()
    with pytest.raises(DataMismatchError) as info:
        _two_inputs_trainer().fit(_single_samples(), validation_data=validation, verbose=0)
    text = str(info.value)
    assert "got data of shape (2,)" in text and "`dataset.batch(32)`" in text
    assert "validation_data" not in text
    history = _two_inputs_trainer().fit(
        _single_samples().batch(4), validation_data=_single_samples().batch(4), verbose=0
    )
    assert "val_loss" in history.history


def test_an_unbatched_validation_dataset_is_named_and_advised_to_batch() -> None:
    with pytest.raises(DataMismatchError, match=r"(?s)`dataset\.batch\(32\)`.*validation_data"):
        _two_inputs_trainer().fit(
            _single_samples().batch(4), validation_data=_single_samples(), verbose=0
        )


def test_arrays_of_the_wrong_shape_are_still_advised_to_reshape() -> None:
    with pytest.raises(DataMismatchError, match="Reshape the data"):
        _two_inputs_trainer().fit(A[:, :1], Y, verbose=0)


@pytest.mark.parametrize(
    ("form", "advice"),
    [
        ("tf.data", r"map the dataset to tuples, e\.g\. `dataset\.map\(lambda batch: \(batch"),
        ("generator", r"yield or return a tuple, e\.g\. `\(batch\['x'\], batch\['y'\]"),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_batches_keyed_by_roles_are_advised_to_be_tuples(
    form: str, advice: str, weighted: bool
) -> None:
    batch = {"x": A[:4], "y": Y[:4], **({"sample_weight": B[:4, 0]} if weighted else {})}
    x: Any = tf.data.Dataset.from_tensors(batch) if form == "tf.data" else iter([batch] * 3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataMismatchError, match=r"only when it is a tuple.*is all `x`; " + advice):
        trainer.fit(x, epochs=1, verbose=0)
