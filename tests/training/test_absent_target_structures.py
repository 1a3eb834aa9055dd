"""Absent (None) targets and weights in every structure of ``loss``, ``metrics``, ``y`` and
``sample_weight``, against Keras.

Keras' compiled loss and metrics read each target (and weight) by the position or key of its
output, a None one for an output that needs none simply not read. fitpipe leaves them out
before the data is adapted and puts them back where they were: a differential test draws
the outputs (a list or a dict of 2 to 4), which have a loss and which metrics, how ``loss``,
``metrics``, ``y`` and ``sample_weight`` are given and which of their entries are None, and
compares fitpipe with a Keras twin. Where an output with metrics gets None as its target
(Keras fails in the metric's update), fitpipe refuses it before any step, naming the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_histories_close, assert_weights_close

RNG = np.random.default_rng(0)
ROWS, BATCH = 16, 8
X = RNG.normal(size=(ROWS, 3)).astype("float32")


@dataclass(frozen=True)
class Case:
    """One drawn structure: the outputs, how they are compiled, and the data given."""

    widths: tuple[int, ...]
    dict_outputs: bool
    losses: tuple[bool, ...]
    metrics: tuple[bool, ...]
    loss_form: str
    metrics_form: str
    y_form: str
    absent: tuple[bool, ...]
    weights: str
    absent_weights: tuple[bool, ...]

    @property
    def names(self) -> list[str]:
        return [f"o{i}" for i in range(len(self.widths))]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(2, 4))
    losses = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    absent = tuple(not has and draw(st.booleans()) for has in losses)
    dict_outputs = draw(st.booleans())  # Keras reads a dict of outputs by name only
    by_position, also = ([], []) if dict_outputs else (["list"], ["flat"])
    return Case(
        widths=tuple(draw(st.lists(st.sampled_from([1, 2]), min_size=n, max_size=n))),
        dict_outputs=dict_outputs,
        losses=tuple(losses),
        metrics=tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n))),
        loss_form=draw(
            st.sampled_from([*by_position, "dict", *(["single"] if all(losses) else [])])
        ),
        metrics_form=draw(st.sampled_from([*by_position, *also, "dict"])),
        y_form=draw(st.sampled_from([*by_position, *(["tuple"] if by_position else []), "dict"])),
        absent=absent,
        weights=draw(st.sampled_from(["none", "nested", "one"])),
        absent_weights=tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n))),
    )


def _model(case: Case) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    layers = [
        keras.layers.Dense(w, name=name) for w, name in zip(case.widths, case.names, strict=True)
    ]
    outputs = [layer(inputs) for layer in layers]
    if case.dict_outputs:
        return keras.Model(inputs, dict(zip(case.names, outputs, strict=True)))
    return keras.Model(inputs, outputs)


def _compiled(case: Case) -> dict[str, Any]:
    losses = ["mse" if has else None for has in case.losses]
    loss: Any = {
        "single": "mse",
        "list": losses,
        "dict": dict(zip(case.names, losses, strict=True)),
    }
    per_output = [["mae"] if has else [] for has in case.metrics]
    metrics: Any = {
        "list": per_output,
        "flat": [m[0] if m else None for m in per_output],  # one metric (or None) per output
        "dict": {name: m for name, m in zip(case.names, per_output, strict=True) if m},
    }[case.metrics_form]
    return {"optimizer": "sgd", "loss": loss[case.loss_form], "metrics": metrics}


def _data(case: Case) -> tuple[Any, Any]:
    targets = [
        None if gone else RNG.normal(size=(ROWS, w)).astype("float32")
        for w, gone in zip(case.widths, case.absent, strict=True)
    ]
    weights = [
        None if gone or skip else RNG.uniform(0.5, 2, size=(ROWS,)).astype("float32")
        for gone, skip in zip(case.absent, case.absent_weights, strict=True)
    ]
    forms: dict[str, Any] = {
        "list": list,
        "tuple": tuple,
        "dict": lambda v: dict(zip(case.names, v, strict=True)),
    }
    nested = forms[case.y_form]  # Keras takes weights per output nested as `y`, or one array
    sw = {"none": None, "nested": nested(weights), "one": RNG.uniform(0.5, 2, size=(ROWS,))}
    return nested(targets), sw[case.weights]


def _run(model: keras.Model | fitpipe.Trainer, y: Any, sw: Any) -> keras.callbacks.History:
    return model.fit(X, y, sample_weight=sw, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)


@settings(
    max_examples=min(8, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=cases())
def test_absent_targets_line_up_as_in_keras(case: Case) -> None:
    y, sw = _data(case)
    reference, twin = _model(case), _model(case)
    twin.set_weights(reference.get_weights())
    reference.compile(**_compiled(case))
    twin.compile(**_compiled(case))
    trainer = fitpipe.Trainer(twin)
    if any(gone and measured for gone, measured in zip(case.absent, case.metrics, strict=True)):
        with pytest.raises(DataMismatchError, match=r"None as the target of output 'o\d'.*metrics"):
            trainer.fit(X, y, sample_weight=sw, batch_size=BATCH, verbose=0)
        return
    try:
        expected = _run(reference, y, sw)
    except (ValueError, TypeError, KeyError, IndexError):
        # Keras fails on some forms with no absent target at all (a dict `y` for a list of
        # outputs, `loss=[None, "mse"]`: "KeyError: 1"), which fitpipe trains: not compared
        reject()
    got = _run(trainer, y, sw)
    assert_histories_close(expected, got)
    assert_weights_close(reference, twin)


def _three() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    layers = [keras.layers.Dense(w, name=n) for w, n in ((3, "a"), (1, "b"), (2, "c"))]
    return keras.Model(inputs, [layer(inputs) for layer in layers])


YA = RNG.integers(0, 3, size=(ROWS,))
YC = RNG.normal(size=(ROWS, 2)).astype("float32")
SW = RNG.uniform(0.5, 2, size=(ROWS,)).astype("float32")
LOSSES: dict[str, Any] = {
    "dict": {"a": "sparse_categorical_crossentropy", "b": None, "c": "mse"},
    "list": ["sparse_categorical_crossentropy", None, "mse"],
}


@pytest.mark.parametrize(("loss", "y_form"), [("dict", "list"), ("list", "list"), ("list", "dict")])
def test_every_entry_point_reads_a_none_target_where_keras_does(loss: str, y_form: str) -> None:
    y: Any = [YA, None, YC]
    sw: Any = [SW, None, SW]
    if y_form == "dict":  # by name, loss and metrics by position (Keras weighs none of it)
        y, sw = dict(zip("abc", y, strict=True)), None
    compiled = {"optimizer": "sgd", "loss": LOSSES[loss], "metrics": [["accuracy"], [], ["mae"]]}
    reference, twin = _three(), _three()
    reference.compile(**compiled)
    twin.compile(**compiled)
    trainer = fitpipe.Trainer(twin)
    options = {"batch_size": BATCH, "shuffle": False, "verbose": 0, "validation_data": (X, y)}
    expected = reference.fit(X, y, sample_weight=sw, **options)
    assert_histories_close(expected, trainer.fit(X, y, sample_weight=sw, **options))
    assert "val_c_mae" in expected.history
    assert_weights_close(reference, twin)
    for name in ("train_on_batch", "test_on_batch"):
        got = getattr(trainer, name)(X, y, sample_weight=sw, return_dict=True)
        assert getattr(reference, name)(X, y, sample_weight=sw, return_dict=True) == (
            pytest.approx(got, rel=1e-4)
        )
    scores = reference.evaluate(X, y, verbose=0, return_dict=True)
    assert scores == pytest.approx(trainer.evaluate(X, y, verbose=0, return_dict=True), rel=1e-4)


def _batches() -> Any:
    for i in range(0, ROWS, BATCH):
        yield X[i : i + BATCH], (YA[i : i + BATCH], None, YC[i : i + BATCH])


@pytest.mark.parametrize("form", ["arrays", "dict", "generator"])
def test_a_none_target_of_an_output_with_metrics_is_refused_clearly(form: str) -> None:
    compiled = {"optimizer": "sgd", "loss": LOSSES["list"], "metrics": [[], ["mae"], ["mae"]]}
    reference = _three()
    reference.compile(**compiled)
    with pytest.raises((AttributeError, ValueError)):  # Keras fails in the metric's update
        reference.fit(X, [YA, None, YC], verbose=0)
    trainer = fitpipe.Trainer(_three())
    trainer.compile(**compiled)
    data: dict[str, Any] = {
        "arrays": {"x": X, "y": [YA, None, YC]},
        "dict": {"x": X, "y": {"a": YA, "b": None, "c": YC}},
        "generator": {"x": _batches()},
    }[form]
    with pytest.raises(
        DataMismatchError, match=r"None as the target of output 'b', which is compiled with metrics"
    ):
        trainer.fit(**data, verbose=0)


def test_a_nested_output_structure_with_a_lossless_leaf_trains_as_in_keras() -> None:
    """A dict ``y`` keyed by the structure's keys, not by output names, is left as given.

    (Keras' own ``test_functional_deeply_nested_outputs_struct_losses``, smaller.)
    """

    def build() -> keras.Model:
        inputs = keras.Input((3,))
        dense = [keras.layers.Dense(1, name=name) for name in ("y1", "y2", "y3")]
        return keras.Model(
            inputs, {"a": (dense[0](inputs), dense[1](inputs)), "d": dense[2](inputs)}
        )

    keras.utils.set_random_seed(3)
    ref, twin = build(), build()
    twin.set_weights(ref.get_weights())
    loss = {"a": (None, "mse"), "d": "mse"}
    for model in (ref, twin):
        model.compile("sgd", loss)
    y = {"a": (X[:, :1], X[:, 1:2]), "d": X[:, 2:]}
    kwargs: dict[str, Any] = {"batch_size": BATCH, "epochs": 2, "shuffle": False, "verbose": 0}
    want = ref.fit(X, y, **kwargs)
    got = fitpipe.Trainer(twin).fit(X, y, **kwargs)
    assert_histories_close(got, want)
    assert_weights_close(twin, ref)
