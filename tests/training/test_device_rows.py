"""Rows in memory copied to the accelerator the step runs on (``pipeline.device_rows``).

On a GPU, a trainer copies held rows, and NumPy arrays too large to hold on the host, to the
device once per call, and its compiled loop gathers the batches there. The copy must train
exactly what rows on the host train, whatever the rows, batch size, shuffle, weights,
validation split, leaves, steps per call and copy size, and fall back to the host (held rows,
or blocks streamed from NumPy) when a leaf cannot be gathered on the device, the rows are
over ``limits.DEVICE_ROWS_BYTES`` or the device is full.

There is no GPU here: the tests make the host itself the "accelerator" (``step_device``
answers ``"/device:CPU:0"``), which runs every line of the copy and of the trainer's choice
of rows; what they cannot show (the speed on a GPU) is measured by
``benchmarks/gpu_cells.sh`` (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from block_paths import (
    FIT_ARGUMENTS,
    TWIN_SETTINGS,
    BlockSpy,
    assert_same_results,
    classifier,
    classifier_data,
    fit_kwargs,
)
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.pipeline import device_rows
from fitpipe.training import placement
from fitpipe.training.state import state_of

#: The host, standing in for an accelerator.
HOST = "/job:localhost/replica:0/task:0/device:CPU:0"

#: The whole suite runs with the host standing in (``tests/conftest.py``).
ALL_ACCELERATED = os.environ.get("FITPIPE_TEST_ACCELERATOR") == "1"


class CopySpy:
    """Records each copy asked of ``device_rows`` (its device, whether it was made)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copies: list[tuple[str, bool]] = []
        original = device_rows._copied

        def counting(leaves: Any, device: str) -> Any:
            out = original(leaves, device)
            self.copies.append((device, out is not None))
            return out

        monkeypatch.setattr(device_rows, "_copied", counting)


def _compiled(model: keras.Model, spe: int) -> None:
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
        steps_per_execution=spe,
    )


