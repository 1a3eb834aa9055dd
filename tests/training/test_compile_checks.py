"""``compile`` refuses what its documentation forbids and Keras takes silently.

Flags that are documented as bools (``jit_compile`` also ``"auto"``): Keras takes any value,
and ``jit_compile="no"`` turned XLA on. Per-output arguments that match no output of a model
whose outputs are known and flat: ``loss_weights={"nope": 10.0}`` weighed the only loss by
10, a list of two losses for one output summed both.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

import fitpipe

X = np.linspace(0.0, 1.0, 32, dtype="float32").reshape(8, 4)
Y = np.linspace(0.0, 1.0, 8, dtype="float32").reshape(8, 1)


def _sequential(cls: Any = keras.Sequential) -> keras.Model:
    return cls([keras.Input((4,)), keras.layers.Dense(1, name="out")])


def _functional(structure: str) -> keras.Model:
    """One input, outputs ``a`` and ``b`` (layer names) in the given structure."""
    inp = keras.Input((4,))
    a = keras.layers.Dense(1, name="a")(inp)
    b = keras.layers.Dense(1, name="b")(inp)
    outputs: Any = {
        "tensor": a,
        "list1": [a],
        "list": [a, b],
        "tuple": (a, b),
        "dict": {"first": a, "second": b},
        "nested": [a, [b]],
    }[structure]
    return keras.Model(inp, outputs)


# ------------------------------------------------------------------------------ flags

BAD_JIT = ["no", "false", "True", "AUTO", 2, 0, None, 1.0]
BAD_BOOL = ["no", "False", 1, 0, None, 1.0]


@pytest.mark.parametrize("jit_compile", BAD_JIT, ids=repr)
def test_jit_compile_that_is_no_bool_nor_auto_is_refused(jit_compile: Any) -> None:
    trainer = fitpipe.Trainer(_sequential())
    with pytest.raises(
        TypeError,
        match=r'^`compile` got an invalid `jit_compile`\. `jit_compile` is True, False, or "auto"'
        r'.*Pass a bool or "auto"\. Received: jit_compile=.* \(of type '
        + type(jit_compile).__name__,
    ) as raised:
        trainer.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    assert isinstance(raised.value, fitpipe.errors.FitpipeTypeError)
    assert not trainer.model.compiled


@pytest.mark.parametrize("name", ["run_eagerly", "auto_scale_loss"])
@pytest.mark.parametrize("value", BAD_BOOL, ids=repr)
def test_bool_flags_refuse_other_values(name: str, value: Any) -> None:
    trainer = fitpipe.Trainer(_sequential())
    with pytest.raises(
        TypeError,
        match=rf"^`compile` got a non-boolean `{name}`\. `{name}` is True or False\. "
        rf"Pass a bool\. Received: {name}=.* \(of type {type(value).__name__}\)",
    ):
        trainer.compile(optimizer="sgd", loss="mse", **{name: value})


@pytest.mark.parametrize("cls", [fitpipe.Sequential, keras.Sequential])
def test_fitpipe_models_compile_checks_the_flags_too(cls: Any) -> None:
    model = _sequential(cls)
    compile_ = model.compile if cls is fitpipe.Sequential else fitpipe.Trainer(model).compile
    with pytest.raises(TypeError, match="got an invalid `jit_compile`"):
        compile_(optimizer="sgd", loss="mse", jit_compile="no")


@pytest.mark.parametrize(
    "flags",
    [
        {"jit_compile": np.bool_(False), "run_eagerly": np.bool_(True)},
        {"jit_compile": "auto", "auto_scale_loss": np.bool_(False)},
        {"jit_compile": True, "run_eagerly": False, "auto_scale_loss": True},
    ],
    ids=["numpy-bools", "auto", "bools"],
)
def test_bools_numpy_bools_and_auto_are_taken(flags: dict[str, Any]) -> None:
    trainer = fitpipe.Trainer(_sequential())
    trainer.compile(optimizer="sgd", loss="mse", **flags)
    trainer.fit(X, Y, epochs=1, verbose=0)
    assert trainer.model.run_eagerly is bool(flags.get("run_eagerly", False))
    assert trainer.tuning["jit_compile"] == flags["jit_compile"]
    assert type(trainer.tuning["jit_compile"]) in (bool, str)


# ------------------------------------------------------------------ per-output arguments


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (_sequential, ["out"]),
        (lambda: _functional("tensor"), ["a"]),
        (lambda: _functional("list1"), ["a"]),
        (lambda: _functional("list"), ["a", "b"]),
        (lambda: _functional("tuple"), ["a", "b"]),
        (lambda: _functional("dict"), ["first", "second"]),
    ],
    ids=["sequential", "tensor", "list-of-one", "list", "tuple", "dict"],
)
@pytest.mark.parametrize("unknown", ["nope", "Out", 0])
def test_loss_weights_by_unknown_output_name_are_refused(
    build: Any, names: list[str], unknown: Any
) -> None:
    trainer = fitpipe.Trainer(build())
    weights = {**dict.fromkeys(names[1:], 1.0), unknown: 10.0}
    with pytest.raises(
        ValueError,
        match=r"^`compile` got `loss_weights` for outputs the model does not have: "
        + rf"\[{unknown!r}\]\. A dict of `loss_weights` is keyed by the model's output names: "
        + rf"{names!r}\.".replace("[", r"\[").replace("]", r"\]")
        + r".*Received: loss_weights=\{.*\} \(of type dict\)$",
    ) as raised:
        trainer.compile(optimizer="sgd", loss="mse", loss_weights=weights)
    assert isinstance(raised.value, fitpipe.errors.FitpipeValueError)


@pytest.mark.parametrize(
    ("build", "outputs"),
    [
        (_sequential, 1),
        (lambda: _functional("tensor"), 1),
        (lambda: _functional("list"), 2),
        (lambda: _functional("dict"), 2),
    ],
    ids=["sequential", "tensor", "list", "dict"],
)
@pytest.mark.parametrize("name", ["loss", "loss_weights"])
@pytest.mark.parametrize("extra", [1, 2, -1])
def test_lists_of_another_length_than_the_outputs_are_refused(
    build: Any, outputs: int, name: str, extra: int
) -> None:
    trainer = fitpipe.Trainer(build())
    count = outputs + extra
    value = ["mse"] * count if name == "loss" else (1.0,) * count
    kwargs = {"loss": "mse", name: value}
    with pytest.raises(
        ValueError,
        match=rf"^`compile` got a `{name}` {type(value).__name__} of {count} entries for a "
        rf"model of {outputs} outputs?\. A list of `{name}` has one entry per model output",
    ):
        trainer.compile(optimizer="sgd", **kwargs)


@pytest.mark.parametrize("name", ["metrics", "weighted_metrics"])
@pytest.mark.parametrize("build", [_sequential, lambda: _functional("tensor")])
def test_metrics_dict_by_unknown_name_is_refused_on_one_output(build: Any, name: str) -> None:
    trainer = fitpipe.Trainer(build())
    with pytest.raises(
        ValueError,
        match=rf"^`compile` got `{name}` for outputs the model does not have: \['nope'\]",
    ):
        trainer.compile(optimizer="sgd", loss="mse", **{name: {"nope": ["mae"]}})


def test_matching_per_output_arguments_are_taken() -> None:
    trainer = fitpipe.Trainer(_functional("list"))
    trainer.compile(
        optimizer="sgd",
        loss=["mse", "mae"],
        loss_weights={"a": 1.0, "b": 0.5},
        metrics={"a": ["mae"]},
    )
    trainer.fit(X, [Y, Y], verbose=0)
    single = fitpipe.Trainer(_sequential())
    single.compile(optimizer="sgd", loss=["mse"], loss_weights={"out": 2.0}, metrics=["mae"])
    assert len(single.evaluate(X, Y, verbose=0)) == 2


class _SplitOutput(keras.Model):
    """One output, split in two by ``compute_loss`` (as in Keras' own tests)."""

    def __init__(self) -> None:
        inputs = keras.Input((4,))
        super().__init__(inputs, keras.layers.Dense(1, name="a")(inputs))

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, **kw: Any) -> Any:
        return super().compute_loss(x=x, y=y, y_pred=[y_pred, y_pred], **kw)


class _Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x: Any) -> Any:
        return self.dense(x)


@pytest.mark.parametrize(
    "build",
    [_SplitOutput, _Subclassed, lambda: _functional("nested")],
    ids=["own-compute-loss", "subclassed", "nested"],
)
def test_models_whose_outputs_are_not_known_and_flat_are_left_alone(build: Any) -> None:
    fitpipe.Trainer(build()).compile(optimizer="sgd", loss=["mse", "mse", "mae"])
