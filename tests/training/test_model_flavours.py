"""``fitpipe.Model``'s functional flavour, functional subclasses, signatures, saved settings."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe

X = np.linspace(0.0, 1.0, 32, dtype="float32").reshape(8, 4)
Y = X.sum(axis=1, keepdims=True)

#: The source tree under test, for child processes.
SRC = str(Path(fitpipe.__file__).resolve().parents[1])


def _child(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": SRC},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def _functional() -> keras.Model:
    inp = keras.Input((4,))
    model = fitpipe.Model(inp, keras.layers.Dense(1)(inp))
    model.compile("sgd", "mse")
    model.fit(X, Y, epochs=1, verbose=0)
    return model


@pytest.mark.subprocess
def test_a_functional_model_loads_in_a_process_that_never_built_one(tmp_path: Path) -> None:
    model = _functional()
    path = tmp_path / "m.keras"
    model.save(path)
    line = _child(
        f"""
        import keras, numpy as np, fitpipe
        m = keras.models.load_model({str(path)!r})
        x = np.linspace(0.0, 1.0, 32, dtype="float32").reshape(8, 4)
        print(type(m).__module__, type(m).__name__, isinstance(m, fitpipe.Model),
              float(m.predict(x, verbose=0).sum()))
        """
    )
    module, name, is_model, total = line.split()
    assert (module, name, is_model) == (type(model).__module__, type(model).__name__, "True")
    assert float(total) == pytest.approx(float(model.predict(X, verbose=0).sum()), rel=1e-5)


def test_the_functional_flavour_is_a_module_class() -> None:
    from fitpipe.training import models

    inp = keras.Input((4,))
    model = fitpipe.Model(inp, keras.layers.Dense(1)(inp))
    assert type(model) is models.FunctionalModel
    assert isinstance(model, fitpipe.Model)


def test_a_functional_model_pickles() -> None:
    model = _functional()
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is type(model)
    np.testing.assert_allclose(copy.predict(X, verbose=0), model.predict(X, verbose=0))
    copy.fit(X, Y, epochs=1, verbose=0)


_SUBCLASSES = """
import keras, numpy as np, fitpipe

bases = fitpipe.Model.__bases__
x = np.ones((8, 4), "float32"); y = np.ones((8, 1), "float32")


class Sub(fitpipe.Model):
    def __init__(self):
        super().__init__()
        self.d = keras.layers.Dense(1)

    def call(self, inputs):
        return self.d(inputs)


class FSub(fitpipe.Model):
    pass


class Net(fitpipe.Model):
    def __init__(self):
        i = keras.Input((4,))
        super().__init__(i, keras.layers.Dense(1)(i))


def subclassed():
    m = Sub()
    m.compile("sgd", "mse")
    m.fit(x, y, verbose=0)
    assert "Functional" not in [c.__name__ for c in type(m).__mro__], type(m).__mro__


def functional():
    i = keras.Input((4,))
    for m in (FSub(i, keras.layers.Dense(1)(i)), Net(), FSub(inputs=i, outputs=i)):
        assert isinstance(m, fitpipe.Model)
        m.compile("sgd", "mse")
        m.fit(x, np.ones((8, m.outputs[0].shape[-1]), "float32"), verbose=0)
        assert fitpipe.Model.__bases__ == bases, fitpipe.Model.__bases__


for step in {order}:
    step()
print("ok", fitpipe.Model.__bases__ == bases)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "order",
    ["(functional, subclassed)", "(subclassed, functional, subclassed)"],
)
def test_a_functional_subclass_leaves_fitpipe_model_alone(order: str) -> None:
    assert _child(_SUBCLASSES.format(order=order)) == "ok True"


@keras.saving.register_keras_serializable(package="test_model_flavours")
class Tower(fitpipe.Model):
    """A functional subclass: built with ``(inputs, outputs)``."""


def test_a_functional_subclass_trains_saves_and_loads(tmp_path: Path) -> None:
    bases = fitpipe.Model.__bases__
    inp = keras.Input((4,))
    model = Tower(inp, keras.layers.Dense(1)(inp))
    assert fitpipe.Model.__bases__ == bases
    model.compile("sgd", "mse", steps_per_execution="auto")
    model.fit(X, Y, epochs=2, verbose=0)
    config = model.get_config()
    assert config["input_layers"] and config["output_layers"]
    model.save(tmp_path / "t.keras")
    loaded = keras.models.load_model(tmp_path / "t.keras")
    assert type(loaded) is Tower
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    assert fitpipe.Trainer(loaded).steps_per_execution == "auto"
    assert fitpipe.Model.__bases__ == bases