def _run(x: Any, y: Any, batch: int, spe: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    keras.utils.set_random_seed(0)
    named = isinstance(x, dict)
    trainer = fitpipe.Trainer(classifier(named))
    _compiled(trainer.model, spe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(x, y, batch_size=batch, verbose=0, **kwargs)
    evaluated = trainer.evaluate(x, y, batch_size=batch, verbose=0)
    predicted = trainer.predict(x, batch_size=batch, verbose=0)
    said = [str(w.message) for w in caught]
    return history.history, evaluated, predicted, trainer.model.get_weights(), said


def _on_accelerator(monkeypatch: pytest.MonkeyPatch) -> CopySpy:
    monkeypatch.setattr(placement, "step_device", lambda: HOST)
    return CopySpy(monkeypatch)


def _accelerated_or_not(monkeypatch: pytest.MonkeyPatch, accelerated: bool) -> None:
    """The host stands in for an accelerator, or not (skipped when the whole suite does)."""
    if accelerated:
        _on_accelerator(monkeypatch)
    elif ALL_ACCELERATED:
        pytest.skip("the suite runs as if on an accelerator")


@TWIN_SETTINGS
@given(
    rows=st.integers(1, 90),
    batch=st.integers(1, 16),
    spe=st.sampled_from([1, 2, 5]),
    **FIT_ARGUMENTS,
    named=st.booleans(),
    over_limit=st.booleans(),
    fill_rows=st.integers(1, 40),
)
def test_rows_on_the_device_train_what_rows_on_the_host_train(
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    batch: int,
    spe: int,
    shuffle: Any,
    weights: str,
    split: float,
    epochs: int,
    named: bool,
    over_limit: bool,
    fill_rows: int,
) -> None:
    x, y = classifier_data(rows, named)
    kwargs = fit_kwargs(rows, shuffle, weights, split, epochs)
    host = _run(x, y, batch, spe, kwargs)
    with monkeypatch.context() as patch:
        spy = _on_accelerator(patch)
        # Over the host limit: the arrays, else the held rows, are copied; FILL_BYTES small
        # enough that a copy of the float32 features is made in several slices.
        patch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0 if over_limit else 2**30)
        patch.setattr(device_rows, "FILL_BYTES", fill_rows * 12)
        with BlockSpy() as blocks:
            device = _run(x, y, batch, spe, kwargs)
    assert_same_results(device, host)
    assert device[4] == host[4]  # the same warnings
    assert blocks.made == 0  # nothing streamed from NumPy
    calls = 3 + bool(kwargs["validation_split"])  # fit (and its validation), evaluate, predict
    assert spy.copies == [(HOST, True)] * calls  # once per call, not per epoch


def test_rows_on_the_device_train_what_keras_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    rows, batch = 70, 8
    x, y = classifier_data(rows)
    keras.utils.set_random_seed(0)
    oracle = classifier(False)
    _compiled(oracle, 1)
    spy = _on_accelerator(monkeypatch)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    trainer = fitpipe.Trainer(classifier(False))
    _compiled(trainer.model, 1)
    trainer.model.set_weights(oracle.get_weights())
    got = trainer.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    evaluated = trainer.evaluate(x, y, batch_size=batch, verbose=0)
    assert spy.copies == [(HOST, True)] * 2
    want = oracle.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    for key in want.history:
        np.testing.assert_allclose(got.history[key], want.history[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(evaluated, oracle.evaluate(x, y, batch_size=batch, verbose=0))
    for mine, theirs in zip(trainer.model.get_weights(), oracle.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def _no_room_for_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device runs out of memory at the copy of the labels (after the features')."""
    original = device_rows._device_copy

    def copy(leaf: Any) -> tf.Variable:
        if leaf.dtype == np.int32 or leaf.dtype == tf.int32:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating (a test)")
        return original(leaf)

    monkeypatch.setattr(device_rows, "_device_copy", copy)


@pytest.mark.parametrize("over_limit", [False, True])
@pytest.mark.parametrize("reason", ["too large", "no room", "uint8 features"])
def test_rows_that_cannot_go_to_the_device_stay_on_the_host(
    monkeypatch: pytest.MonkeyPatch, reason: str, over_limit: bool
) -> None:
    x, y = classifier_data(50)
    if reason == "uint8 features":  # no GPU gather for uint8: a dtype Keras takes
        x = (x * 100 + 100).astype("uint8")
    kwargs = {"epochs": 2, "shuffle": True}
    limit = 0 if over_limit else 2**30
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", limit)
    host = _run(x, y, 8, 2, kwargs)
    with monkeypatch.context() as patch:
        spy = _on_accelerator(patch)
        if reason == "too large":
            patch.setattr(limits, "DEVICE_ROWS_BYTES", x.nbytes - 1)
        elif reason == "no room":
            _no_room_for_labels(patch)  # the features copied, then no room
        with BlockSpy() as blocks:
            device = _run(x, y, 8, 2, kwargs)
    assert_same_results(device, host)  # the host's rows, or its blocks from NumPy
    assert bool(blocks.made) == over_limit
    if reason == "too large":
        assert spy.copies == []  # not even tried
    elif reason == "uint8 features" and over_limit:
        assert spy.copies == []  # every leaf must go: the arrays have no copy on the host
    elif reason == "uint8 features":  # held rows: the int32 labels go, the features stay
        assert spy.copies == [(HOST, True), (HOST, True), (HOST, False)]  # predict: none
    else:  # fit and evaluate let their features' copy go; predict's features fit
        assert spy.copies == [(HOST, False), (HOST, False), (HOST, True)]


def test_held_rows_keep_the_leaves_the_device_cannot_gather() -> None:
    rows = fitpipe.pipeline.ResidentRows(
        (
            tf.Variable(np.arange(12, dtype="uint8").reshape(6, 2)),
            tf.Variable(np.arange(6, dtype="int64")),
            tf.ragged.constant([[1], [], [2, 3], [4], [], [5]]),
        ),
        (None, None, None),
        6,
        2,
        False,
        0,
    )
    placed = device_rows.placed_rows(rows, HOST)
    assert placed.leaves[0] is rows.leaves[0]
    assert placed.leaves[2] is rows.leaves[2]
    assert placed.leaves[1] is not rows.leaves[1]
    np.testing.assert_array_equal(placed.leaves[1].numpy(), rows.leaves[1].numpy())
    arguments = placed.loop_arguments(0)
    for i in range(placed.num_batches):
        got, want = placed.batch(arguments, i), rows.batch(rows.loop_arguments(0), i)
        for mine, theirs in zip(got, want, strict=True):
            listed = [
                t.to_list() if hasattr(t, "to_list") else t.numpy().tolist() for t in (mine, theirs)
            ]
            assert listed[0] == listed[1]


@pytest.mark.skipif(ALL_ACCELERATED, reason="the suite runs as if on an accelerator")
def test_the_step_device_is_the_host_here_and_tuners_time_cpu_seconds() -> None:
    assert placement.step_device() is None  # no GPU on this machine
    with tf.device("/CPU:0"):
        assert placement.step_device() is None
    assert placement.step_clock() is time.process_time


@pytest.mark.parametrize("accelerated", [False, True])
def test_on_an_accelerator_tuners_time_wall_seconds_and_try_xla_early(
    monkeypatch: pytest.MonkeyPatch, accelerated: bool
) -> None:
    _accelerated_or_not(monkeypatch, accelerated)
    x, y = classifier_data(64)
    trainer = fitpipe.Trainer(classifier())
    trainer.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    clock = state_of(trainer.model).fused.clock  # type: ignore[union-attr]
    assert clock is (time.perf_counter if accelerated else time.process_time)
    assert trainer.tuning["xla"]["train"]["early_trial"] is accelerated


def _out_of_memory(x: Any) -> Any:
    raise MemoryError("OOM when allocating tensor (a test)")


class _Huge(keras.layers.Layer):
    """Runs out of memory at every call: TensorFlow raises a Python ``MemoryError`` raised in
    a ``py_function`` as ``ResourceExhaustedError``, as a real one (which the host's allocator
    raises only after waiting 10 s for memory to be freed).
    """

    def call(self, x: Any) -> Any:
        out = tf.py_function(_out_of_memory, [x], x.dtype)
        out.set_shape(x.shape)
        return out


@pytest.mark.parametrize("accelerated", [False, True])
@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
def test_out_of_memory_in_the_step_is_tensorflows_error_with_what_to_lower(
    monkeypatch: pytest.MonkeyPatch, accelerated: bool, call: str
) -> None:
    # Keras raises TensorFlow's ResourceExhaustedError; it is no data mismatch (it was worded
    # as one), and when rows were copied to the device, the note says how many and the knob.
    _accelerated_or_not(monkeypatch, accelerated)
    x, y = classifier_data(20)
    model = keras.Sequential([keras.Input((x.shape[1],)), _Huge(), keras.layers.Dense(3)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    calls = {
        "fit": lambda: trainer.fit(x, y, batch_size=4, verbose=0),
        "evaluate": lambda: trainer.evaluate(x, y, batch_size=4, verbose=0),
        "train_on_batch": lambda: trainer.train_on_batch(x, y),
    }
    with pytest.raises(tf.errors.ResourceExhaustedError, match="OOM") as caught:
        calls[call]()
    if not hasattr(caught.value, "add_note"):
        return  # Python 3.10: no notes
    note = caught.value.__notes__[-1]
    assert "ran out of memory while running the model's step" in note
    assert "Lower `batch_size`" in note or "lower `batch_size`" in note
    assert note.startswith(f"`{call}`")
    copied = accelerated and call != "train_on_batch"  # a batch given alone is not copied
    assert ("DEVICE_ROWS_BYTES" in note) is copied
    if copied:
        assert f"copied {(x.nbytes + y.nbytes) / 2**30:.2f} GiB" in note
