"""``jit_compile="auto"`` decides by rule where timing would change the numbers.

XLA draws other random numbers from the same seed than the plain graph does, so a step that
draws them (Dropout, noise, augmentation, a layer's own ``SeedGenerator``) ran to different
weights by which variant the timing chose. Seeded, such a step runs what Keras' ``"auto"`` resolves
to (plain on the host, XLA on an accelerator); op determinism turns XLA off, as in Keras.
The tuner's clock is :class:`FakeClock` (XLA 3x faster, trial due at once): nothing timed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf
from fake_clock import FakeClock

import fitpipe
from fitpipe.errors import FitpipeWarning
from fitpipe.training import remembered, xla_rules
from fitpipe.training.tuning import ExecutionSize, XlaChoice

X = np.random.default_rng(0).standard_normal((2000, 4)).astype("float32")
Y = X[:, :1] * 2.0


class _OwnNoise(keras.layers.Layer):
    """A layer drawing from a generator of its own, in training only."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = keras.random.SeedGenerator(3)

    def call(self, x: Any, training: bool = False) -> Any:
        if training:
            return x + keras.random.normal(keras.ops.shape(x), seed=self.generator) * 0.1
        return x


def _recurrent(dropout: float) -> Callable[[], keras.Sequential]:
    """An LSTM over the 8 features as 2 time steps; it tracks a seed generator either way."""
    return lambda: keras.Sequential(
        [keras.layers.Reshape((2, 4)), keras.layers.LSTM(4, dropout=dropout)]
    )


RANDOM_LAYERS: dict[str, Callable[[], Any]] = {
    "Dropout": lambda: keras.layers.Dropout(0.3),
    "GaussianNoise": lambda: keras.layers.GaussianNoise(0.2),
    "GaussianDropout": lambda: keras.layers.GaussianDropout(0.2),
    "AlphaDropout": lambda: keras.layers.AlphaDropout(0.2),
    "own SeedGenerator": _OwnNoise,
    "LSTM dropout": _recurrent(0.2),
}


@pytest.fixture(autouse=True)
def trial_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """XLA tried as soon as can be, nothing remembered from other tests."""
    monkeypatch.setenv(remembered.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(ExecutionSize, "CALL_SECONDS", ExecutionSize.TARGET_SECONDS)
    monkeypatch.setattr(XlaChoice, "TRIAL_AFTER_SECONDS", 0.0)


def _model(middle: Any | None) -> keras.Model:
    """Dense(8), the ``middle`` layer made by this factory (seeded alike), Dense(1)."""
    keras.utils.set_random_seed(7)
    layers = [keras.Input((4,)), keras.layers.Dense(8)]
    layers += [middle()] if middle is not None else []
    return keras.Sequential([*layers, keras.layers.Dense(1)])


def _fit(
    model: keras.Model, jit_compile: Any, seeded: bool = True
) -> tuple[fitpipe.Trainer, FakeClock]:
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    clock = FakeClock(trainer, plain=3e-3, xla=1e-3, trace_seconds=0.5)
    trainer._state.fused = ExecutionSize("auto", clock=clock)
    keras.utils.set_random_seed(11)
    if not seeded:
        tf.random.set_seed(None)  # TensorFlow's global seed unset
    trainer.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return trainer, clock


def _report(trainer: fitpipe.Trainer) -> dict[str, Any]:
    choice = trainer._state.functions["train"].xla_choice
    assert choice is not None
    return choice.report()


@pytest.mark.parametrize("middle", [None, _recurrent(0.0)], ids=["dense", "LSTM no dropout"])
def test_an_unseeded_step_is_timed_and_xla_kept(middle: Any) -> None:
    """The control: the same clock makes XLA win where no rule applies."""
    trainer, clock = _fit(_model(middle), "auto", seeded=False)
    assert any(xla for xla, _, _, _ in clock.calls)
    assert _report(trainer)["reason"] == "measured" and _report(trainer)["xla"]


@pytest.mark.parametrize("middle", [None, _recurrent(0.0)], ids=["dense", "LSTM no dropout"])
def test_a_seeded_step_drawing_nothing_runs_keras_choice_untimed(middle: Any) -> None:
    """XLA rounds otherwise than the plain graph: a seeded run timed did not repeat.

    (An MLP's last loss read 0.24032654 with XLA, 0.24032652 without; the trial, due by the
    time spent, came at other epochs in other processes, and remembered choices moved it.)
    """
    trainer, clock = _fit(_model(middle), "auto")
    assert not any(xla for xla, _, _, _ in clock.calls), clock.calls
    report = _report(trainer)
    assert report["reason"] == xla_rules.SEEDED and report["decided"] and not report["xla"]
    plain, _ = _fit(_model(middle), False)
    for ours, twin in zip(trainer.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, twin)


@pytest.mark.parametrize("kind", sorted(RANDOM_LAYERS))
def test_a_step_drawing_random_numbers_runs_keras_choice_untimed(kind: str) -> None:
    trainer, clock = _fit(_model(RANDOM_LAYERS[kind]), "auto")
    assert not any(xla for xla, _, _, _ in clock.calls), clock.calls  # XLA never compiled
    report = _report(trainer)
    assert report["reason"] == xla_rules.RANDOM and report["decided"] and not report["xla"]
    plain, _ = _fit(_model(RANDOM_LAYERS[kind]), False)
    for ours, twin in zip(trainer.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, twin)  # the plain graph's numbers, bit for bit


def test_an_unseeded_random_step_is_timed_as_any() -> None:
    """Unseeded, no run repeats whatever the variant: the faster one is measured."""
    trainer, clock = _fit(_model(RANDOM_LAYERS["Dropout"]), "auto", seeded=False)
    assert any(xla for xla, _, _, _ in clock.calls)
    assert _report(trainer)["reason"] == "measured" and _report(trainer)["xla"]


def test_the_global_seed_is_read_without_a_draw() -> None:
    tf.random.set_seed(None)
    assert xla_rules.global_seed() is None
    tf.random.set_seed(5)
    first = float(tf.random.uniform([]))
    assert xla_rules.global_seed() == 5
    second = float(tf.random.uniform([]))
    tf.random.set_seed(5)
    assert [float(tf.random.uniform([])), float(tf.random.uniform([]))] == [first, second]


def test_a_random_step_on_an_accelerator_takes_xla_as_keras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(xla_rules.placement, "step_device", lambda: "/device:GPU:0")
    tf.random.set_seed(1)
    random, plain = frozenset({"StatelessRandomUniformV2", "MatMul"}), frozenset({"MatMul"})
    choice = xla_rules.first_choice(composite=False, xla_fails=False)
    xla_rules.by_ops(choice, random)
    assert choice.decided is True and choice.variant and choice.reason == xla_rules.RANDOM
    choice = xla_rules.first_choice(composite=False, xla_fails=False)
    xla_rules.by_ops(choice, plain)
    assert choice.decided is True and choice.reason == xla_rules.SEEDED
    tf.random.set_seed(None)
    choice = xla_rules.first_choice(composite=False, xla_fails=False)
    xla_rules.by_ops(choice, plain)
    assert choice.decided is None  # unseeded: timed


def test_op_determinism_keeps_the_plain_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xla_rules, "op_determinism", lambda: True)
    trainer, clock = _fit(_model(None), "auto")
    assert not any(xla for xla, _, _, _ in clock.calls), clock.calls
    assert _report(trainer)["reason"].startswith("op determinism")


