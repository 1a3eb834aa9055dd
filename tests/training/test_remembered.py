"""``jit_compile="auto"`` remembers what it measured, across processes (``training.remembered``).

The in-process scenarios use the tuners' fake clock (no timing is asserted): a first trainer
measures and stores a choice, a second trainer of a twin model (as the next process would
build it) reads it. The key's stability across processes needs real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from fake_clock import FakeClock
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.training import remembered, xla_rules
from fitpipe.training.remembered import Remembered
from fitpipe.training.tuning import ExecutionSize, XlaChoice

X = np.random.default_rng(0).standard_normal((4000, 4)).astype("float32")
Y = X[:, :1] * 2.0


@pytest.fixture(autouse=True)
def unseeded_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """XLA timed as in an unseeded run (the models are seeded only for equal weights).

    A seeded run takes Keras' choice untimed (``xla_rules``); these tests are about timing.
    """
    monkeypatch.setattr(xla_rules, "global_seed", lambda: None)


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder for what is remembered; sizes settled at 50 ms calls (as test_tuner)."""
    monkeypatch.setenv(remembered.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(ExecutionSize, "CALL_SECONDS", ExecutionSize.TARGET_SECONDS)
    return tmp_path


def _trainer(units: int = 3, plain: float = 1e-3, xla: float = 1e-3) -> tuple[Any, FakeClock]:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", jit_compile="auto")
    clock = FakeClock(trainer, plain=plain, xla=xla, trace_seconds=0.5)
    trainer._state.fused = ExecutionSize("auto", clock=clock)
    return trainer, clock


def _choice(trainer: fitpipe.Trainer) -> XlaChoice:
    choice = trainer._state.functions["train"].xla_choice
    assert choice is not None
    return choice


def _stored(folder: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in folder.glob("tf-*/choices/*.json")]


def _measure(monkeypatch: pytest.MonkeyPatch, plain: float, xla: float) -> XlaChoice:
    """A first process: XLA tried at once, both variants timed, the choice stored."""
    with monkeypatch.context() as patch:
        patch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)
        trainer, _ = _trainer(plain=plain, xla=xla)
        trainer.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    choice = _choice(trainer)
    assert choice.reason == "measured" and choice.decided is (xla < plain)
    return choice


