"""A third-party adapter whose ``can_adapt`` fails is skipped with a warning, never fatal.

The registry asks adapters in priority order; a plug-in asked before the built-ins used to
break every input, plain NumPy included, when its ``can_adapt`` raised. Now it is skipped with
a :class:`~fitpipe.errors.PluginWarning` naming it, as a plug-in that fails to load already is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.adapters import ArraySource
from fitpipe.errors import FitpipeWarning, PluginWarning, UnsupportedInputError
from fitpipe.testing import epoch_batches


class Box:
    """A type only the good plug-in takes."""

    def __init__(self, values: Any) -> None:
        self.values = np.asarray(values, dtype="float32")


def faulty(name: str, error: BaseException | None = None, answer: Any = None) -> Any:
    """A plug-in whose ``can_adapt`` raises ``error`` (or returns ``answer``)."""

    class _Faulty:
        accepts = "nothing, it is broken"
        supports = frozenset({"batch_size"})

        def can_adapt(self, x: Any) -> bool:
            if error is not None:
                raise error
            return answer  # type: ignore[no-any-return]

        def adapt(self, request: Any) -> Any:  # pragma: no cover - never chosen
            raise AssertionError("a faulty plug-in was chosen")

    _Faulty.name = name  # type: ignore[attr-defined]
    return _Faulty()


class GoodAdapter:
    name = "test-good-box"
    accepts = "a test Box"
    supports = frozenset({"batch_size"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Box)

    def adapt(self, request: Any) -> ArraySource:
        return ArraySource(request.x.values, None, None, len(request.x.values))


def _generator() -> Any:
    yield np.ones((2, 3), "float32")


INPUTS = {
    "numpy": lambda: np.arange(6, dtype="float32").reshape(3, 2),
    "list": lambda: [[1.0, 2.0], [3.0, 4.0]],
    "dict": lambda: {"a": np.ones((3, 2), "float32")},
    "pandas": lambda: pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}),
    "tensor": lambda: tf.ones((3, 2)),
    "tf.data": lambda: tf.data.Dataset.from_tensor_slices(np.ones((4, 2), "float32")).batch(2),
    "generator": _generator,
}
ERRORS = {
    "ValueError": ValueError("broken check"),
    "TypeError": TypeError("unhashable"),
    "AttributeError": AttributeError("'X' has no attribute 'dtype'"),
    "RuntimeError": RuntimeError("plug-in state"),
    "FitpipeError": fitpipe.errors.FitpipeValueError("a fitpipe error from a plug-in"),
}


@pytest.mark.parametrize("kind", sorted(ERRORS))
@pytest.mark.parametrize("form", sorted(INPUTS))
def test_a_raising_plugin_is_skipped_for_every_input(
    form: str, kind: str, clean_registry: Any
) -> None:
    fitpipe.register_adapter(faulty("test-faulty", ERRORS[kind]), priority=1000)
    with pytest.warns(PluginWarning, match=r"skipped the adapter 'test-faulty'.*can_adapt"):
        pipeline = fitpipe.adapt(INPUTS[form]())
    assert pipeline.adapter != "test-faulty"
    assert epoch_batches(pipeline)


def test_a_plugin_answering_with_an_ambiguous_value_is_skipped(clean_registry: Any) -> None:
    # An array answer cannot be read as yes/no (NumPy raises on `bool`).
    ambiguous = faulty("test-ambiguous", answer=np.array([True, False]))
    fitpipe.register_adapter(ambiguous, priority=1000)
    with pytest.warns(PluginWarning, match="test-ambiguous"):
        assert fitpipe.adapt(np.ones((2, 2), "float32")).adapter == "numpy"


def test_a_good_plugin_still_takes_its_input_after_a_faulty_one(clean_registry: Any) -> None:
    fitpipe.register_adapter(faulty("test-faulty-first", RuntimeError("boom")), priority=50)
    fitpipe.register_adapter(GoodAdapter(), priority=10)
    with pytest.warns(FitpipeWarning, match="test-faulty-first"):
        pipeline = fitpipe.adapt(Box([[1.0], [2.0]]))
    assert pipeline.adapter == "test-good-box"


def test_an_input_nobody_takes_is_still_the_usual_error(clean_registry: Any) -> None:
    fitpipe.register_adapter(faulty("test-faulty-low", ValueError("boom")), priority=-5)
    with (
        pytest.warns(PluginWarning, match="test-faulty-low"),
        pytest.raises(UnsupportedInputError, match="found no adapter"),
    ):
        fitpipe.adapt(object())


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_inside_a_plugin_reaches_the_caller(
    interrupt: type[BaseException], clean_registry: Any
) -> None:
    fitpipe.register_adapter(faulty("test-interrupted", interrupt()), priority=1000)
    with pytest.raises(interrupt):
        fitpipe.adapt(np.ones((2, 2), "float32"))


def test_fit_trains_on_numpy_despite_a_faulty_plugin(clean_registry: Any, rel: Any) -> None:
    fitpipe.register_adapter(faulty("test-faulty-fit", TypeError("boom")), priority=1000)
    trainer = rel.dense_trainer()
    with pytest.warns(PluginWarning, match="test-faulty-fit"):
        history = trainer.fit(rel.x_data(), rel.y_data(), batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
