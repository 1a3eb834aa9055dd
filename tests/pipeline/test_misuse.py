"""Documented misuse of ``fitpipe.adapt`` and the pattern of its error messages."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.errors import (
    DataMismatchError,
    FitpipeError,
    FitpipeWarning,
    UnsupportedArgumentError,
)
from fitpipe.testing import epoch_batches
from fitpipe.testing.fixtures import ArrayPyDataset

X = np.arange(20, dtype="float32").reshape(10, 2)
Y = np.arange(10)

#: "`adapt` <what failed>. <expected>. <fix>. Received: ..."
PATTERN = r"^`adapt` [^.]+.*\. .+\. .+\. Received: "


def batch_inputs() -> list[Any]:
    def gen() -> Iterator[Any]:
        yield X[:5], Y[:5]
        yield X[5:], Y[5:]

    return [
        pytest.param(lambda: tf.data.Dataset.from_tensor_slices((X, Y)).batch(5), id="tf.data"),
        pytest.param(gen, id="generator"),
        pytest.param(lambda: ArrayPyDataset(X, Y, None, 5), id="pydataset"),
    ]


@pytest.mark.parametrize("make", batch_inputs())
@pytest.mark.parametrize(
    ("argument", "value", "fix"),
    [
        ("y", Y, "yield `(x, y)`"),
        ("sample_weight", np.ones(10), "yield `(x, y, sample_weight)`"),
        ("batch_size", 4, "Drop `batch_size`"),
    ],
)
def test_arguments_batch_inputs_do_not_take(make: Any, argument: str, value: Any, fix: str) -> None:
    with pytest.raises(UnsupportedArgumentError) as info:
        fitpipe.adapt(make(), **{argument: value})
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert text.startswith(f"`adapt` does not support `{argument}` when `x` is ")
    assert fix in text
    assert f"Received: {argument}=" in text


# A PyDataset is indexed by batch: `shuffle=True` shuffles its batch order, as in Keras
# (tests/training/test_keras_input_forms.py), so only inputs read in their own order warn.
@pytest.mark.parametrize("make", [p for p in batch_inputs() if p.id != "pydataset"])
def test_shuffle_with_batch_inputs_warns_and_keeps_the_order(make: Any) -> None:
    with pytest.warns(FitpipeWarning, match=r"^`adapt` ignores `shuffle=True`"):
        pipeline = fitpipe.adapt(make(), shuffle=True)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in epoch_batches(pipeline)]), Y)


def test_schema_is_not_supported_for_arrays() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` does not support `schema`"):
        fitpipe.adapt(X, schema={"a": "float32"})


@pytest.mark.parametrize(
    ("args", "sizes"),
    [
        ((X, Y[:9]), "x sizes: 10; y sizes: 9"),
        ((X, Y, np.ones(8)), "x sizes: 10; y sizes: 10; sample_weight sizes: 8"),
        (([X, X[:7]], Y), "x sizes: 10, 7; y sizes: 10"),
        (({"a": X}, {"o1": Y, "o2": Y[:3]}), "x sizes: 10; y sizes: 10, 3"),
    ],
)
def test_mismatched_sample_counts_name_every_size(args: tuple[Any, ...], sizes: str) -> None:
    with pytest.raises(DataMismatchError, match=PATTERN) as info:
        fitpipe.adapt(*args)
    assert isinstance(info.value, ValueError)
    assert "different numbers of samples" in str(info.value)
    assert sizes in str(info.value)


def test_mismatch_message_does_not_leak_internal_types() -> None:
    with pytest.raises(DataMismatchError) as info:
        fitpipe.adapt(X, Y[:9])
    assert "_Listing" not in str(info.value)


@pytest.mark.parametrize(
    "args",
    [
        (np.zeros((0, 3)),),
        (np.zeros((0, 3)), np.zeros(0)),
        ({"a": np.zeros((0, 2))},),
        (tf.zeros((0, 4)),),
    ],
    ids=["array", "with-y", "dict", "tensor"],
)
def test_empty_input_is_a_value_error(args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got an empty input \(0 samples\)"):
        fitpipe.adapt(*args)


@pytest.mark.parametrize("x", [{}, [{}], {"a": []}], ids=["dict", "list-of-dict", "dict-of-empty"])
def test_empty_structures_are_rejected(x: Any) -> None:
    with pytest.raises(FitpipeError):
        fitpipe.adapt(x)


def test_no_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got no input\. .*Received: x=None"):
        fitpipe.adapt(None)


@pytest.mark.parametrize(
    "x",
    [
        np.array([{"a": 1}, None], dtype=object),
        np.array([1, "a", None], dtype=object),
        np.array([[1.0, None]], dtype=object),
    ],
)
def test_object_dtype_non_string_arrays_are_a_type_error(x: np.ndarray) -> None:
    with pytest.raises(TypeError, match=r"^`adapt` cannot use `x`: it is an object-dtype array"):
        fitpipe.adapt(x)


def test_object_dtype_in_y_names_y() -> None:
    with pytest.raises(TypeError, match=r"cannot use `y`: it is an object-dtype array"):
        fitpipe.adapt(X, np.array([None] * 10, dtype=object))


def test_datetime_arrays_are_a_type_error() -> None:
    dates = np.array([datetime.datetime(2020, 1, d) for d in range(1, 4)], dtype="datetime64[D]")
    with pytest.raises(TypeError, match=r"^`adapt` cannot use `x` of dtype datetime64"):
        fitpipe.adapt(dates)


def test_ragged_nested_lists_are_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` cannot convert `x` to an array"):
        fitpipe.adapt([[1, 2], [3]])


def test_scalar_leaf_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"cannot batch the scalar `x\[1\]`"):
        fitpipe.adapt([X, np.float32(1.0)])


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_invalid_batch_size(batch_size: Any) -> None:
    with pytest.raises(
        ValueError,
        match=r"^`adapt` got an invalid `batch_size`\. " + ".*"
        r"Received: batch_size=",
    ):
        fitpipe.adapt(X, batch_size=batch_size)


@pytest.mark.parametrize("steps", [0, -3, 1.5])
def test_invalid_steps(steps: Any) -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got an invalid `steps`"):
        fitpipe.adapt(X, steps=steps)


def test_numpy_integer_batch_size_is_accepted() -> None:
    assert fitpipe.adapt(X, batch_size=np.int64(4)).num_batches == 3


def test_invalid_shuffle_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^`adapt` got an invalid `shuffle`"):
        fitpipe.adapt(X, shuffle="yes")  # type: ignore[arg-type]


def test_sample_weight_without_y_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^`adapt` got `sample_weight` without `y`"):
        fitpipe.adapt(X, sample_weight=np.ones(10))


def test_sample_weight_of_rank_3_is_the_models_to_judge() -> None:
    """Which weight shapes fit is the loss' to say (``fit`` checks it against the model)."""
    pipeline = fitpipe.adapt(X, Y, np.ones((10, 2, 1)), batch_size=5)
    assert pipeline.element_spec[2].shape.as_list() == [None, 2, 1]


def test_string_sample_weight_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^`adapt` got non-numeric `sample_weight`"):
        fitpipe.adapt(X, Y, np.array(["a"] * 10))


def test_namedtuple_x_is_rejected() -> None:
    import collections

    pair = collections.namedtuple("Pair", "a b")(X, X)
    with pytest.raises(ValueError, match=r"^`adapt` cannot use a namedtuple in `x`.*_asdict"):
        fitpipe.adapt(pair, Y)


def test_unsupported_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=PATTERN + r"x=<object object"):
        fitpipe.adapt(object())
    with pytest.raises(TypeError, match=r"found no adapter"):
        fitpipe.adapt("a string is not an array")
