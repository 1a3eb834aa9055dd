"""The tuners that cannot be fooled: steps per call and ``jit_compile="auto"``.

No timing is asserted: the tuners read an injected clock, and a fake one (:class:`FakeClock`)
charges each call what a model of the machine says (seconds when the step traced, a cost
per step otherwise), so every decision here is deterministic.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from fake_clock import FakeClock
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeWarning
from fitpipe.pipeline import ResidentRows, row_chunks
from fitpipe.testing.strategies import call_timings
from fitpipe.training import steps as steps_module
from fitpipe.training import xla_rules
from fitpipe.training.graph_ops import control_flow, loops, op_types, scatters, switches
from fitpipe.training.tuning import ExecutionSize, XlaChoice, stable_timing

X = np.random.default_rng(0).standard_normal((4000, 4)).astype("float32")
Y = X[:, :1] * 2.0


@pytest.fixture(autouse=True)
def unseeded_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """XLA timed as in an unseeded run (the models are seeded only for equal weights).

    A seeded run takes Keras' choice untimed (``xla_rules``); these tests are about timing.
    """
    monkeypatch.setattr(xla_rules, "global_seed", lambda: None)


@pytest.fixture(autouse=True)
def trial_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """XLA is tried as soon as the plain timings are stable (the fake clocks add up little)."""
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)


@pytest.fixture(autouse=True)
def calls_of_fake_steps(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenarios here charge 1-4 ms a step and were written for sizes settled at 50 ms.

    What they test (which calls are timed, when XLA is tried, how sizes move) does not depend
    on how far a settled size is lengthened (``CALL_SECONDS``); the tests named
    ``*lengthen*`` test the default.
    """
    if "lengthen" not in request.node.name:
        monkeypatch.setattr(ExecutionSize, "CALL_SECONDS", ExecutionSize.TARGET_SECONDS)


def test_xla_is_not_tried_before_the_plain_graph_ran_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 1.0)
    choice = XlaChoice()
    for _ in range(7):  # 0.875 s of stable timings: a compile would not pay back
        choice.record(10, 0.125, traced=False, size=10, settled=True)
    assert choice.variant is False and choice.decided is None
    choice.record(10, 0.125, traced=False, size=10, settled=True)  # 1 s: now worth a trial
    assert choice.variant is True and choice.decided is None


def test_xla_is_tried_at_once_when_the_steps_ahead_would_run_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 1.0)
    short, long = XlaChoice(), XlaChoice()
    for _ in range(2):  # 0.25 s timed, stable: 12.5 ms a step
        short.record(10, 0.125, traced=False, size=10, settled=True, ahead=50)  # 0.6 s ahead
        long.record(10, 0.125, traced=False, size=10, settled=True, ahead=70)  # 0.9 s ahead
    assert short.variant is False and long.variant is True
    assert short.decided is None and long.decided is None


def test_fit_tells_the_xla_choice_the_steps_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200 steps an epoch (batch 20 of 4,000 rows) at 1 ms a plain step: 0.6 s for 3 epochs,
    # of which under 0.4 s is timed (the first calls trace or tune the steps per call), so
    # timings alone never reach a 0.4 s threshold. Counting the steps ahead, the trial
    # comes once the plain timing is stable, in the second epoch (calls 8-11: 64, 64, 64
    # and 8 steps); with 1 epoch nothing is ahead and XLA is never tried.
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.4)
    trials = {}
    for epochs in (1, 3):
        trainer, clock = _trainer({"plain": 1e-3, "xla": 5e-4})
        trainer.fit(X, Y, batch_size=20, epochs=epochs, verbose=0)
        trials[epochs] = [i for i, (traced, _) in enumerate(clock.charged) if traced][1:]
    assert trials[1] == []
    assert len(trials[3]) == 1 and trials[3][0] <= 11, trials


def test_steps_per_call_grow_when_xla_makes_each_step_faster() -> None:
    # Settled on the plain step (4 ms: 8 steps reach the 50 ms target's power of two), the
    # size is scaled by the speed-up XLA measured (4x: 32 steps), so calls keep their length.
    sizes = {}
    for xla in (4e-3, 1e-3):
        trainer, _ = _trainer({"plain": 4e-3, "xla": xla, "overhead": 0.0})
        trainer.fit(X, Y, batch_size=10, epochs=3, verbose=0)
        report = trainer.tuning
        sizes[xla] = report["steps_per_execution"]["steps_per_execution"]
        assert report["xla"]["train"]["xla"] is (xla < 4e-3), report
    assert sizes[1e-3] == 4 * sizes[4e-3], sizes


@given(
    st.floats(1e-5, 0.1),  # seconds a step
    st.floats(0.0, 0.02),  # seconds a call costs beyond its steps (Python, the runtime)
    st.one_of(st.none(), st.integers(1, 5000)),  # the epoch's steps, when known
)
@settings(deadline=None)
def test_lengthened_sizes_make_the_cost_of_a_call_small(
    step: float, overhead: float, epoch: int | None
) -> None:
    # A call's own cost (up to 20 ms here) is at most 8% of a settled call, unless calls are
    # whole epochs or the size hit its maximum. Measured: a Conv1D over 512 positions costs
    # 5-10 ms of CPU a call beyond its steps; settled at 2 steps a call (50 ms calls) it ran
    # 4-10% under 16-64 a call (benchmarks/RESULTS.md).
    size = ExecutionSize("auto")
    size.fit_epoch(epoch)
    while not size.settled:
        size.record(size.size, overhead + size.size * step)
    size.lengthen()
    whole = epoch is not None and size.size == epoch
    assert whole or size.size == size.MAX or overhead <= 0.08 * (overhead + size.size * step)
    assert epoch is None or size.size <= epoch  # no call asked for more than an epoch