METHODS = ["compile", "fit", "evaluate", "predict", "train_on_batch", "test_on_batch"]


@pytest.mark.parametrize("cls", [fitpipe.Model, fitpipe.Sequential])
@pytest.mark.parametrize("name", [*METHODS, "predict_on_batch"])
def test_the_training_methods_have_the_trainer_signatures(cls: type, name: str) -> None:
    ours = inspect.signature(getattr(cls, name))
    assert ours == inspect.signature(getattr(fitpipe.Trainer, name))
    keras_params = inspect.signature(getattr(keras.Model, name)).parameters.values()
    keras_names = [p.name for p in keras_params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert list(ours.parameters)[: len(keras_names)] == keras_names
    assert "Args:" in (getattr(cls, name).__doc__ or "")


@pytest.mark.subprocess
def test_type_checkers_read_the_training_methods(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    user = tmp_path / "user.py"
    user.write_text(
        textwrap.dedent(
            """
            import keras, fitpipe
            m = fitpipe.Sequential([keras.layers.Dense(1)])
            m.compile("sgd", "mse", steps_per_execution="auto")
            m.fit(None, epochs="2", validaton_split=0.2)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports", str(user)],
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": SRC},
        check=False,
    )
    assert '"validaton_split"' in done.stdout, done.stdout
    assert '"epochs"' in done.stdout, done.stdout


@pytest.mark.parametrize("jit", ["auto", False])
@pytest.mark.parametrize("build", ["sequential", "functional"])
def test_jit_compile_as_asked_survives_saving(tmp_path: Path, jit: Any, build: str) -> None:
    if build == "sequential":
        model = fitpipe.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    else:
        inp = keras.Input((4,))
        model = fitpipe.Model(inp, keras.layers.Dense(1)(inp))
    model.compile("sgd", "mse", jit_compile=jit)
    assert model.get_compile_config()["jit_compile"] == jit
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert fitpipe.Trainer(loaded).tuning["jit_compile"] == jit
    loaded.fit(X, Y, epochs=1, verbose=0)


#: How a test builds a model unnamed: (how, by Keras, by fitpipe).
_BUILDS: dict[str, tuple[Any, Any]] = {
    "positional": (
        lambda i, o: keras.Model(i, o),
        lambda i, o: fitpipe.Model(i, o),
    ),
    "keywords": (
        lambda i, o: keras.Model(inputs=i, outputs=o),
        lambda i, o: fitpipe.Model(inputs=i, outputs=o),
    ),
    "sequential": (
        lambda i, o: keras.Sequential([keras.layers.Dense(1)]),
        lambda i, o: fitpipe.Sequential([keras.layers.Dense(1)]),
    ),
    "named": (
        lambda i, o: keras.Model(i, o, name="functional_5"),
        lambda i, o: fitpipe.Model(i, o, name="functional_5"),
    ),
}


def _names(steps: list[tuple[str, bool]], by_fitpipe: bool) -> list[str]:
    keras.backend.clear_session(free_memory=False)
    inp = keras.Input((4,))
    out = keras.layers.Dense(1)(inp)
    names = []
    for how, ours in steps:
        build = _BUILDS[how][1 if ours and by_fitpipe else 0]
        names.append(build(inp, out).name)
    return names


@settings(max_examples=15, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(sorted(_BUILDS)), st.booleans()), min_size=1, max_size=5
    )
)
def test_default_model_names_are_those_keras_gives(steps: list[tuple[str, bool]]) -> None:
    # Keras alone, then the same steps with fitpipe building those marked: the same names
    # (functional, functional_1... counted together with Keras' own models).
    assert _names(steps, by_fitpipe=True) == _names(steps, by_fitpipe=False)


def test_an_unnamed_functional_model_keeps_its_name_saved_and_pickled(tmp_path: Path) -> None:
    model = _functional()
    assert model.name == "functional"
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded) is type(model)
    assert loaded.name == "functional"
    assert pickle.loads(pickle.dumps(model)).name == "functional"
    inp = keras.Input((4,))
    assert fitpipe.Model(inp, keras.layers.Dense(1)(inp)).name == "functional_1"


def test_a_functional_subclass_is_named_after_its_class() -> None:
    inp = keras.Input((4,))
    assert Tower(inp, keras.layers.Dense(1)(inp)).name == "tower"
