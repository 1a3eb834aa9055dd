"""A batch source's answers are checked where the pipeline first uses them.

``make_dataset()`` gives a ``tf.data.Dataset`` of ``(x,)``, ``(x, y)`` or ``(x, y, sw)``
tuples, and ``count_batches()`` an int or None (``pipeline.batch_contract``), for ``fit``,
``evaluate``, ``predict`` and ``fitpipe.adapt`` alike, with errors naming the adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.adapters import BatchSource
from fitpipe.errors import DataMismatchError, FitpipeTypeError

X = np.arange(16, dtype="float32").reshape(8, 2)
Y = np.arange(8, dtype="float32")


class Reader:
    """A user type whose adapter makes a batch source of the given functions."""

    def __init__(self, make: Callable[[], Any], count: Any = 2) -> None:
        self.make = make
        self.count = count


class ReaderAdapter:
    name = "test-reader"
    accepts = "a test Reader"
    supports = frozenset({"steps"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Reader)

    def adapt(self, request: Any) -> BatchSource:
        reader = request.x
        return BatchSource(make_dataset=reader.make, count_batches=lambda: reader.count)


@pytest.fixture
def reader_adapter(clean_registry: Any) -> Iterator[None]:
    fitpipe.register_adapter(ReaderAdapter)
    yield


def _trainer() -> fitpipe.Trainer:
    inputs = keras.Input((2,), name="a")
    trainer = fitpipe.Trainer(keras.Model({"a": inputs}, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse")
    return trainer


def _run(method: str, x: Reader) -> Any:
    if method == "adapt":
        with fitpipe.adapt(x) as pipeline:
            return pipeline.num_batches
    return getattr(_trainer(), method)(x, verbose=0)


def _batches(*parts: Any) -> Callable[[], tf.data.Dataset]:
    return lambda: tf.data.Dataset.from_tensor_slices(parts[0] if len(parts) == 1 else parts).batch(
        4
    )


METHODS = ["adapt", "fit", "evaluate", "predict"]


@pytest.mark.parametrize("method", METHODS)
def test_make_dataset_returning_no_dataset_names_the_adapter(
    method: str, reader_adapter: None
) -> None:
    listed = Reader(lambda: [(X[:4], Y[:4]), (X[4:], Y[4:])])
    expected = (
        rf"^`{method}` got list from `make_dataset` of a source of the adapter 'test-reader', "
        r"which is not a tf\.data\.Dataset\. A batch source's `make_dataset` returns the "
        r"`tf\.data\.Dataset` of one pass.*Received: returned="
    )
    with pytest.raises(FitpipeTypeError, match=expected):
        _run(method, listed)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_batches({"a": X}), "dict batches"),
        (_batches(X), "TensorSpec batches"),
        (_batches(X, Y, Y, Y), "tuples of 4 parts"),
    ],
    ids=["dict", "tensor", "four-parts"],
)
def test_batches_that_are_no_tuples_name_the_adapter(
    method: str, make: Callable[[], tf.data.Dataset], kind: str, reader_adapter: None
) -> None:
    expected = (
        rf"^`{method}` got {kind} from a source of the adapter 'test-reader'\. A batch "
        r"source's batches are tuples `\(x,\)`, `\(x, y\)` or `\(x, y, sample_weight\)`.*"
        r"`dataset\.map\(lambda x: \(x,\)\)`\. Received: element_spec="
    )
    with pytest.raises(DataMismatchError, match=expected):
        _run(method, Reader(make))


@pytest.mark.parametrize("method", ["adapt", "fit", "evaluate"])
@pytest.mark.parametrize(
    ("count", "kind"),
    [("3", "str"), (3.5, "float"), (np.float64(2.0), "float64"), (True, "bool")],
)
def test_a_count_that_is_no_int_names_the_adapter(
    method: str, count: Any, kind: str, reader_adapter: None
) -> None:
    expected = (
        rf"^`{method}` got a batch count of type {kind} from `count_batches` of a source of "
        r"the adapter 'test-reader'\. A batch source's `count_batches` returns the batches "
        r"of the coming epoch as an int \(a NumPy integer is taken\), or None when unknown"
    )
    with pytest.raises(FitpipeTypeError, match=expected):
        _run(method, Reader(_batches({"a": X}, Y), count))


@pytest.mark.parametrize("method", ["adapt", "fit", "evaluate"])
@pytest.mark.parametrize("count", [-1, np.int32(-3)], ids=["int", "int32"])
def test_a_negative_count_names_the_adapter(method: str, count: Any, reader_adapter: None) -> None:
    expected = (
        rf"^`{method}` got a negative batch count from `count_batches` of a source of the "
        rf"adapter 'test-reader'\. .* Received: count_batches={int(count)} "
    )
    with pytest.raises(DataMismatchError, match=expected):
        _run(method, Reader(_batches({"a": X}, Y), count))


def test_a_numpy_integer_count_is_taken_as_an_int(reader_adapter: None) -> None:
    with fitpipe.adapt(Reader(_batches({"a": X}, Y), np.int64(2))) as pipeline:
        assert type(pipeline.num_batches) is int and pipeline.num_batches == 2
    history = _trainer().fit(Reader(_batches({"a": X}, Y), np.int64(2)), verbose=0)
    assert type(history.params["steps"]) is int and history.params["steps"] == 2


class SplitClaimAdapter(ReaderAdapter):
    """Claims ``validation_split``; its source is Splittable only when the reader says."""

    name = "test-split-claim"
    supports = frozenset({"steps", "validation_split"})

    def adapt(self, request: Any) -> BatchSource:
        reader = request.x
        split = None if reader.count == "unsplittable" else (lambda at, size: (None, None))
        return BatchSource(
            make_dataset=reader.make, count_batches=lambda: 2, rows=reader.rows, split=split
        )


@pytest.mark.parametrize(
    ("splittable", "rows", "problem"),
    [
        (False, None, r"its source \(BatchSource\) is neither an ArraySource nor Splittable"),
        (False, 8, r"its source \(BatchSource\) is neither an ArraySource nor Splittable"),
        (
            True,
            None,
            r"its Splittable source \(BatchSource\) does not know its rows \(`rows` is None\)",
        ),
    ],
)
def test_a_claimed_validation_split_of_a_source_that_cannot_split_names_the_adapter(
    splittable: bool, rows: int | None, problem: str, clean_registry: Any
) -> None:
    fitpipe.register_adapter(SplitClaimAdapter)
    reader = Reader(_batches({"a": X}, Y), "splittable" if splittable else "unsplittable")
    reader.rows = rows  # type: ignore[attr-defined]
    expected = (
        r"^`fit` cannot split the input of the adapter 'test-split-claim' for "
        rf"`validation_split`: the adapter claims `validation_split`, but {problem}\. .*"
        r"drop `validation_split` from its `supports`\. Received: validation_split=0\.25"
    )
    with pytest.raises(DataMismatchError, match=expected):
        _trainer().fit(reader, validation_split=0.25, verbose=0)