def test_explicit_jit_compile_is_kept_for_a_random_step() -> None:
    trainer, _ = _fit(_model(lambda: keras.layers.Dropout(0.3)), True)
    assert trainer._state.functions["train"].jit_compile is True


def test_op_determinism_is_read_from_tensorflow() -> None:
    script = textwrap.dedent(
        """
        import tensorflow as tf
        from fitpipe.training.xla_rules import op_determinism
        before = op_determinism()
        tf.config.experimental.enable_op_determinism()
        print(before, op_determinism())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.split()[-2:] == ["False", "True"], out.stderr[-2000:]


class _RowSums(keras.layers.Layer):
    """Each ragged row's sum, as one float feature."""

    def call(self, rows: Any) -> Any:
        return tf.cast(tf.reduce_sum(rows, axis=1, keepdims=True), "float32")

    def compute_output_shape(self, shape: Any) -> Any:
        return (shape[0], 1)


def _sparse_model() -> keras.Model:
    return keras.Sequential([keras.Input((5,), sparse=True), keras.layers.Dense(1)])


def _ragged_model() -> keras.Model:
    layers = [keras.Input((None,), ragged=True, dtype="int64"), _RowSums(), keras.layers.Dense(1)]
    return keras.Sequential(layers)


ROWS = np.eye(20, 5, dtype="float32")
COMPOSITE: dict[str, tuple[Callable[[], keras.Model], Callable[[], Any]]] = {
    "scipy sparse": (_sparse_model, lambda: scipy.sparse.csr_matrix(ROWS)),
    "tf.SparseTensor": (_sparse_model, lambda: tf.sparse.from_dense(ROWS)),
    "ragged": (
        _ragged_model,
        lambda: tf.RaggedTensor.from_row_lengths(np.arange(30, dtype="int64"), [1, 2] * 10),
    ),
}
COMPOSITE_CALLS: dict[str, Callable[[fitpipe.Trainer, Any, Any], Any]] = {
    "fit": lambda t, x, y: t.fit(x, y, batch_size=8, epochs=2, verbose=0),
    "fit tf.data": lambda t, x, y: t.fit(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=2, verbose=0
    ),
    "evaluate": lambda t, x, y: t.evaluate(x, y, batch_size=8, verbose=0),
    "predict": lambda t, x, y: t.predict(x, batch_size=8, verbose=0),
    "train_on_batch": lambda t, x, y: [t.train_on_batch(x, y) for _ in range(2)],
    "predict_on_batch": lambda t, x, y: t.predict_on_batch(x),
}


@pytest.mark.parametrize("jit_compile", [True, "auto", False])
@pytest.mark.parametrize("call", sorted(COMPOSITE_CALLS))
@pytest.mark.parametrize("kind", sorted(COMPOSITE))
def test_sparse_or_ragged_batches_run_the_plain_graph_with_a_warning_if_xla_was_asked(
    kind: str, call: str, jit_compile: Any
) -> None:
    # Before, `jit_compile=True` ran them on the plain graph silently, while a step XLA
    # cannot compile otherwise (string inputs) was said; "auto" only tried XLA: silent.
    if kind == "scipy sparse" and call == "fit tf.data":
        pytest.skip("tf.data takes no SciPy matrix")
    build, data = COMPOSITE[kind]
    trainer = fitpipe.Trainer(build())
    trainer.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        COMPOSITE_CALLS[call](trainer, data(), np.ones((20, 1), "float32"))
    said = [str(w.message) for w in caught if issubclass(w.category, FitpipeWarning)]
    if jit_compile is True:
        caller = call.split()[0]
        expected = f"`{caller}` cannot compile the model with XLA for sparse or ragged batches"
        assert len(said) == 1 and said[0].startswith(expected), said
        assert "runs the plain TensorFlow graph instead" in said[0]
    else:
        assert said == []
    assert not any(f.jit_compile for f in trainer._state.functions.values())
