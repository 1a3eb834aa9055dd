"""Arrays of text in every NumPy form, against Keras on the same strings.

Before: object arrays of ``str`` or ``bytes`` went through NumPy's fixed-width dtypes, which
drop trailing NUL characters (``"a"`` and ``"a"`` followed by a NUL hashed alike, where Keras
tells them apart); object arrays mixing ``str`` and ``bytes`` and NumPy 2's ``StringDType``
were refused, which Keras' ``*_on_batch`` take. The property: whatever the form, fitpipe's
``predict`` and ``predict_on_batch`` of a model over strings equal Keras' of the same strings.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fitpipe

FORMS = ["object-str", "object-bytes", "object-mixed", "string-dtype", "list"]

TEXT = st.text(alphabet=st.sampled_from(["a", "b", "\x00", "é", " ", "😀"]), max_size=4)


def _model() -> keras.Model:
    inputs = keras.Input((1,), dtype="string")
    return keras.Model(inputs, keras.layers.Hashing(10_007)(inputs))


def _as_form(values: list[str], form: str, mix: list[bool]) -> Any:
    rows = [[v] for v in values]
    if form == "object-str":
        return _objects(rows)
    if form == "object-bytes":
        return _objects([[v.encode()] for v in values])
    if form == "object-mixed":
        return _objects([[v.encode() if m else v] for v, m in zip(values, mix, strict=True)])
    if form == "string-dtype":
        return np.array(rows, dtype=np.dtypes.StringDType())
    return rows


def _objects(rows: list[list[Any]]) -> np.ndarray:
    array = np.empty((len(rows), 1), dtype=object)
    for i, row in enumerate(rows):
        array[i, 0] = row[0]
    return array


@given(
    values=st.lists(TEXT, min_size=1, max_size=12),
    form=st.sampled_from(FORMS),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 5),
)
@settings(max_examples=30)
@example(values=["a", "a\x00"], form="list", seed=0, batch=1)
@example(values=["a", "a\x00"], form="object-str", seed=0, batch=1)
@example(values=["\x00", ""], form="object-mixed", seed=1, batch=2)
def test_text_in_any_form_is_read_exactly_as_keras_reads_its_strings(
    values: list[str], form: str, seed: int, batch: int
) -> None:
    mix = list(np.random.default_rng(seed).random(len(values)) < 0.5)
    model = _model()
    expected = model.predict_on_batch(tf.constant([[v.encode()] for v in values]))
    trainer = fitpipe.Trainer(model)
    x = _as_form(values, form, mix)
    np.testing.assert_array_equal(trainer.predict_on_batch(x), expected)
    np.testing.assert_array_equal(trainer.predict(x, batch_size=batch, verbose=0), expected)


def test_an_empty_object_array_names_what_to_do() -> None:
    trainer = fitpipe.Trainer(_model())
    with pytest.raises(TypeError, match=r"cannot tell the dtype of `x`, an empty object-dtype"):
        trainer.predict_on_batch(np.zeros((0, 1), dtype=object))


@pytest.mark.parametrize("dtype", ["float32", str])
def test_predict_on_batch_of_no_rows_returns_no_predictions_as_keras(dtype: Any) -> None:
    # Before: "got an empty input (0 samples)"; Keras returns the empty predictions.
    model = (
        _model() if dtype is str else keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    )
    x = np.zeros((0, 1), dtype=dtype)
    expected = model.predict_on_batch(tf.constant(x))
    got = fitpipe.Trainer(model).predict_on_batch(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