def test_a_settled_size_scales_by_the_nearest_power_of_two() -> None:
    size = ExecutionSize("auto")
    size.size, size._settled = 16, True
    size.speed_up(3.57)  # 4.1 ms against 1.15 ms a step
    assert size.size == 64
    size.speed_up(0.5)
    assert size.size == 32
    fixed = ExecutionSize(16)
    fixed.speed_up(4.0)  # a size the user chose is never changed
    assert fixed.size == 16


class _Flow(keras.layers.Layer):
    """A layer whose call branches or loops on its input (``keras.ops`` control flow)."""

    def __init__(self, kind: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "kind": self.kind}

    def call(self, x: object) -> object:
        ops = keras.ops
        if self.kind == "cond":
            return ops.cond(ops.mean(x) > 0, lambda: ops.tanh(x) * 2.0, lambda: ops.sigmoid(x))
        if self.kind == "switch":
            index = ops.cast(ops.mean(x) > 0, "int32")
            return ops.switch(index, [ops.tanh, lambda h: ops.sigmoid(h) * 2.0], x)
        return ops.fori_loop(0, 3, lambda i, h: 0.5 * h + ops.tanh(h), x)


def _model(kind: str = "dense") -> keras.Model:
    if kind == "dense":
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    if kind in ("lstm", "gru"):
        recurrent = keras.layers.LSTM(3) if kind == "lstm" else keras.layers.GRU(3)
        hidden = [keras.layers.Reshape((2, 2)), recurrent]
        return keras.Sequential([keras.Input((4,)), *hidden, keras.layers.Dense(1)])
    if kind in ("cond", "switch", "fori"):
        hidden = [keras.layers.Dense(3), _Flow(kind)]
        return keras.Sequential([keras.Input((4,)), *hidden, keras.layers.Dense(1)])
    inputs = keras.Input((4,), dtype="int32")
    embedding = keras.layers.Embedding(50, 3, trainable=kind != "frozen embedding")
    hidden = keras.layers.GlobalAveragePooling1D()(embedding(inputs))
    if kind == "embedding and conv":
        hidden = keras.layers.Conv1D(2, 2)(keras.layers.Reshape((3, 1))(hidden))
        hidden = keras.layers.Flatten()(hidden)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def _trainer(
    clock_kwargs: dict[str, float], kind: str = "dense", **compile_kwargs: object
) -> tuple[fitpipe.Trainer, FakeClock]:
    trainer = fitpipe.Trainer(_model(kind))
    trainer.compile(optimizer="sgd", loss="mse", **compile_kwargs)
    clock = FakeClock(trainer, **clock_kwargs)
    trainer._state.fused = ExecutionSize("auto", clock=clock)
    return trainer, clock


def _fits_as_keras(trainer: fitpipe.Trainer, x: Any, y: Any, **fit: Any) -> None:
    """Fits ``trainer`` and Keras' plain ``fit`` of a twin of its model (same weights, SGD,
    MSE, in order); asserts both lose and end alike."""
    oracle = keras.models.clone_model(trainer.model)
    oracle.set_weights(trainer.model.get_weights())
    oracle.compile(optimizer="sgd", loss="mse", jit_compile=False)
    expected = oracle.fit(x, y, shuffle=False, verbose=0, **fit)
    history = trainer.fit(x, y, shuffle=False, verbose=0, **fit)
    np.testing.assert_allclose(
        history.history["loss"], expected.history["loss"], rtol=1e-4, atol=1e-6
    )
    for ours, theirs in zip(trainer.model.get_weights(), oracle.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------- steps that scatter gradients

IDS = np.random.default_rng(1).integers(0, 50, (4000, 4)).astype("int32")


@pytest.mark.parametrize("plain", [1e-3, 0.2e-3, 5e-3])
def test_an_early_trial_starts_once_the_plain_step_is_timed_before_the_size_settles(
    monkeypatch: pytest.MonkeyPatch, plain: float
) -> None:
    # An early trial (an embedding's gradient) compiles XLA right after two plain calls of
    # 10 ms or more agree, whatever the size: waiting for the size to settle (calls of 50
    # ms) ran the grid's text model 227 plain steps, 4.5x slower than XLA's, where 36 now
    # run. The steps-per-call tuner does not time XLA's calls on trial: it settles on the
    # variant chosen. 1,000 steps an epoch.
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 1e9)
    trainer, clock = _trainer({"plain": plain, "xla": plain / 2}, "embedding", jit_compile="auto")
    trainer.fit(IDS, Y, batch_size=4, epochs=2, verbose=0)
    first = next(i for i, (xla, _) in enumerate(clock.sizes) if xla)
    before = [steps for _, steps in clock.sizes[:first]]
    timed = [steps for steps in before if steps * plain >= XlaChoice.EARLY_CALL_SECONDS]
    assert timed == before[-2:] and timed[0] == timed[1], clock.sizes  # two calls, then XLA
    assert timed[0] * plain < 2 * ExecutionSize.TARGET_SECONDS  # before calls of 50 ms
    assert trainer.tuning["xla"]["train"]["xla"] is True
    fused = trainer._state.fused
    assert fused is not None
    xla_timed = {size: seconds for size, seconds in fused.history.items() if size > timed[0]}
    for size, seconds in xla_timed.items():  # the tuner timed XLA only once it was chosen
        assert seconds == pytest.approx(size * plain / 2, rel=0.05), fused.history


