"""Inputs of unknown length: the total is known from the second epoch on, as in Keras.

A filtered ``tf.data.Dataset`` has no known cardinality. Keras' progress bar learns the
number of steps at the end of the first epoch and shows it from the second on, while
``params["steps"]`` stays None for every callback; fitpipe is compared with Keras on both.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from differential import dense_model, regression_data

from fitpipe.testing.keras_diff import compile_both, make_twins

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class StepsSeen(keras.callbacks.Callback):
    """Records ``params["steps"]`` at every epoch's start and end."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.seen.append(("begin", epoch, self.params.get("steps")))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seen.append(("end", epoch, self.params.get("steps")))


def _filtered(batch_size: int) -> tf.data.Dataset:
    x, y = regression_data(n=60, d=4)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True)
    return dataset.batch(batch_size)


def _epoch_lines(out: str) -> dict[int, list[str]]:
    """The progress lines printed under each ``Epoch N/M`` header."""
    text = _ANSI.sub("", out).replace("\x08", "").replace("\r", "\n")
    epochs: dict[int, list[str]] = {}
    current = 0
    for line in text.splitlines():
        header = re.match(r"Epoch (\d+)/", line.strip())
        if header:
            current = int(header.group(1))
            continue
        if line.strip():
            epochs.setdefault(current, []).append(line.strip())
    return epochs


@pytest.mark.parametrize("batch_size", [6, 7])
def test_second_epoch_shows_the_total_and_params_match_keras(capsys, batch_size: int) -> None:
    assert tf.data.experimental.cardinality(_filtered(batch_size)) == tf.data.UNKNOWN_CARDINALITY
    total = int(np.ceil(60 / batch_size))
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    keras_seen, fitpipe_seen = StepsSeen(), StepsSeen()
    capsys.readouterr()
    with pytest.warns(UserWarning):  # Keras: "`shuffle=True` ... ignored" for tf.data
        ref.fit(_filtered(batch_size), epochs=3, verbose=1, callbacks=[keras_seen])
    keras_out = capsys.readouterr().out
    api.fit(_filtered(batch_size), epochs=3, verbose=1, callbacks=[fitpipe_seen])
    out = capsys.readouterr().out
    assert fitpipe_seen.seen == keras_seen.seen
    assert all(steps is None for _, _, steps in fitpipe_seen.seen)
    for printed in (keras_out, out):
        lines = _epoch_lines(printed)
        assert any("Unknown" in line for line in lines[1])  # the first epoch cannot know
        for epoch in (2, 3):
            assert lines[epoch] and all(f"/{total}" in line for line in lines[epoch] if "/" in line)
            assert not any("Unknown" in line for line in lines[epoch])
