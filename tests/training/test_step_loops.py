"""The compiled loops over a ``tf.data`` iterator (:mod:`fitpipe.training.step_loops`).

A loop fetches the next batch while the step runs (fetched after it, a user's prefetched
input trained at 0.6x the wall speed), yet never fetches a batch no step of the call takes:
calls of any length see every batch once, in order. An iterator known to hold a call's
batches (``tf.data``'s cardinality) is read synchronously, and only then: a synchronous read
past the end would fail the call.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from differential import dense_model, regression_data
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from fitpipe.errors import FitpipeWarning
from fitpipe.testing.keras_diff import assert_weights_close, compile_both, make_twins, run_both
from fitpipe.training import step_loops
from fitpipe.training.step_loops import collect_loop, iterator_fetch, last_loop, next_of_iterator

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
    held=st.booleans(),
)
def test_calls_of_any_length_see_every_batch_once(
    batches: int, sizes: list[int], timed: bool, collect: bool, held: bool
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
    iterator = iter(_unprefetched(batches, made).map(lambda i: (i,)))
    fetch = iterator_fetch(iterator, held)
    assert (fetch is not next_of_iterator) is held
    loop = tf.function(make(step, ROWS if collect else OUT, fetch, timed))
    first = 0
    for n in sizes:
        if held:  # read synchronously only as far as the input is known to go
            n = min(n, batches - first)
            if n == 0:
                break
        count, outputs, _, _ = loop(iterator, tf.constant(first), tf.constant(n))
        assert int(count) == max(0, min(n, batches - first))
        if collect:
            assert list(outputs["seen"].numpy()) == list(range(first, first + int(count)))
        first += int(count)
    assert stepped == list(range(min(batches, sum(sizes))))
    assert [index for index, _ in made] == stepped  # no batch fetched that no step took


def test_only_a_plain_iterator_of_dense_batches_is_read_synchronously() -> None:
    dense = tf.data.Dataset.from_tensor_slices(({"a": [[1.0]], "b": [[2]]}, [[3.0]])).batch(1)
    assert iterator_fetch(iter(dense), True) is not next_of_iterator
    assert iterator_fetch(iter(dense), False) is next_of_iterator
    ragged = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1], [2, 3]])).batch(2)
    assert iterator_fetch(iter(ragged), True) is next_of_iterator
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = iter(strategy.experimental_distribute_dataset(dense))
    assert iterator_fetch(distributed, True) is next_of_iterator


def test_a_synchronous_read_keeps_the_structure_of_the_batches() -> None:
    x = {"b": np.arange(6.0).reshape(3, 2), "a": np.arange(3)}
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(3.0) * 2, (np.ones(3),)))
    dataset = dataset.batch(2)
    sync, optional = iter(dataset), iter(dataset)
    read_sync, read_optional = _read(iterator_fetch(sync, True)), _read(next_of_iterator)
    assert iterator_fetch(sync, True) is not next_of_iterator
    for _ in range(2):
        tf.nest.map_structure(
            lambda s, o: np.testing.assert_array_equal(s.numpy(), o.numpy()),
            read_sync(sync),
            read_optional(optional),
        )


def _read(fetch: Any) -> Any:
    return tf.function(lambda iterator: fetch(iterator, tf.constant(0)).get_value())


X, Y = regression_data(n=96, d=4)


@settings(max_examples=8, deadline=None)
@example(kind="known", rows=40, calls=1, epochs=2, per_call=2)  # runs out in a second call
@given(
    kind=st.sampled_from(["known", "unknown", "repeated"]),
    rows=st.integers(16, 96),
    calls=st.none() | st.integers(1, 3),
    epochs=st.integers(1, 3),
    per_call=st.integers(1, 3),
)
def test_fit_reads_a_dataset_synchronously_only_as_far_as_it_is_known_to_go(
    kind: str, rows: int, calls: int | None, epochs: int, per_call: int
) -> None:
    if kind == "repeated" and calls is None:
        calls = 2  # an endless epoch otherwise
    # whole calls: Keras runs whole calls past `steps_per_epoch` (see the test below)
    steps_per_epoch = None if calls is None else calls * per_call
    batches = -(-rows // 16)
    if kind != "repeated" and steps_per_epoch is not None:
        # Where an input runs out, Keras' History is compared only for a known length that
        # ends mid-epoch: an epoch that starts with the input ended stops fitpipe's `fit`, as
        # it warns, and after an input of unknown length ran out Keras reports a loss of 0.
        ran_out = steps_per_epoch * epochs > batches
        assume(not ran_out or (kind == "known" and batches % steps_per_epoch))

    def data(side: str) -> dict[str, Any]:
        dataset = tf.data.Dataset.from_tensor_slices((X[:rows], Y[:rows])).batch(16)
        if kind == "unknown":
            dataset = dataset.filter(lambda x, y: True)
        dataset = dataset.repeat() if kind == "repeated" else dataset
        return {"x": dataset, "epochs": epochs, "steps_per_epoch": steps_per_epoch}

    held = []
    read = step_loops._next_held

    def spy(iterator: Any, index: tf.Tensor) -> Any:
        held.append(index)
        return read(iterator, index)

    compiled = {"optimizer": "sgd", "loss": "mse", "steps_per_execution": per_call}
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setattr(step_loops, "_next_held", spy)
        warnings.simplefilter("ignore", FitpipeWarning)  # an input that ran out, as Keras'
        warnings.simplefilter("ignore", UserWarning)
        # Keras counts an optimizer iteration past the end of an input of unknown length
        # (SGD: the weights do not depend on the count)
        result = run_both(lambda: dense_model(d=4), compiled, data, check_weights=False)
    assert_weights_close(result.ref, result.twin)
    if kind != "unknown":
        assert int(result.twin.optimizer.iterations) == int(result.ref.optimizer.iterations)
    first_call = min(per_call, steps_per_epoch or batches)
    known = kind == "repeated" or (kind == "known" and first_call <= batches)
    assert bool(held) is known  # and no call read synchronously past the end: none failed


ROWS = {"seen": tf.TensorSpec([None], tf.int64)}


def test_an_epoch_runs_steps_per_epoch_steps_in_calls_of_steps_per_execution() -> None:
    # The documentation: "At most, one full epoch will be run each execution"; Keras 3.15
    # runs whole calls, 4 steps for an epoch of 3 at 2 steps a call.
    dataset = tf.data.Dataset.from_tensor_slices((X[:16], Y[:16])).batch(16).repeat()
    compiled = {"optimizer": "sgd", "loss": "mse", "steps_per_execution": 2}
    fit = {"x": dataset, "epochs": 2, "steps_per_epoch": 3, "verbose": 0, "shuffle": False}
    ref, twin = make_twins(lambda: dense_model(d=4))
    compile_both(ref, twin, compiled).fit(**fit)
    ref.fit(**fit)
    assert int(twin.optimizer.iterations) == 6
    assert int(ref.optimizer.iterations) == 8


def _value(source: Any) -> tf.Tensor:
    """A source's values: a tuple's first tensor, or an iterator's next batch."""
    return source[0] if isinstance(source, tuple) else source.get_next()