@pytest.mark.parametrize(
    ("kind", "scattering"),
    [
        ("embedding", True),
        ("embedding and conv", True),
        ("frozen embedding", False),
        ("dense", False),
    ],
)
def test_a_step_that_scatters_gradients_tries_xla_without_waiting(
    monkeypatch: pytest.MonkeyPatch, kind: str, scattering: bool
) -> None:
    # However short the run, a trainable embedding's step (a gather whose gradient is summed
    # into segments) tries XLA once its plain timing is stable; other steps wait for the
    # run to be long enough (here never). The trial still decides by the timings.
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 1e9)
    x = X if kind == "dense" else IDS
    for xla, kept in ((0.5e-3, True), (2e-3, False)):
        trainer, _ = _trainer({"plain": 1e-3, "xla": xla}, kind, jit_compile="auto")
        trainer.fit(x, Y, batch_size=4, epochs=2, verbose=0)
        report = trainer.tuning["xla"]["train"]
        assert report["early_trial"] is scattering, report
        assert report["decided"] is scattering and report["xla"] is (scattering and kept), report


@pytest.mark.parametrize(
    ("kind", "xla"), [("embedding", 0.5e-3), ("embedding", 2e-3), ("dense", 0.0)]
)
def test_calls_lengthen_once_no_xla_trial_is_due(kind: str, xla: float) -> None:
    # An embedding's step times XLA at once, on the calls settled at 50 ms (64 steps of 1 ms
    # here); only once the choice is made do calls lengthen to about 0.5 s, so both variants
    # are timed at one size. A step with no trial to come (jit_compile=False) lengthens as
    # soon as it settles. 1,000 steps an epoch.
    compile_kwargs = {"jit_compile": "auto" if xla else False}
    trainer, clock = _trainer({"plain": 1e-3, "xla": xla or 1e-3}, kind, **compile_kwargs)
    trainer.fit(IDS if kind == "embedding" else X, Y, batch_size=4, epochs=2, verbose=0)
    settled = 64  # 50 ms / 1 ms, to the power of two below
    assert next(steps for _, steps in clock.sizes if steps >= settled) == settled, clock.sizes
    last = (False, settled * 8)  # 64.4 ms calls to 0.5 s: x8, the nearest power of two
    if xla:
        choice = trainer._state.functions["train"].xla_choice
        assert choice is not None and choice.decided is (xla < 1e-3)
        trial = [steps for variant, steps in clock.sizes if variant]
        assert trial[:2] == [settled] * 2, clock.sizes  # XLA timed on the 50 ms calls
        if choice.decided:  # twice as fast: x2 (its speed-up), then x8, capped at the epoch
            last = (True, 1000)
    assert clock.sizes[-1] == last, clock.sizes


@pytest.mark.parametrize("xla", [0.5e-3, 2e-3])
def test_a_trial_after_calls_lengthened_runs_on_calls_of_the_settled_size(
    monkeypatch: pytest.MonkeyPatch, xla: float
) -> None:
    # A first fit too short for a trial settles at 64 steps (50 ms of 1 ms steps) and
    # lengthens to 512 (0.5 s). A second, long enough, compiles and times XLA on calls of
    # 64, not 512. A win there is checked against the plain graph timed again on calls of
    # 64 (a call's own cost weighs more on shorter calls); a 2x loss stands. Then calls
    # lengthen again, scaled by XLA's speed-up when it is kept. 1,000 steps an epoch.
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 1e9)
    trainer, clock = _trainer({"plain": 1e-3, "xla": xla}, jit_compile="auto")
    trainer.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    assert clock.sizes[-1] == (False, 512), clock.sizes
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)
    start = len(clock.calls)
    trainer.fit(X, Y, batch_size=4, epochs=3, verbose=0)
    calls = clock.calls[start:]
    trial = [(variant, traced, steps) for variant, traced, steps, due in calls if due]
    assert [t[:2] for t in trial[:3]] == [(True, True), (True, False), (True, False)], calls
    assert {steps for _, _, steps in trial} == {64}, calls  # compiled and timed on 64
    plain_again = [t for t in trial if not t[0]]
    assert plain_again == ([(False, False, 64)] * 2 if xla < 1e-3 else []), calls
    choice = trainer._state.functions["train"].xla_choice
    assert choice is not None and choice.decided is (xla < 1e-3)
    last = (True, 1024) if choice.decided else (False, 512)  # 512 x 2: XLA's speed-up
    assert calls[-1][0] == last[0] and calls[-1][2] == last[1], calls


