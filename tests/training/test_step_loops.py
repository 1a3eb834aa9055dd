"""The compiled loops over a ``tf.data`` iterator (:mod:`fitpipe.training.step_loops`).

A loop fetches the next batch while the step runs (fetched after it, a user's prefetched
input trained at 0.6x the wall speed), yet never fetches a batch no step of the call takes:
calls of any length see every batch once, in order.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.training.step_loops import collect_loop, last_loop, next_of_iterator

OUT = {"seen": tf.TensorSpec([], tf.int64)}


def _unprefetched(batches: int, made: list[tuple[int, float]]) -> tf.data.Dataset:
    """Batches ``0..batches-1``, each made when fetched (no read-ahead), noting when."""
    lock = threading.Lock()

    def make(index: np.int64) -> np.int64:
        with lock:
            made.append((int(index), time.perf_counter()))
        return index

    dataset = tf.data.Dataset.range(batches).map(
        lambda i: tf.ensure_shape(tf.numpy_function(make, [i], tf.int64), [])
    )
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    options.autotune.enabled = False
    return dataset.with_options(options)


@pytest.mark.parametrize("timed", [True, False])
def test_the_next_batch_is_fetched_while_the_step_runs(timed: bool) -> None:
    batches, pause = 4, 0.2
    made: list[tuple[int, float]] = []
    ended: dict[int, float] = {}

    def slow(index: np.int64) -> np.int64:
        time.sleep(pause)
        ended[int(index)] = time.perf_counter()
        return index

    def step(batch: Any) -> Any:
        (index,) = batch
        return {"seen": tf.ensure_shape(tf.numpy_function(slow, [index], tf.int64), [])}

    loop = tf.function(last_loop(step, OUT, next_of_iterator, timed))
    iterator = iter(_unprefetched(batches, made).map(lambda i: (i,)))
    count, outputs, waited, _ = loop(iterator, tf.constant(0), tf.constant(batches))
    assert int(count) == batches and int(outputs["seen"]) == batches - 1
    fetched = dict(made)
    for index in range(batches - 1):  # batch i + 1 is made before step i ends
        assert fetched[index + 1] < ended[index]
    if timed:  # every batch came while the step before it ran: the loop never waited
        assert float(waited) < pause


@settings(max_examples=15, deadline=None)
@given(
    batches=st.integers(0, 9),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    timed=st.booleans(),
    collect=st.booleans(),
)
def test_calls_of_any_length_see_every_batch_once(
    batches: int, sizes: list[int], timed: bool, collect: bool
) -> None:
    made: list[tuple[int, float]] = []
    stepped: list[int] = []

    def note(index: np.int64) -> np.int64:
        stepped.append(int(index))
        return index

    def step(batch: Any) -> Any:
        seen = tf.ensure_shape(tf.numpy_function(note, [batch[0]], tf.int64), [])
        return {"seen": seen[None] if collect else seen}

    make = collect_loop if collect else last_loop
    loop = tf.function(make(step, ROWS if collect else OUT, next_of_iterator, timed))
    iterator = iter(_unprefetched(batches, made).map(lambda i: (i,)))
    first = 0
    for n in sizes:
        count, outputs, _, _ = loop(iterator, tf.constant(first), tf.constant(n))
        assert int(count) == max(0, min(n, batches - first))
        if collect:
            assert list(outputs["seen"].numpy()) == list(range(first, first + int(count)))
        first += int(count)
    assert stepped == list(range(min(batches, sum(sizes))))
    assert [index for index, _ in made] == stepped  # no batch fetched that no step took


ROWS = {"seen": tf.TensorSpec([None], tf.int64)}
