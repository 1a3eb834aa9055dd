"""A pipeline dropped without ``close()`` lets its reading threads and the user's input go.

``fitpipe.adapt`` of a generator or a ``PyDataset`` with workers starts threads that read
ahead. ``tf.data`` keeps the function a dataset of Python batches calls for the rest of the
process; when that function held the source, a pipeline read a little and dropped (without
``close()`` or ``with``) kept its reading thread, its worker pool and the user's generator
for the process' life: 20 such pipelines left 20 threads (generators) or 42 (``PyDataset``
with 2 workers), and no generator's ``finally`` ran. ``tf.data.Dataset.from_generator``
leaves none.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe

X = np.arange(64 * 4, dtype="float32").reshape(64, 4)
Y = X[:, :1]


def _fitpipe_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("fitpipe-")]


def _generator(closed: list[int]) -> Iterator[Any]:
    try:
        index = 0
        while True:  # endless, as a training generator often is
            start = (index % 8) * 8
            index += 1
            yield X[start : start + 8], Y[start : start + 8]
    finally:
        closed.append(1)


class _Batches(keras.utils.PyDataset):
    def __init__(self, closed: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.closed = closed

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Any:
        return X[index * 8 : (index + 1) * 8], Y[index * 8 : (index + 1) * 8]


_INPUTS: dict[str, Callable[[list[int]], Any]] = {
    "generator": _generator,
    "pydataset workers": lambda closed: _Batches(closed, workers=2),
}


def _read_a_little_and_drop(make: Callable[[list[int]], Any], closed: list[int]) -> None:
    pipeline = fitpipe.adapt(make(closed))
    for number, _ in enumerate(pipeline.dataset):
        if number == 2:
            break


@pytest.mark.parametrize("form", sorted(_INPUTS))
def test_a_dropped_pipeline_keeps_no_thread_and_no_input(form: str) -> None:
    before = set(_fitpipe_threads())
    closed: list[int] = []
    for _ in range(3):
        _read_a_little_and_drop(_INPUTS[form], closed)
    deadline = time.monotonic() + 10.0  # a waiting reader looks again every second
    while time.monotonic() < deadline:
        gc.collect()
        if not set(_fitpipe_threads()) - before:
            break
        time.sleep(0.1)
    assert not set(_fitpipe_threads()) - before, _fitpipe_threads()
    if form == "generator":
        assert closed == [1, 1, 1]  # each generator's ``finally`` ran


def test_a_pipeline_in_use_is_not_dropped_under_its_reader() -> None:
    """The reading thread holds the feeder only between waits: a pipeline still referenced
    keeps reading across the reader's idle looks, to the last batch."""
    closed: list[int] = []

    def finite() -> Iterator[Any]:
        for index, batch in enumerate(_generator(closed)):
            if index == 20:
                return
            yield batch

    with fitpipe.adapt(finite()) as pipeline:
        iterator = iter(pipeline.dataset)
        first = next(iterator)
        time.sleep(2.5)  # the reader waits past two of its looks
        gc.collect()
        rest = list(iterator)
    np.testing.assert_array_equal(first[0], X[:8])
    assert len(rest) == 19