@settings(max_examples=50, deadline=None)
@given(
    step=st.floats(1e-5, 0.2),
    epoch=st.one_of(st.none(), st.integers(1, 5000)),
    faster=st.one_of(st.none(), st.floats(0.3, 8.0)),
)
def test_shorter_trial_calls_end_at_the_lengthened_size(
    step: float, epoch: int | None, faster: float | None
) -> None:
    """:meth:`ExecutionSize.shorten` runs the settled size until ``lengthen`` restores the
    lengthened one (scaled by a speed-up meanwhile); it never makes calls longer."""
    size = ExecutionSize("auto", clock=lambda: 0.0)
    size.fit_epoch(epoch)
    for _ in range(40):  # settle: timings of `step` seconds a step
        size.record(size.size, size.size * step)
    assert size.settled
    settled = size.size
    size.lengthen()
    lengthened = size.size
    size.shorten()
    assert size.size == min(settled, lengthened)
    if faster is not None:
        size.speed_up(faster)
    size.lengthen()
    scale = 1 if faster is None else 2 ** round(math.log2(faster))
    whole = epoch is not None and lengthened == epoch  # calls of whole epochs: not scaled
    expected = lengthened if whole else max(1, min(ExecutionSize.MAX, lengthened * scale))
    assert size.size == expected
    size.lengthen()  # once only
    assert size.size == expected


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_scatter_ops_are_found_in_the_traced_step_only_when_gradients_scatter(
    optimizer: str,
) -> None:
    for kind, scattering in (("embedding", True), ("frozen embedding", False), ("dense", False)):
        model = _model(kind)
        model.compile(optimizer=optimizer, loss="mse")
        dtype = "float32" if kind == "dense" else "int32"
        spec = (tf.TensorSpec([None, 4], dtype), tf.TensorSpec([None, 1], "float32"))
        step = tf.function(model.train_step, autograph=False)
        assert scatters(op_types(step.get_concrete_function(spec))) is scattering, kind
        predict = tf.function(model.predict_step, autograph=False)  # a gather, no gradient
        assert not scatters(op_types(predict.get_concrete_function((spec[0],))))


@pytest.mark.parametrize(
    ("kind", "looping", "branching"),
    [
        ("lstm", True, True),  # Keras' recurrent layers loop over time steps
        ("gru", True, True),
        ("fori", True, False),
        ("cond", False, True),
        ("switch", False, True),
        ("dense", False, False),
        ("embedding", False, False),
    ],
)
def test_loops_and_branches_are_found_in_the_traced_step(
    kind: str, looping: bool, branching: bool
) -> None:
    # (The recurrent layers' gradients branch too.)
    model = _model(kind)
    model.compile(optimizer="adam", loss="mse")
    dtype = "int32" if "embedding" in kind else "float32"
    spec = (tf.TensorSpec([None, 4], dtype), tf.TensorSpec([None, 1], "float32"))
    ops = op_types(tf.function(model.train_step, autograph=False).get_concrete_function(spec))
    assert loops(ops) is looping, sorted(ops)
    assert control_flow(ops) is (looping or branching), sorted(ops)
    assert switches(ops) is (kind == "switch"), sorted(ops)


@pytest.mark.parametrize(
    ("kind", "xla"),
    [
        ("lstm", 0.5e-3),
        ("lstm", 2e-3),
        ("gru", 0.5e-3),
        ("fori", 0.5e-3),  # an unbounded loop: XLA cannot compile its gradient (nor Keras')
        ("cond", 0.5e-3),
        ("switch", 0.5e-3),  # never tried: XLA corrupted memory on it (graph_ops.switches)
    ],
)
def test_a_step_that_loops_or_branches_has_its_xla_trial_and_trains_as_keras(
    kind: str, xla: float
) -> None:
    # The plain graph's own trace of such a step builds its gradient in a way XLA cannot
    # compile (an LSTM's: "BroadcastGradientArgs must be a compile-time constant"): reusing
    # it, "auto" gave up on XLA ("XLA cannot compile the step") for every recurrent model.
    # XLA's variant now traces the step itself; the trial measures and decides, and the
    # steps on either side of it train as Keras' `fit` of the same model.
    trainer, clock = _trainer({"plain": 1e-3, "xla": xla}, kind, jit_compile="auto")
    _fits_as_keras(trainer, X, Y, batch_size=8, epochs=2)
    report = trainer.tuning["xla"]["train"]
    if kind in ("fori", "switch"):
        reason = "XLA cannot compile" if kind == "fori" else "a switch_case step"
        assert report["reason"].startswith(reason), report
        assert not any(compiled for compiled, _ in clock.sizes), clock.sizes
    else:
        assert report["reason"] == "measured", report  # not "cannot compile"
        assert any(compiled for compiled, _ in clock.sizes), clock.sizes  # XLA ran calls
    assert report["xla"] is (xla < 1e-3 and kind not in ("fori", "switch")), report
    assert report["loop_step"] is (kind in ("lstm", "gru", "fori")), report


@pytest.mark.parametrize("source", ["arrays", "tf.data"])
@pytest.mark.parametrize("kind", ["switch", "cond"])
def test_a_switch_case_step_asked_for_xla_runs_the_plain_graph_with_a_warning(
    source: str, kind: str
) -> None:
    # XLA compiled for batches of any size aborted, segfaulted or hung every process that
    # ran a `tf.switch_case` step here (Keras' own `fit` too, from `tf.data`): under
    # `jit_compile=True` such a step runs the plain graph, saying why, and trains as Keras'
    # plain `fit`. A `cond`, which XLA runs, is compiled as asked, without a warning.
    trainer = fitpipe.Trainer(_model(kind))
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x: object = (
        X[:400]
        if source == "arrays"
        else tf.data.Dataset.from_tensor_slices((X[:400], Y[:400])).batch(8)
    )
    y = Y[:400] if source == "arrays" else None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _fits_as_keras(trainer, x, y, batch_size=None if y is None else 8)
    said = [str(w.message) for w in seen if issubclass(w.category, FitpipeWarning)]
    if kind == "switch":
        assert len(said) == 1, said
        assert re.search(
            r"`fit` does not compile the model with XLA: .*`tf\.switch_case`", said[0]
        ), said
        assert "pass `jit_compile=False`" in said[0]
    else:
        assert not said, said
    assert trainer._state.functions["train"].jit_compile is (kind == "cond")


# ------------------------------------------------------------------------- the rules alone