class _Counted:
    """A ``tf.function``, counting the calls that went through it (each looks its trace up)."""

    def __init__(self) -> None:
        self.function = tf.function(lambda source, first, n: _value(source) * first + n)
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.function(*args)

    def get_concrete_function(self, *args: Any) -> Any:
        return self.function.get_concrete_function(*args)


@pytest.mark.parametrize("weak", [True, False])
def test_a_loop_runs_its_last_trace_while_its_source_is_the_same(weak: bool) -> None:
    def source(values: list[float]) -> Any:  # rows held (a tuple), or a tf.data iterator
        if weak:
            return iter(tf.data.Dataset.from_tensors(values).repeat())
        return (tf.constant(values),)

    loop, other = _Counted(), _Counted()
    last = step_loops.LastTrace(weak=weak)
    held = source([1.0, 2.0])
    for first in range(3):
        got = last.call(loop, held, tf.constant(float(first)), tf.constant(1.0))
        np.testing.assert_allclose(got, [first + 1.0, 2.0 * first + 1.0])
    assert loop.calls == 1  # the later calls ran its trace directly
    fresh = source([3.0])  # a new source (the next epoch, block, iterator)
    np.testing.assert_allclose(last.call(loop, fresh, tf.constant(2.0), tf.constant(0.0)), [6.0])
    assert loop.calls == 2
    last.call(other, fresh, tf.constant(2.0), tf.constant(0.0))  # another loop, same source
    assert other.calls == 1
    longer = source([1.0, 1.0, 1.0])  # another shape: traced again
    np.testing.assert_allclose(last.call(loop, longer, tf.constant(1.0), tf.constant(0.0)), [1] * 3)
    assert loop.calls == 3
    if weak:
        import gc
        import weakref

        gone = weakref.ref(longer)
        del longer
        gc.collect()
        assert gone() is None  # an iterator's buffers do not outlive its use
        unnamed = (tf.constant([2.0]),)  # no weak reference can name a tuple: no shortcut
        for _ in range(2):
            got = last.call(loop, unnamed, tf.constant(1.0), tf.constant(1.0))
            np.testing.assert_allclose(got, [3.0])
        assert loop.calls == 5


@pytest.mark.parametrize("form", ["numpy", "tf.data"])
def test_calls_of_one_step_find_the_loop_once_an_epoch(form: str, monkeypatch: Any) -> None:
    """A callback hooked on batches: one step a call, the loop looked up once an epoch."""
    import fitpipe
    from fitpipe.training.steps import StepFunction

    x, y = regression_data(n=64, d=4)
    trainer = fitpipe.Trainer(dense_model(d=4))
    trainer.compile("sgd", "mse")
    seen: list[int] = []
    hook = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    data: Any = {"x": x, "y": y, "batch_size": 8, "shuffle": False}
    if form == "tf.data":
        data = {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(8)}
    looked_up: list[int] = []
    build = StepFunction._build_loop
    monkeypatch.setattr(
        StepFunction, "_build_loop", lambda *a, **k: _Probe(build(*a, **k), looked_up)
    )
    trainer.fit(epochs=2, verbose=0, callbacks=[hook], **data)
    assert seen == list(range(8)) * 2
    assert isinstance(trainer._state.functions["train"], StepFunction)
    assert 1 <= len(looked_up) <= 4  # once an epoch (and its first call's trace), not a step


class _Probe:
    """A loop whose calls through the ``tf.function`` are counted (a call a lookup)."""

    def __init__(self, loop: Any, calls: list[int]) -> None:
        self.loop, self.calls = loop, calls

    def __call__(self, *args: Any) -> Any:
        self.calls.append(1)
        return self.loop(*args)

    def __getattr__(self, name: str) -> Any:  # get_concrete_function, the tracing count
        return getattr(self.loop, name)
