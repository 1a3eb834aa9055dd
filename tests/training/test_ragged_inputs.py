"""A ragged tensor given for an input whose rows have a fixed size: as Keras where rows agree.

Keras hands the ragged tensor to the model's layers; where every row has the input's size
(``tf.ragged.constant`` of rows of one length) its ``Dense`` layer multiplies it as dense
rows, and ``fit``, ``evaluate``, ``predict`` and ``*_on_batch`` run. Before, fitpipe refused
it from its spec alone ("got rows of different lengths"), naming a list column and a
schema's ``lengths=`` for a tensor. Rows that do vary are still refused before any step
(Keras fails inside its step), worded for a tensor.

A stream of ragged batches (``tf.data``, a generator, a ``PyDataset``): before, refused from
its spec alone ("got rows of different lengths", false where they do not differ). Now its
batches run as in Keras where their rows have the input's size; each batch is checked as it
is read, and the first with a row of another length is a fitpipe error naming the batch
(Keras fails inside its step with an opaque ``RaggedMatMul/assert_equal``). Never padded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.fixtures import BatchesPyDataset
from fitpipe.testing.keras_diff import assert_close, assert_weights_close, compile_both, make_twins


def _uniform(rows: int, width: int) -> tf.RaggedTensor:
    values = np.random.default_rng(rows * 7 + width).normal(size=(rows, width))
    return tf.ragged.constant(values.astype("float32").tolist())


def _dense(width: int) -> keras.Model:
    return keras.Sequential([keras.Input((width,)), keras.layers.Dense(2)])


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(2, 12), width=st.integers(1, 5), batch_size=st.integers(1, 6))
def test_ragged_rows_of_the_inputs_size_run_as_keras(
    rows: int, width: int, batch_size: int
) -> None:
    x, y = _uniform(rows, width), np.ones((rows, 2), "float32")
    ref, twin = make_twins(lambda: _dense(width))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    kwargs = {"batch_size": batch_size, "shuffle": False, "verbose": 0}
    assert_close(
        ref.fit(x, y, **kwargs).history["loss"], api.fit(x, y, **kwargs).history["loss"], "fit"
    )
    assert_weights_close(ref, twin)
    assert_close(ref.evaluate(x, y, verbose=0), api.evaluate(x, y, verbose=0), "evaluate")
    assert_close(ref.predict(x, verbose=0), api.predict(x, verbose=0), "predict")
    assert_close(ref.train_on_batch(x, y), api.train_on_batch(x, y), "train_on_batch")
    assert_close(ref.predict_on_batch(x), api.predict_on_batch(x), "predict_on_batch")


CALLS: dict[str, Any] = {
    "fit": lambda t, x: t.fit(x, np.ones((6, 1)), verbose=0),
    "predict": lambda t, x: t.predict(x, verbose=0),
    "train_on_batch": lambda t, x: t.train_on_batch(x, np.ones((6, 1))),
    "predict_on_batch": lambda t, x: t.predict_on_batch(x),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_ragged_rows_that_vary_are_refused_worded_for_a_tensor(call: str) -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    x = tf.RaggedTensor.from_row_lengths(np.arange(16, dtype="float32"), [3, 2, 3, 3, 2, 3])
    with pytest.raises(DataMismatchError, match=r"ragged.*fixed size.*\(None, 3\)") as info:
        CALLS[call](trainer, x)
    text = str(info.value)
    assert "to_tensor(shape=" in text and "list column" not in text, text


@pytest.mark.parametrize("call", sorted(CALLS))
def test_ragged_rows_of_another_size_are_refused_by_their_shape(call: str) -> None:
    # Keras fails inside its step (RaggedMatMul: "Matrix size-incompatible").
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataMismatchError, match=r"shape \(None, 3\).*does not fit the model"):
        CALLS[call](trainer, _uniform(6, 3))


# ------------------------------------------------------------------------ streams of batches
def _rows(count: int, width: int, seed: int) -> list[list[float]]:
    values = np.random.default_rng(seed).normal(size=(count, width)).astype("float32")
    return values.tolist()


def _targets(count: int) -> np.ndarray:
    return np.linspace(-1, 1, count * 2, dtype="float32").reshape(count, 2)


def _batches(rows: list[list[float]], y: np.ndarray | None, size: int) -> list[Any]:
    """Ragged batches of ``size`` rows (``tf.ragged.constant``): ``(x, y)``, or ``(x,)``."""
    out = []
    for start in range(0, len(rows), size):
        x = tf.ragged.constant(rows[start : start + size], dtype=tf.float32)
        out.append((x,) if y is None else (x, y[start : start + size]))
    return out


def _dataset(batches: list[Any]) -> tf.data.Dataset:
    """The batches as a ``tf.data.Dataset`` of ragged batches (of rows of any length)."""

    def generate() -> Iterator[Any]:
        yield from batches

    first = batches[0]
    spec: Any = (tf.RaggedTensorSpec([None, None], tf.float32, 1),)
    if len(first) > 1:
        spec = (*spec, tf.TensorSpec([None, *first[1].shape[1:]], tf.float32))
    return tf.data.Dataset.from_generator(generate, output_signature=spec)


STREAMS: dict[str, Callable[[list[Any]], Any]] = {
    "tf.data": _dataset,
    "generator": lambda batches: (batch for batch in batches),
    "PyDataset": BatchesPyDataset,
}


@settings(max_examples=6, deadline=None)
@given(
    count=st.integers(2, 11),
    width=st.integers(1, 4),
    batch_size=st.integers(1, 5),
    stream=st.sampled_from(["tf.data", "generator"]),
)
def test_a_stream_of_ragged_rows_of_the_inputs_size_runs_as_keras(
    count: int, width: int, batch_size: int, stream: str
) -> None:
    # Before: refused from the spec ("got rows of different lengths"), though none differ.
    rows, y = _rows(count, width, count * 10 + width), _targets(count)
    ref, twin = make_twins(lambda: _dense(width))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    epochs = 2 if stream == "tf.data" else 1  # (a generator is read once)
    histories = [  # a fresh stream for each side
        call.fit(
            STREAMS[stream](_batches(rows, y, batch_size)), epochs=epochs, shuffle=False, verbose=0
        )
        for call in (ref, api)
    ]
    assert_close(histories[0].history, histories[1].history, f"fit on a {stream} stream")
    assert_weights_close(ref, twin)
    for method, with_y in (("evaluate", True), ("predict", False)):
        got = [
            getattr(call, method)(
                STREAMS[stream](_batches(rows, y if with_y else None, 2)), verbose=0
            )
            for call in (ref, api)
        ]
        assert_close(got[0], got[1], f"{method} on a {stream} stream")


def _with_one_row_off(
    count: int, width: int, batch_size: int, data: st.DataObject
) -> tuple[list[list[float]], int, int]:
    """Rows of ``width`` values, one of them (in a batch after the first) of another length.

    Returns the rows, the index of the batch holding the odd row, and its length.
    """
    rows = _rows(count, width, count + width)
    odd = data.draw(st.integers(batch_size, count - 1), label="odd row")
    length = data.draw(st.sampled_from([n for n in (width - 1, width + 1) if n > 0]))
    rows[odd] = (rows[odd] * 2)[:length]
    return rows, odd // batch_size, length


CALLS_ON_STREAMS: dict[str, Callable[[fitpipe.Trainer, Callable[[bool], Any]], Any]] = {
    # (shuffle=False: a shuffled PyDataset's batch is named by its place in the order read)
    "fit": lambda t, data: t.fit(data(True), shuffle=False, verbose=0),
    "evaluate": lambda t, data: t.evaluate(data(True), verbose=0),
    "predict": lambda t, data: t.predict(data(False), verbose=0),
    "validation_data": lambda t, data: t.fit(
        np.zeros((4, t.model.inputs[0].shape[1]), "float32"),
        np.zeros((4, 2), "float32"),
        validation_data=data(True),
        verbose=0,
    ),
}


@settings(max_examples=10, deadline=None)
@given(
    width=st.integers(1, 4),
    batch_size=st.integers(1, 4),
    batches=st.integers(2, 4),
    stream=st.sampled_from(sorted(STREAMS)),
    call=st.sampled_from(sorted(CALLS_ON_STREAMS)),
    data=st.data(),
)
def test_a_stream_whose_rows_vary_is_refused_naming_the_batch(
    width: int, batch_size: int, batches: int, stream: str, call: str, data: st.DataObject
) -> None:
    # Keras fails inside its step: InvalidArgumentError ... RaggedMatMul/assert_equal.
    count = batch_size * batches
    rows, batch, length = _with_one_row_off(count, width, batch_size, data)
    y = _targets(count)
    trainer = fitpipe.Trainer(_dense(width))
    trainer.compile(optimizer="sgd", loss="mse")
    if stream == "PyDataset" and call == "predict":
        stream = "generator"  # (a PyDataset of x alone: its batches are the same)
    make = STREAMS[stream]
    of = " of the validation data" if call == "validation_data" else ""
    expected = (
        rf"got rows of different lengths \(a ragged tensor\) in batch index {batch}{of} for "
        rf"input 0, whose rows have a fixed size: a row of length {length}\. The model "
        rf"expected dense rows of shape \(None, {width}\).*`\.to_tensor\(shape=\.\.\.\)`"
        r".*`keras\.Input\(\.\.\., ragged=True\)`"
    )
    with pytest.raises(DataMismatchError, match=expected):
        CALLS_ON_STREAMS[call](
            trainer, lambda with_y: make(_batches(rows, y if with_y else None, batch_size))
        )


@pytest.mark.parametrize("stream", ["tf.data", "generator"])
def test_the_batches_before_the_odd_one_train_and_none_is_padded(stream: str) -> None:
    # The first batch trains as in Keras; the second, whose last row is short, stops the
    # call before its step: a weight update from a batch padded with zeros never happens.
    rows, y = _rows(6, 3, 1), _targets(6)
    rows[5] = rows[5][:2]
    ref, twin = make_twins(lambda: _dense(3))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    ref.fit(_dataset(_batches(rows[:3], y[:3], 3)), shuffle=False, verbose=0)
    with pytest.raises(DataMismatchError, match=r"in batch index 1 for input 0"):
        api.fit(STREAMS[stream](_batches(rows, y, 3)), shuffle=False, verbose=0)
    assert_weights_close(ref, twin)