def test_a_timing_counts_only_once_two_in_a_row_agree() -> None:
    assert stable_timing([0.01]) is None
    assert stable_timing([0.01, 0.03]) is None  # a noisy neighbour, or a compile
    assert stable_timing([0.01, 0.03, 0.031]) == 0.03
    assert stable_timing([0.01, 0.03, 0.01, 0.03, 0.01, 0.03]) == 0.01  # noisy: the fastest


def test_size_is_not_settled_by_unstable_timings() -> None:
    size = ExecutionSize("auto")
    size.record(1, 1.0)  # slow without a trace (XLA meeting a new shape): not yet a timing
    size.record(1, 0.0005)
    assert size.size == 1
    size.record(1, 0.0005)
    assert size.size == 64 and size.history == {1: 0.0005}


@given(call_timings())
def test_calls_that_traced_never_change_the_steps_per_call(calls: list[tuple[float, bool]]) -> None:
    with_traces, without = ExecutionSize("auto"), ExecutionSize("auto")
    for seconds, traced in calls:
        with_traces.record(with_traces.size, seconds, traced=traced)
        if not traced:
            without.record(without.size, seconds)
    assert (with_traces.size, with_traces.settled) == (without.size, without.settled)
    assert with_traces.history == without.history


@given(call_timings())
def test_calls_that_traced_never_change_the_xla_choice(calls: list[tuple[float, bool]]) -> None:
    # A traced call is never timed; the first one only sets when a trial is due, which the
    # fixture makes "at once" for both.
    with_traces, without = XlaChoice(), XlaChoice()
    for seconds, traced in calls:
        with_traces.record(8, seconds, traced, 8, True)
        if not traced:
            without.record(8, seconds, False, 8, True)
    first = ("plain_first_call_seconds", "xla_first_call_seconds")
    reports = [
        {k: v for k, v in c.report().items() if k not in first} for c in (with_traces, without)
    ]
    assert reports[0] == reports[1]


@given(
    st.floats(0.01, 2.0),  # CPU seconds of the plain graph's first call (trace and compile)
    st.floats(1e-4, 0.05),  # seconds a plain step
    st.integers(0, 100_000),  # steps ahead in the fit
    st.booleans(),  # whether the first call was seen (else the fixed threshold)
    st.booleans(),  # whether the step loops (a recurrent layer)
)
def test_xla_is_tried_once_the_run_is_long_against_the_plain_graphs_first_call(
    first: float, step: float, ahead: int, seen: bool, looping: bool
) -> None:
    # The trial's threshold is TRIAL_AFTER_TRACES first calls of the plain graph (XLA's
    # compile is a few of them), TRIAL_AFTER_LOOP_TRACES for a step that loops, capped at
    # TRIAL_AFTER_SECONDS; nothing else moves it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 60.0)
        choice = XlaChoice()
        choice.loops = looping
        if seen:
            choice.record(1, first, True, 1, False)  # the call that traced: not timed
        for _ in range(2):
            choice.record(8, 8 * step, False, 8, True, ahead=ahead)
        traces = XlaChoice.TRIAL_AFTER_LOOP_TRACES if looping else XlaChoice.TRIAL_AFTER_TRACES
        assert traces == (10.0 if looping else 50.0)
        threshold = min(60.0, traces * first) if seen else 60.0
        assert choice.trial_after == pytest.approx(threshold)
        assert choice.timings[False] == [8 * step / 8] * 2  # the traced call was not timed
        expected = 2 * 8 * step + ahead * step
        if abs(expected - threshold) > 1e-9 * threshold:
            assert choice.variant is (expected >= threshold), (expected, threshold)
        assert choice.decided is None
        assert choice.report()["plain_first_call_seconds"] == (first if seen else None)


@settings(max_examples=300, deadline=None)  # plain Python: 300 examples take a second
@given(call_timings(60), st.booleans(), st.sampled_from([(8, 8), (64, 8), (8, 64)]))
@example(
    calls=[(8e-3, False)] * 2 + [(2e-3, False)] * 2 + [(8e-3, False)] * 2,
    early=False,
    sizes=(64, 8),
)
def test_xla_is_kept_only_when_its_timing_beat_a_plain_timing_taken_next_to_it(
    calls: list[tuple[float, bool]], early: bool, sizes: tuple[int, int]
) -> None:
    # Whatever the timings (noisy or stable, traced or not), a choice of XLA rests on an XLA
    # timing faster by the margin than the plain timing it was compared with, and that plain
    # timing was taken after XLA's when the two were within RECHECK_BELOW of each other, or
    # when XLA's calls were the shorter (the plain graph timed on the calls before the
    # trial, of `sizes[0]` steps; the trial's calls, timed again plain, of `sizes[1]`).
    choice = XlaChoice(early=early)
    for seconds, traced in calls:
        size = sizes[1] if choice.trial_due else sizes[0]
        choice.record(size, seconds * size / 8, traced, size, True)
    if choice.decided is None:
        return
    plain, xla = choice.per_step[False], choice.per_step[True]
    close = plain < xla * XlaChoice.RECHECK_BELOW and xla < plain * XlaChoice.RECHECK_BELOW
    assert choice.rechecked or not close, choice.report()  # close: plain timed again
    assert choice.decided is (xla <= plain * (1 - XlaChoice.MARGIN)), choice.report()
    if choice.decided:  # XLA's win is never over a plain timing on longer calls
        assert choice.timed_at[True] >= choice.timed_at[False], choice.report()


