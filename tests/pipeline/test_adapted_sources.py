"""What an adapter returns is checked where it enters the pipeline (``pipeline.adapted``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.adapters import ArraySource
from fitpipe.errors import DataMismatchError, FitpipeTypeError
from fitpipe.testing import epoch_batches


class Rows:
    """A user type whose adapter returns whatever it is given, as the source or its parts."""

    def __init__(self, made: Any) -> None:
        self.made = made


class RowsAdapter:
    name = "test-rows"
    accepts = "a test Rows"
    supports = frozenset({"y", "sample_weight", "batch_size", "shuffle"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Rows)

    def adapt(self, request: Any) -> Any:
        made = request.x.made
        return ArraySource(*made) if isinstance(made, list) else made


@pytest.fixture
def rows_adapter(clean_registry: Any) -> Iterator[None]:
    fitpipe.register_adapter(RowsAdapter)
    yield


def _column(n: int) -> np.ndarray:
    return np.arange(n, dtype="float32")


@pytest.mark.parametrize(
    ("made", "kind"),
    [
        (tf.data.Dataset.from_tensor_slices(np.zeros((4, 2))).batch(2), "_BatchDataset"),
        ((np.zeros((4, 2)), np.zeros(4)), "tuple"),
        (None, "NoneType"),
    ],
)
def test_an_adapter_returning_no_source_is_named_with_what_it_returned(
    made: Any, kind: str, rows_adapter: None
) -> None:
    expected = (
        rf"^`adapt` got {kind} from the adapter 'test-rows', which is neither an ArraySource "
        r"nor a batch source\. .*Received: returned="
    )
    with pytest.raises(FitpipeTypeError, match=expected):
        fitpipe.adapt(Rows(made))


lengths = st.integers(min_value=0, max_value=5)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(x=lengths, y=st.none() | lengths, w=st.none() | lengths, declared=lengths)
def test_array_sources_are_held_to_their_row_contract(
    x: int, y: int | None, w: int | None, declared: int, rows_adapter: None
) -> None:
    """Every leaf has ``num_samples`` rows, and there is one at least, or the adapter is named."""
    w = None if y is None else w
    parts = [None if n is None else _column(n) for n in (x, y, w)]
    leaves = {n for n in (x, y, w) if n is not None}
    made = Rows([{"a": parts[0], "b": _column(x)}, parts[1], parts[2], declared])
    if len(leaves) > 1:
        match = r"^`adapt` got inputs with different numbers of samples from the adapter 'test-"
    elif leaves != {declared}:
        match = rf"whose `num_samples` \({declared}\) is not its leaves' number of rows \({x}\)"
    elif declared == 0:
        match = r"^`adapt` got an empty input \(0 samples\) from the adapter 'test-rows'"
    else:
        batches = epoch_batches(fitpipe.adapt(made, batch_size=2))
        assert sum(len(batch[0]["a"]) for batch in batches) == declared
        return
    with pytest.raises(DataMismatchError, match=match):
        fitpipe.adapt(made, batch_size=2)


@pytest.mark.parametrize(
    ("made", "problem"),
    [
        ([np.zeros((3, 1)), None, None, 3.0], r"whose `num_samples` is not an int"),
        ([[1.0, 2.0], None, None, 2], r"whose `x` has a leaf that is not an array"),
        ([np.zeros((2, 1)), np.float32(1.0), None, 2], r"whose `y` has a leaf that is not an"),
    ],
)
def test_array_source_leaves_and_count_of_the_wrong_type_name_the_adapter(
    made: list[Any], problem: str, rows_adapter: None
) -> None:
    with pytest.raises(FitpipeTypeError, match=r"from the adapter 'test-rows' " + problem):
        fitpipe.adapt(Rows(made))


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_training_on_an_adapter_s_empty_source_says_it_is_empty(
    method: str, rows_adapter: None
) -> None:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    trainer.compile("sgd", "mse")
    empty = Rows([np.zeros((0, 2), "float32"), np.zeros((0,), "float32"), None, 0])
    with pytest.raises(DataMismatchError, match=rf"^`{method}` got an empty input \(0 samples\)"):
        getattr(trainer, method)(empty, verbose=0)