@pytest.fixture
def no_trial_unless_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs far too short for a trial by the usual rule (see ``XlaChoice``)."""
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 1e9)
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_TRACES", 1e9)


def test_a_plain_graph_measured_faster_is_never_compiled_with_xla_again(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    first = _measure(monkeypatch, plain=1e-3, xla=2e-3)
    assert _stored(folder) == [
        {
            "xla": False,
            "plain_per_step": first.per_step[False],
            "xla_per_step": first.per_step[True],
            "xla_first_call": first.first_calls.get(True),
        }
    ]
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)  # would try XLA at once
    trainer, clock = _trainer(plain=1e-3, xla=2e-3)
    trainer.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert not any(xla for xla, _, _, _ in clock.calls), clock.calls  # never compiled
    assert _choice(trainer).report()["reason"] == "remembered"
    assert _choice(trainer).report()["remembered"] == "plain"


@pytest.mark.usefixtures("no_trial_unless_remembered")
def test_xla_measured_faster_is_tried_in_a_run_that_wins_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _measure(monkeypatch, plain=1e-3, xla=4e-4)
    trainer, clock = _trainer(plain=1e-3, xla=4e-4)
    trainer.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert any(xla for xla, _, _, _ in clock.calls), clock.calls
    report = _choice(trainer).report()
    assert report["remembered"] == "xla" and report["xla"] and report["reason"] == "measured"
    # Another model (other shapes) remembers nothing: no trial in a run this short.
    other, clock = _trainer(units=5, plain=1e-3, xla=4e-4)
    other.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert not any(xla for xla, _, _, _ in clock.calls), clock.calls
    assert _choice(other).report()["remembered"] is None


@pytest.mark.usefixtures("no_trial_unless_remembered")
def test_xla_remembered_faster_waits_when_the_run_is_too_short_to_pay_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _measure(monkeypatch, plain=1e-3, xla=4e-4)  # its XLA compile charged 0.5 s
    trainer, clock = _trainer(plain=1e-3, xla=4e-4)
    trainer.fit(X[:800], Y[:800], batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert not any(xla for xla, _, _, _ in clock.calls), clock.calls  # 0.12 s to win back
    assert _choice(trainer).report()["remembered"] == "xla"


def test_nothing_is_kept_when_the_folder_is_off(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    monkeypatch.setenv(remembered.CACHE_ENV, "off")
    assert remembered.cache_folder() is None
    _measure(monkeypatch, plain=1e-3, xla=2e-3)
    assert not list(folder.iterdir())


@pytest.mark.parametrize("text", ["{", "[]", '{"xla": true}', '{"xla": 1, "plain_per_step": "x"}'])
def test_an_unreadable_memory_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, folder: Path, text: str
) -> None:
    _measure(monkeypatch, plain=1e-3, xla=2e-3)
    for path in folder.glob("tf-*/choices/*.json"):
        path.write_text(text)
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)
    trainer, clock = _trainer(plain=1e-3, xla=2e-3)
    trainer.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert any(xla for xla, _, _, _ in clock.calls)  # tried again, as with no memory
    assert _choice(trainer).report()["remembered"] is None


@given(
    plain=st.floats(1e-5, 1e-1),
    gain=st.floats(1.0, 10.0),
    compile_seconds=st.floats(0.0, 100.0),
    ahead=st.integers(0, 10**6),
)
def test_xla_pays_back_when_the_steps_ahead_save_its_compilation(
    plain: float, gain: float, compile_seconds: float, ahead: int
) -> None:
    memory = Remembered(True, 2e-3, 2e-3 / gain, compile_seconds)
    saved = ahead * plain * (1 - 1 / gain)
    assert memory.pays_back(plain, ahead) is (saved >= compile_seconds)
    assert memory.pays_back(plain, None)  # an input of unknown length: tried
    assert not Remembered(False, 1e-3, 2e-3, 1.0).pays_back(plain, ahead)


def _key(units: int = 3, batch: int = 4) -> str:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    spec = (tf.TensorSpec((batch, 4), tf.float32), tf.TensorSpec((batch, 1), tf.float32))
    concrete = tf.function(model.train_step, autograph=False).get_concrete_function(spec)
    return remembered.step_key(concrete, None)


def test_a_steps_key_ignores_what_was_built_before_it_but_not_its_shapes() -> None:
    first = _key()
    keras.layers.Dense(7)  # counters move: layer names and function numbers
    tf.function(lambda v: v + 1)(tf.constant(1.0))
    assert _key() == first
    assert len({first, _key(units=5), _key(batch=8)}) == 3


_PROCESS = """
import keras, tensorflow as tf
from fitpipe.training import remembered
for units in range({shift}):
    keras.layers.Dense(units + 1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
model.compile("sgd", "mse")
spec = (tf.TensorSpec((4, 4), tf.float32), tf.TensorSpec((4, 1), tf.float32))
concrete = tf.function(model.train_step, autograph=False).get_concrete_function(spec)
print(remembered.step_key(concrete, None))
"""


@pytest.mark.subprocess
def test_processes_agree_on_a_steps_key() -> None:
    keys = set()
    for shift in (0, 3):
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_PROCESS.format(shift=shift))],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            check=True,
        )
        keys.add(done.stdout.strip().splitlines()[-1])
    assert len(keys) == 1


def test_a_step_whose_key_cannot_be_made_is_measured_and_not_kept(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    def unreadable(concrete: object, device: object) -> str:
        raise RuntimeError("no graph")

    monkeypatch.setattr(remembered, "step_key", unreadable)
    choice = _measure(monkeypatch, plain=1e-3, xla=2e-3)
    assert choice.key == "" and choice.report()["remembered"] is None
    assert not list(folder.glob("tf-*/choices/*"))