def test_xla_choice_times_both_variants_then_keeps_the_clearly_faster() -> None:
    choice = XlaChoice()
    choice.record(8, 8e-3, False, 8, settled=False)  # steps per call not settled: not timed
    choice.record(3, 3e-3, False, 8, settled=True)  # under half the size: not timed
    choice.record(6, 6e-3, False, 8, True, asked=8)  # its input ended: not timed
    choice.record(8, 9.0, True, 8, settled=True)  # traced: not timed
    assert choice.timings == {False: [], True: []}
    choice.record(8, 8e-3, False, 8, True)
    assert not choice.variant
    choice.record(8, 8e-3, False, 8, True)
    assert choice.variant and choice.decided is None  # now XLA is compiled and timed
    choice.record(8, 5.0, True, 8, True)  # the call that compiles XLA traces
    choice.record(8, 4e-3, False, 8, True)
    choice.record(8, 4e-3, False, 8, True)
    assert choice.decided is True and choice.per_step == {False: 1e-3, True: 5e-4}


@pytest.mark.parametrize(
    ("xla", "kept", "close"),
    [(0.95e-3, False, True), (0.85e-3, True, True), (1.2e-3, False, True), (1.6e-3, False, False)],
)
def test_xla_must_be_faster_by_the_margin(xla: float, kept: bool, close: bool) -> None:
    # Within 1.5x either way, the plain graph is timed again (it stays at 1 ms here).
    choice = XlaChoice()
    plain_again = [(1e-3, False)] * 2 if close else []
    for per_step, variant in [(1e-3, False)] * 2 + [(xla, True)] * 2 + plain_again:
        assert choice.variant is variant and choice.decided is None
        choice.record(10, 10 * per_step, False, 10, True)
    assert choice.decided is kept and choice.reason == "measured"
    assert choice.rechecked is close


@pytest.mark.parametrize(
    ("xla", "again", "kept"),
    [
        (0.8e-3, 0.6e-3, False),
        (0.8e-3, 1e-3, True),
        (0.8e-3, 0.85e-3, False),
        (0.8e-3, 2e-3, True),
        (1.15e-3, 1.3e-3, True),
        (1.15e-3, 1e-3, False),
        (1.15e-3, 0.9e-3, False),
    ],
)
def test_a_close_result_for_xla_is_decided_by_the_plain_graph_timed_again(
    xla: float, again: float, kept: bool
) -> None:
    # Plain timed at 1 ms, then XLA within 1.5x of it: 0.8 ms (a close win: the first plain
    # calls of a fresh model can run slow) or 1.15 ms (a close loss: timings calls apart
    # differ on a loaded machine). The plain graph timed again, next to XLA, decides.
    choice = XlaChoice()
    for per_step in (1e-3, 1e-3, xla, xla, again, again):
        assert choice.decided is None
        choice.record(10, 10 * per_step, False, 10, True)
    assert choice.rechecked and choice.decided is kept
    assert choice.per_step == pytest.approx({False: again, True: xla})


def test_a_clear_win_for_xla_is_kept_without_timing_the_plain_graph_again() -> None:
    choice = XlaChoice()
    for per_step in (3e-3, 3e-3, 1e-3, 1e-3):  # 3x
        choice.record(10, 10 * per_step, False, 10, True)
    assert choice.decided is True and not choice.rechecked


# ------------------------------------------------------------------ in fit, fake clock


def test_steps_per_call_settle_above_one_when_the_first_calls_compile() -> None:
    # The case of the issue: the first call traces and compiles (3.5 s), which a tuner that
    # timed it read as "calls are long enough" and kept 1 step per call for good.
    trainer, clock = _trainer({}, jit_compile=False)
    trainer.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    fused = trainer._state.fused
    assert fused is not None and fused.settled
    assert fused.size > 1
    assert fused.traced_calls >= 1 and clock.charged[0] == (True, 3.5)
    assert max(fused.history.values()) < 3.5  # no traced call was timed
    assert trainer.tuning["steps_per_execution"]["steps_per_execution"] == fused.size


@pytest.mark.parametrize(("xla", "chosen"), [(0.5e-3, True), (2e-3, False), (0.97e-3, False)])
def test_auto_jit_picks_the_faster_variant(xla: float, chosen: bool) -> None:
    trainer, clock = _trainer({"plain": 1e-3, "xla": xla}, jit_compile="auto")
    trainer.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    function = trainer._state.functions["train"]
    choice = function.xla_choice
    assert choice is not None and choice.decided is chosen, clock.charged
    assert function.jit_compile is chosen
    report = trainer.tuning["xla"]["train"]
    assert report["reason"] == "measured" and report["xla"] is chosen
    assert report["plain_seconds_per_step"] == pytest.approx(1e-3, rel=0.1)
    assert report["xla_seconds_per_step"] == pytest.approx(xla, rel=0.1)
    # Compiling XLA traced the step once more, in a call that was not timed; no probe trace.
    assert function._variants[True].experimental_get_tracing_count() == 1
    assert sum(traced for traced, _ in clock.charged) == fused_traced(trainer)


def fused_traced(trainer: fitpipe.Trainer) -> int:
    fused = trainer._state.fused
    assert fused is not None
    return fused.traced_calls


def test_the_choice_is_kept_for_later_fits() -> None:
    trainer, clock = _trainer({"plain": 1e-3, "xla": 0.5e-3}, jit_compile="auto")
    trainer.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    train = trainer._state.functions["train"]
    assert train.jit_compile is True
    calls = len(clock.charged)
    trainer.fit(X[:400], Y[:400], batch_size=4, epochs=1, verbose=0)  # same inputs: no retiming
    assert train.xla_choice is not None and train.xla_choice.decided is True
    assert train.jit_compile is True
    assert len(clock.charged) > calls


@pytest.mark.parametrize("train_xla", [True, False])
@pytest.mark.parametrize("test_xla", [True, False])
def test_evaluate_and_predict_time_xla_for_their_own_steps(
    monkeypatch: pytest.MonkeyPatch, train_xla: bool, test_xla: bool
) -> None:
    # XLA's gain in the train step does not carry to the others (a Conv1D on CPU: the
    # train step 0.69x the plain graph's time with XLA, its test step 1.49x, its predict
    # step 2.82x). A train step that chose XLA has the test and predict steps try it at
    # once, each keeping the faster for itself; otherwise calls this short never try it.
    trainer, clock = _trainer({"plain": 1e-3, "xla": 0.5e-3 if train_xla else 2e-3})
    trainer.compile(optimizer="sgd", loss="mse", jit_compile="auto")
    clock.trainer = trainer
    trainer._state.fused = ExecutionSize("auto", clock=clock)
    trainer.fit(X, Y, batch_size=4, epochs=3, verbose=0)  # XLA tried at once (the fixture)
    assert trainer.tuning["xla"]["train"]["decided"]
    assert trainer._state.functions["train"].jit_compile is train_xla
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 60.0)  # the default
    clock.cost = {False: 1e-3, True: 0.5e-3 if test_xla else 2e-3}
    for mode, call in (
        ("test", lambda: trainer.evaluate(X, Y, batch_size=4, verbose=0)),
        ("predict", lambda: trainer.predict(X, batch_size=4, verbose=0)),
    ):
        clock.mode = mode
        for _ in range(10):  # calls of 1,000 steps: timed plain, then compiled and timed
            call()
            if trainer.tuning["xla"][mode]["decided"]:
                break
        report = trainer.tuning["xla"][mode]
        if train_xla:
            assert report["decided"] and report["reason"] == "measured", report
            assert report["early_trial"] and report["xla"] is test_xla, report
        else:
            assert not report["decided"] and not report["early_trial"], report
        assert trainer._state.functions[mode].jit_compile is (train_xla and test_xla)
    assert trainer._state.functions["train"].jit_compile is train_xla  # kept


def test_predict_before_any_choice_runs_the_plain_graph() -> None:
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse")
    trainer.predict(X[:64], batch_size=8, verbose=0)
    assert trainer._state.functions["predict"].jit_compile is False


def test_explicit_jit_compile_is_obeyed_whatever_the_clock() -> None:
    for jit in (True, False):
        trainer, _ = _trainer({"plain": 1e-3, "xla": 1e-4 if not jit else 1e-2}, jit_compile=jit)
        trainer.fit(X, Y, batch_size=4, epochs=2, verbose=0)
        function = trainer._state.functions["train"]
        assert function.jit_compile is jit and function.xla_choice is None


class NumpyDouble(keras.layers.Layer):
    """A layer XLA cannot compile (``numpy_function`` has no XLA kernel)."""

    def compute_output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def call(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.numpy_function(lambda a: a * 2, [x], tf.float32, stateful=False)
        y.set_shape(x.shape)
        return y


def test_auto_jit_keeps_the_plain_graph_quietly_when_xla_cannot_compile() -> None:
    inputs = keras.Input((4,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(NumpyDouble()(inputs))))
    trainer.compile(optimizer="sgd", loss="mse")
    clock = FakeClock(trainer, plain=1e-3, xla=1e-5)
    trainer._state.fused = ExecutionSize("auto", clock=clock)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" only tried XLA: no warning
        history = trainer.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    function = trainer._state.functions["train"]
    assert function.jit_compile is False
    assert trainer.tuning["xla"]["train"]["reason"] == "XLA cannot compile the step"


def test_small_epochs_settle_at_whole_epochs_and_still_decide_xla() -> None:
    # 100 batches per epoch: the size outgrows the epoch, where calls shorter than the size
    # were never timed (the tuner waited for ever, and "auto" never decided).
    trainer, _ = _trainer({"plain": 1e-4, "xla": 0.5e-4}, jit_compile="auto")
    trainer.fit(X[:400], Y[:400], batch_size=4, epochs=10, verbose=0)
    tuning = trainer.tuning
    assert tuning["steps_per_execution"]["settled"]
    assert tuning["steps_per_execution"]["steps_per_execution"] == 100
    assert tuning["xla"]["train"]["xla"] is True and tuning["xla"]["train"]["decided"]


# ------------------------------------------------- the last, shorter batch under XLA (auto)


@settings(max_examples=15, deadline=None)
@given(
    rows=st.integers(700, 1300),
    batch=st.integers(2, 4),
    xla_faster=st.booleans(),
    chunk=st.sampled_from([None, 1, 3, 64]),
)
def test_under_auto_xla_runs_only_full_batches(
    rows: int, batch: int, xla_faster: bool, chunk: int | None
) -> None:
    # XLA compiles once per batch shape: the epoch's last, shorter batch runs the plain
    # graph once XLA is on, so XLA never meets a second shape. Each variant counts the rows
    # and the short batches it trains on (XLA's calls the plain one: the plain counters
    # count every row, once); every row still trains once an epoch. Rows are
    # gathered ``chunk`` batches at a time (None: a batch at a time), whatever the calls'
    # lengths: only a call's last step chooses between the two steps.
    ran = {jit: tf.Variable(0, dtype=tf.int64) for jit in (False, True)}
    short = {jit: tf.Variable(0, dtype=tf.int64) for jit in (False, True)}
    original = steps_module._compiled

    def counting(step: Callable[[object], object], jit_compile: bool) -> object:
        def counted(data: object) -> object:
            size = tf.cast(tf.shape(tf.nest.flatten(data)[0])[0], tf.int64)
            ran[jit_compile].assign_add(size)
            short[jit_compile].assign_add(tf.cast(size < batch, tf.int64))
            return step(data)

        return original(counted, jit_compile)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(steps_module, "_compiled", counting)
        if chunk is None:
            patch.setattr(ResidentRows, "chunk_functions", lambda self: None)
        else:  # a row: 4 features and 1 target, float32
            patch.setattr(row_chunks, "CHUNK_BYTES", chunk * batch * 5 * 4)
        clock = {"plain": 1e-3, "xla": 0.5e-3 if xla_faster else 2e-3}
        trainer, _ = _trainer(clock, jit_compile="auto")
        trainer.fit(X[:rows], Y[:rows], batch_size=batch, epochs=4, verbose=0)
    assert int(ran[False].numpy()) == 4 * rows
    assert int(ran[True].numpy()) > 0  # XLA was tried (175-650 steps an epoch)
    assert int(short[True].numpy()) == 0  # XLA met one shape
    assert int(short[False].numpy()) == (4 if rows % batch else 0)
    report = trainer.tuning["xla"]["train"]
    assert report["reason"] in ("measured", "measuring"), report
    if report["decided"]:
        assert report["xla"] is xla_faster, report


@pytest.mark.parametrize(("xla_wall", "kept"), [(21e-3, False), (14e-3, True), (16e-3, True)])
def test_xla_less_cpu_but_longer_to_wait_for_is_not_kept(xla_wall: float, kept: bool) -> None:
    # Modelled on the 512-position Conv1D: XLA 25 ms of CPU a step against the plain
    # graph's 31 (a close win on the CPU clock, so the plain graph is timed again), and a
    # wall time per step that decides.
    choice = XlaChoice()
    calls = [(31e-3, 16e-3)] * 2 + [(25e-3, xla_wall)] * 2 + [(31e-3, 16e-3)] * 2
    for cpu, wall in calls:
        assert choice.decided is None
        choice.record(10, 10 * cpu, False, 10, True, wall=10 * wall)
    assert choice.decided is kept and choice.reason == "measured"
    report = choice.report()
    assert report["xla_wall_per_step"] == pytest.approx(xla_wall)
    assert report["plain_wall_per_step"] == pytest.approx(16e-3)


def _batches() -> object:
    for i in range(0, 400, 20):
        yield X[i : i + 20], Y[i : i + 20]


@pytest.mark.parametrize(
    "route",
    ["arrays held", "arrays in blocks", "generator", "tf.data", "parquet streamed"],
)
def test_the_plain_graphs_first_call_is_seen_whichever_path_traces_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, route: str
) -> None:
    # Rows read in blocks trace their loop before the first call, held rows and datasets
    # inside it: either way that call is not timed, and its CPU seconds (the trace's
    # included) are the plain graph's first call that sets when XLA is tried.
    from fitpipe import limits

    if route in ("arrays in blocks", "parquet streamed"):
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
    trainer = fitpipe.Trainer(_model())
    trainer.compile(optimizer="sgd", loss="mse", jit_compile="auto")
    if route == "generator":
        trainer.fit(_batches(), steps_per_epoch=20, epochs=1, verbose=0)
    elif route == "tf.data":
        trainer.fit(tf.data.Dataset.from_tensor_slices((X, Y)).batch(20), verbose=0)
    elif route == "parquet streamed":
        columns = {f"x{i}": X[:400, i] for i in range(4)} | {"y": Y[:400, 0]}
        pq.write_table(pa.table(columns), tmp_path / "rows.parquet", row_group_size=100)
        schema = fitpipe.Schema(list(columns)[:4], "y")
        trainer.fit(str(tmp_path / "rows.parquet"), schema=schema, batch_size=20, verbose=0)
    else:
        trainer.fit(X, Y, batch_size=20, verbose=0)
    report = trainer.tuning
    assert report["steps_per_execution"]["traced_calls"] >= 1, report
    first = report["xla"]["train"]["plain_first_call_seconds"]
    assert first is not None and first > 0, report
    assert report["xla"]["train"]["trial_after_seconds"] <= XlaChoice.TRIAL_AFTER_TRACES * first


@pytest.mark.parametrize(("xla", "kept"), [(0.5e-3, True), (2e-3, False), (1.2e-3, False)])
@pytest.mark.parametrize(("batch_size", "epochs"), [(8, 2), (30, 3)])
def test_a_fit_whose_xla_trial_runs_mid_epoch_trains_as_keras(
    xla: float, kept: bool, batch_size: int, epochs: int
) -> None:
    # The trial switches the step from the plain graph to XLA (and back, when XLA loses or
    # the plain graph is timed again) between calls of an epoch: the steps, their batches
    # and the optimizer's state go on as in Keras' own `fit` of the same model.
    trainer, clock = _trainer({"plain": 1e-3, "xla": xla}, jit_compile="auto")
    _fits_as_keras(trainer, X, Y, batch_size=batch_size, epochs=epochs)
    report = trainer.tuning["xla"]["train"]
    assert report["xla"] is kept, report  # decided, or the plain graph timed again
    assert report["decided"] or report["plain_rechecked"], report
    assert any(compiled for compiled, _ in clock.sizes), clock.sizes  # XLA ran some calls
