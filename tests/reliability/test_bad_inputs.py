"""A catalogue of bad inputs: each must raise a clear fitpipe error, never a raw TF/Keras one.

Every case asserts the builtin type a Keras user catches (``ValueError``/``TypeError``), that
the error is a ``FitpipeError``, and that the message names the argument, what was expected
and what was received. Cases where fitpipe misbehaves today are strict xfails ("BUG: ...").
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import fitpipe

X = np.linspace(0.0, 1.0, 32, dtype="float32").reshape(8, 4)
Y = np.linspace(0.0, 1.0, 8, dtype="float32").reshape(8, 1)
Y3 = np.eye(3, dtype="float32")[np.arange(8) % 3]
B = np.ones((8, 2), dtype="float32")
STRINGS = np.array([["a", "b", "c", "d"]] * 8)
Pair = collections.namedtuple("Pair", ["x", "y"])

# Keras warns about the input structure on the way to the buggy validation_data=[x, y] case.
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")


def batches(*items: Any) -> Iterator[Any]:
    yield from items


def infinite() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensors((X, Y)).repeat()


class ListBatches(keras.utils.PyDataset):
    """Returns each batch as a list ``[x, y, sample_weight]``."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> list[np.ndarray]:
        rows = slice(4 * index, 4 * index + 4)
        return [X[rows], Y[rows], np.ones(4, "float32")]


@dataclasses.dataclass
class Case:
    call: Callable[[Any], Any]
    exc: type[BaseException]
    match: str
    caller: str
    names: tuple[str, ...]
    expected: str
    received: str


def case(
    id: str,
    call: Callable[[Any], Any],
    exc: type[BaseException],
    match: str,
    caller: str = "fit",
    names: tuple[str, ...] = (),
    expected: str = ".",
    received: str = ".",
    bug: str | None = None,
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {bug}")] if bug else []
    return pytest.param(
        Case(call, exc, match, caller, names, expected, received), id=id, marks=marks
    )


def fit(h: Any, *args: Any, trainer: str = "dense", **kwargs: Any) -> Any:
    kwargs.setdefault("verbose", 0)
    return _trainer(h, trainer).fit(*args, **kwargs)


def evaluate(h: Any, *args: Any, trainer: str = "dense", **kwargs: Any) -> Any:
    kwargs.setdefault("verbose", 0)
    return _trainer(h, trainer).evaluate(*args, **kwargs)


def predict(h: Any, *args: Any, trainer: str = "dense", **kwargs: Any) -> Any:
    kwargs.setdefault("verbose", 0)
    return _trainer(h, trainer).predict(*args, **kwargs)


def _trainer(h: Any, kind: str) -> fitpipe.Trainer:
    return {
        "dense": h.dense_trainer,
        "classifier": h.classifier_trainer,
        "two_inputs": h.two_input_trainer,
        "two_outputs": h.two_output_trainer,
    }[kind]()


SHAPE = "does not fit the model"
ROWS = "different numbers of samples"
EMPTY = r"empty input \(0 samples\)"
BATCH = "got an invalid `batch_size`"
SPLIT = "got an invalid `validation_split`"
UNPACK_VAL = "cannot unpack `validation_data`"
FREQ = "got an invalid `validation_freq`"
CALLBACKS = "other than Keras callbacks"
NEVER_ENDS = "never ends without a step count"
UNSUPPORTED = "does not support `{}` when `x` is a batched tf.data.Dataset"

CASES = [
    # ------------------------------------------------------------- shapes vs. model inputs
    case(
        "fit-wrong-width",
        lambda h: fit(h, np.zeros((8, 5), "float32"), Y),
        ValueError,
        SHAPE,
        names=("x",),
        expected=r"expected shape \(None, 4\)",
        received=r"shape \(None, 5\)",
    ),
    case(
        "fit-wrong-rank",
        lambda h: fit(h, np.zeros((8, 4, 2), "float32"), Y),
        ValueError,
        SHAPE,
        names=("x",),
        expected=r"expected shape \(None, 4\)",
        received=r"shape \(None, 4, 2\)",
    ),
    case(
        "predict-rank-1",
        lambda h: predict(h, np.zeros((8,), "float32")),
        ValueError,
        SHAPE,
        caller="predict",
        names=("x",),
        expected=r"expected shape \(None, 4\)",
        received=r"shape \(None,\)",
    ),
    case(
        "fit-two-arrays-for-one-input",
        lambda h: fit(h, [X, X], Y),
        ValueError,
        r"got 2 input array\(s\) for a model with 1 input",
        names=("x",),
        expected="model's inputs are",
        received=r"2 array\(s\)",
    ),
    case(
        "fit-one-array-for-two-inputs",
        lambda h: fit(h, X, Y, trainer="two_inputs"),
        ValueError,
        r"got 1 input array\(s\) for a model with 2 input",
        names=("x",),
        expected=r"\['a', 'b'\]",
        received=r"1 array\(s\)",
    ),
    case(
        "fit-dict-missing-input",
        lambda h: fit(h, {"a": X}, Y, trainer="two_inputs"),
        ValueError,
        r"do not match the model \(missing \['b'\]",
        names=("x",),
        expected=r"named \['a', 'b'\]",
        received=r"keys \['a'\]",
    ),
    case(
        "fit-dict-unknown-input",
        lambda h: fit(h, {"a": X, "b": B, "c": X}, Y, trainer="two_inputs"),
        ValueError,
        r"unknown \['c'\]",
        names=("x",),
        expected=r"named \['a', 'b'\]",
        received=r"keys \['a', 'b', 'c'\]",
    ),
    case(
        "evaluate-dict-wrong-width",
        lambda h: evaluate(h, {"a": X, "b": np.ones((8, 3))}, Y, trainer="two_inputs"),
        ValueError,
        SHAPE,
        caller="evaluate",
        names=("x", "'b'"),
        expected=r"expected shape \(None, 2\) for input 'b'",
        received=r"shape \(None, 3\)",
    ),
    case(
        "fit-validation-data-wrong-width",
        lambda h: fit(h, X, Y, validation_data=(np.zeros((4, 5), "float32"), Y[:4])),
        ValueError,
        SHAPE,
        names=("x",),
        expected=r"expected shape \(None, 4\)",
        received=r"shape \(None, 5\)",
    ),
    # ------------------------------------------------------------------ lengths and empties
    case(
        "fit-x-y-lengths",
        lambda h: fit(h, X, Y[:5]),
        ValueError,
        ROWS,
        names=("x", "y"),
        expected="same first dimension",
        received="x sizes: 8; y sizes: 5",
    ),
    case(
        "fit-sample-weight-length",
        lambda h: fit(h, X, Y, sample_weight=np.ones(5)),
        ValueError,
        ROWS,
        names=("sample_weight",),
        expected="same first dimension",
        received="sample_weight sizes: 5",
    ),
    case(
        "adapt-x-y-lengths",
        lambda h: fitpipe.adapt(X, Y[:3]),
        ValueError,
        ROWS,
        caller="adapt",
        names=("x", "y"),
        expected="same first dimension",
        received="y sizes: 3",
    ),
    case(
        "fit-empty-arrays",
        lambda h: fit(h, np.zeros((0, 4), "float32"), np.zeros((0, 1), "float32")),
        ValueError,
        EMPTY,
        names=("x",),
        expected="at least one sample",
        received="x sizes: 0",
    ),
    case(
        "fit-empty-dict-arrays",
        lambda h: fit(
            h,
            {"a": np.zeros((0, 4)), "b": np.zeros((0, 2))},
            np.zeros((0, 1)),
            trainer="two_inputs",
        ),
        ValueError,
        EMPTY,
        names=("x",),
        expected="at least one sample",
        received="x sizes: 0, 0",
    ),
    case(
        "fit-empty-dataframe",
        lambda h: fit(h, pd.DataFrame(np.zeros((0, 4))), np.zeros((0, 1))),
        ValueError,
        EMPTY,
        names=("x",),
        expected="at least one sample",
        received="x sizes: 0",
    ),
    case(
        "predict-empty-array",
        lambda h: predict(h, np.zeros((0, 4), "float32")),
        ValueError,
        EMPTY,
        caller="predict",
        names=("x",),
        expected="at least one sample",
        received="x sizes: 0",
    ),
    case(
        "adapt-empty-array",
        lambda h: fitpipe.adapt(np.zeros((0, 3))),
        ValueError,
        EMPTY,
        caller="adapt",
        names=("x",),
        expected="at least one sample",
        received="x sizes: 0",
    ),
    case(
        "fit-empty-dict",
        lambda h: fit(h, {}, Y),
        ValueError,
        "empty",
        names=("x",),
        expected="at least one array",
        received=r"x=\{\}",
    ),
    # ------------------------------------------------------------------- dtypes of the data
    case(
        "fit-object-dtype",
        lambda h: fit(h, np.array([[object()] * 4] * 8), Y),
        TypeError,
        "object-dtype array holding object",
        names=("x",),
        expected="numbers, booleans or strings",
        received="dtype object",
    ),
    case(
        "fit-object-with-none",
        lambda h: fit(h, np.array([[1.0, None, 2.0, 3.0]] * 8, dtype=object), Y),
        TypeError,
        "holding NoneType, float",
        names=("x",),
        expected="numbers, booleans or strings",
        received="dtype object",
    ),
    case(
        "fit-dataframe-mixed-object-column",
        lambda h: fit(h, pd.DataFrame({k: ["s"] * 4 + [1.0] * 4 for k in "abcd"}), Y),
        TypeError,
        "object-dtype array holding float, str",
        names=("x",),
        expected="numbers, booleans or strings",
        received="of type DataFrame",
    ),
    case(
        "adapt-datetime-dtype",
        lambda h: fitpipe.adapt(np.array(["2020-01-01"] * 3, dtype="datetime64[D]")),
        TypeError,
        r"cannot use `x` of dtype datetime64\[D\]",
        caller="adapt",
        names=("x",),
        expected="numbers, booleans or strings",
        received=r"dtype datetime64\[D\]",
    ),
    case(
        "adapt-complex-dtype",
        lambda h: fitpipe.adapt(np.zeros(3, dtype=complex)),
        TypeError,
        "cannot use `x` of dtype complex128: complex values",
        caller="adapt",
        names=("x",),
        expected="take real numbers",
        received="dtype complex128",
    ),
    case(
        "fit-string-x-to-dense",
        lambda h: fit(h, STRINGS, Y),
        TypeError,
        "string",
        names=("x",),
        expected="float",
        received="str|string",
    ),
    case(
        "predict-string-x-to-dense",
        lambda h: predict(h, STRINGS),
        TypeError,
        "string",
        caller="predict",
        names=("x",),
        expected="float",
        received="str|string",
    ),
    case(
        "fit-string-y-for-mse",
        lambda h: fit(h, X, np.array([["a"]] * 8)),
        TypeError,
        "string",
        names=("y",),
        expected="number|float",
        received="str|string",
    ),
    # ------------------------------------------------------------------------- batch_size
    case(
        "fit-batch-size-0",
        lambda h: fit(h, X, Y, batch_size=0),
        ValueError,
        BATCH,
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=0 \(of type int\)",
    ),
    case(
        "fit-batch-size-negative",
        lambda h: fit(h, X, Y, batch_size=-4),
        ValueError,
        BATCH,
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=-4 \(of type int\)",
    ),
    case(
        "fit-batch-size-past-int64",
        lambda h: fit(h, X, Y, batch_size=2**64),
        ValueError,
        BATCH,
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=18446744073709551616 \(of type int\)",
    ),
    case(
        "predict-steps-past-int64",
        lambda h: predict(h, X, steps=2**63),
        ValueError,
        "got an invalid `steps`",
        caller="predict",
        names=("steps",),
        expected="positive integer below",
        received=r"steps=9223372036854775808",
    ),
    case(
        "fit-batch-size-float",
        lambda h: fit(h, X, Y, batch_size=2.0),
        ValueError,
        BATCH,
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=2.0 \(of type float\)",
    ),
    case(
        "fit-batch-size-bool",
        lambda h: fit(h, X, Y, batch_size=True),
        ValueError,
        BATCH,
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=True \(of type bool\)",
    ),
    case(
        "predict-batch-size-float",
        lambda h: predict(h, X, batch_size=1.5),
        ValueError,
        BATCH,
        caller="predict",
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=1.5 \(of type float\)",
    ),
    case(
        "adapt-batch-size-0",
        lambda h: fitpipe.adapt(X, batch_size=0),
        ValueError,
        BATCH,
        caller="adapt",
        names=("batch_size",),
        expected="positive integer",
        received=r"batch_size=0 \(of type int\)",
    ),
    # ----------------------------------------------------------------------------- epochs
    case(
        "fit-epochs-below-initial-epoch",
        lambda h: fit(h, X, Y, epochs=1, initial_epoch=3),
        ValueError,
        "`epochs` smaller than `initial_epoch`",
        names=("epochs", "initial_epoch"),
        expected="final epoch",
        received=r"epochs=1 \(of type int\), initial_epoch=3",
    ),
    case(
        "fit-epochs-negative",
        lambda h: fit(h, X, Y, epochs=-1),
        ValueError,
        "got an invalid `epochs`",
        names=("epochs",),
        expected="non-negative integer",
        received=r"epochs=-1 \(of type int\)",
    ),
    case(
        "fit-initial-epoch-negative",
        lambda h: fit(h, X, Y, initial_epoch=-1),
        ValueError,
        "got an invalid `initial_epoch`",
        names=("initial_epoch",),
        expected="non-negative integer",
        received=r"initial_epoch=-1",
    ),
    # ------------------------------------------------------------------- validation_split
    case(
        "fit-validation-split-1",
        lambda h: fit(h, X, Y, validation_split=1.0),
        ValueError,
        SPLIT,
        names=("validation_split",),
        expected=r"\[0, 1\)",
        received=r"validation_split=1.0 \(of type float\)",
    ),
    case(
        "fit-validation-split-1.5",
        lambda h: fit(h, X, Y, validation_split=1.5),
        ValueError,
        SPLIT,
        names=("validation_split",),
        expected=r"\[0, 1\)",
        received=r"validation_split=1.5",
    ),
    case(
        "fit-validation-split-negative",
        lambda h: fit(h, X, Y, validation_split=-0.1),
        ValueError,
        SPLIT,
        names=("validation_split",),
        expected=r"\[0, 1\)",
        received=r"validation_split=-0.1",
    ),
    case(
        "fit-validation-split-string",
        lambda h: fit(h, X, Y, validation_split="0.2"),
        ValueError,
        SPLIT,
        names=("validation_split",),
        expected=r"\[0, 1\)",
        received=r"validation_split='0.2' \(of type str\)",
    ),
    # -------------------------------------------------------------------- validation_data
    case(
        "fit-validation-data-1-tuple",
        lambda h: fit(h, X, Y, validation_data=(X,)),
        ValueError,
        UNPACK_VAL,
        names=("validation_data",),
        expected=r"\(x_val, y_val\)",
        received=r"of type tuple",
    ),
    case(
        "fit-validation-data-4-tuple",
        lambda h: fit(h, X, Y, validation_data=(X, Y, np.ones(8), np.ones(8))),
        ValueError,
        UNPACK_VAL,
        names=("validation_data",),
        expected=r"\(x_val, y_val, val_sample_weight\)",
        received=r"of type tuple",
    ),
    case(
        "fit-validation-data-namedtuple",
        lambda h: fit(h, X, Y, validation_data=Pair(X, Y)),
        ValueError,
        UNPACK_VAL,
        names=("validation_data",),
        expected="plain tuple",
        received=r"of type Pair",
    ),
    case(
        "fit-validation-data-list-of-4",
        lambda h: fit(h, X, Y, validation_data=[X, Y, np.ones(8), np.ones(8)]),
        ValueError,
        "validation_data",
        names=("validation_data",),
        expected="tuple",
        received=r"of type list",
    ),
    # ----------------------------------------------------------------------- class_weight
    case(
        "fit-class-weight-string-key",
        lambda h: fit(h, X, Y3, class_weight={"cat": 1.0}, trainer="classifier"),
        TypeError,
        "non-integer `class_weight` key 'cat'",
        names=("class_weight",),
        expected=r"class indices: ints, or strings of digits",
        received=r"class_weight=\{'cat': 1.0\}",
    ),
    case(
        "fit-class-weight-float-key",
        lambda h: fit(h, X, Y3, class_weight={0.5: 1.0}, trainer="classifier"),
        TypeError,
        "non-integer `class_weight` key 0.5",
        names=("class_weight",),
        expected=r"class indices: ints, or strings of digits",
        received=r"class_weight=\{0.5: 1.0\}",
    ),
    case(
        "fit-class-weight-negative-weight",
        lambda h: fit(h, X, Y3, class_weight={0: -1.0}, trainer="classifier"),
        ValueError,
        "weight -1.0 for class 0",
        names=("class_weight",),
        expected="non-negative",
        received=r"class_weight=\{0: -1.0\}",
    ),
    case(
        "fit-class-weight-nan",
        lambda h: fit(h, X, Y3, class_weight={1: float("nan")}, trainer="classifier"),
        ValueError,
        "weight nan for class 1",
        names=("class_weight",),
        expected="finite",
        received=r"class_weight=\{1: nan\}",
    ),
    case(
        "fit-class-weight-negative-class",
        lambda h: fit(h, X, Y3, class_weight={-5: 1.0}, trainer="classifier"),
        ValueError,
        "class -5 in `class_weight`, outside the classes",
        names=("class_weight",),
        expected="non-negative",
        received=r"class_weight=\{-5: 1.0\}",
    ),
    case(
        "fit-class-weight-not-a-dict",
        lambda h: fit(h, X, Y3, class_weight=[1.0, 2.0], trainer="classifier"),
        TypeError,
        "`class_weight` that is not a dict",
        names=("class_weight",),
        expected="maps class indices",
        received=r"of type list",
    ),
    case(
        "fit-class-weight-multi-output",
        lambda h: fit(h, X, [Y3, Y], class_weight={0: 2.0}, trainer="two_outputs"),
        ValueError,
        "one `class_weight` map for targets `y` given as a list of 2 target",
        names=("class_weight", "y"),
        expected="a map per output name",
        received=r"y=.*of type tuple",
    ),
    # ---------------------------------------------------------------------- sample_weight
    case(
        "fit-sample-weight-rank-3",
        lambda h: fit(h, X, Y, sample_weight=np.ones((8, 1, 1))),
        ValueError,
        r"`sample_weight` of shape \(None, 1, 1\) for loss values of shape \(None,\)",
        names=("sample_weight",),
        expected=r"`\(samples,\)`",
        received=r"shape \(None, 1, 1\)",
    ),
    case(
        "fit-sample-weight-strings",
        lambda h: fit(h, X, Y, sample_weight=np.array(["a"] * 8)),
        TypeError,
        "non-numeric `sample_weight`",
        names=("sample_weight",),
        expected="numbers",
        received=r"dtype str",
    ),
    case(
        "fit-sample-weight-scalar",
        lambda h: fit(h, X, Y, sample_weight=2.0),
        TypeError,
        "cannot use the scalar `sample_weight` as an array",
        names=("sample_weight",),
        expected="one entry per sample",
        received=r"sample_weight=2.0 \(of type float\)",
    ),
    case(
        "evaluate-sample-weight-without-y",
        lambda h: evaluate(h, X, sample_weight=np.ones(8)),
        ValueError,
        "`sample_weight` without `y`",
        caller="evaluate",
        names=("sample_weight", "y"),
        expected="against targets",
        received=r"shape \(8,\)",
    ),
    case(
        "fit-sample-weight-wrong-width",
        lambda h: fit(h, X, Y, sample_weight=np.ones((8, 3))),
        ValueError,
        "sample_weight",
        names=("sample_weight",),
        expected=r"\(samples,\)|sequence_length",
        received=r"shape \(None, 3\)",
    ),
    case(
        "fit-sample-weight-dict-single-output",
        lambda h: fit(h, X, Y, sample_weight={"a": np.ones(8)}),
        ValueError,
        "sample_weight",
        names=("sample_weight",),
        expected="output",
        received=r"of type dict",
    ),
    # --------------------------------------------------------------------- targets vs model
    case(
        "fit-missing-y",
        lambda h: fit(h, X),
        ValueError,
        "`y`",
        names=("y",),
        expected="target",
        received=r"y=None",
    ),
    case(
        "fit-y-wrong-width",
        lambda h: fit(h, X, np.zeros((8, 5), "float32"), trainer="classifier"),
        ValueError,
        "`y`",
        names=("y",),
        expected=r"\(None, 3\)",
        received=r"\(None, 5\)|\(8, 5\)",
    ),
    case(
        "fit-too-few-targets-for-two-outputs",
        lambda h: fit(h, X, [Y3], trainer="two_outputs"),
        ValueError,
        "`y`",
        names=("y",),
        expected="2",
        received="1",
    ),
    # ------------------------------------------------------------------------- generators
    case(
        "fit-generator-inconsistent-shapes",
        lambda h: fit(
            h, batches((X[:2], Y[:2]), (X[:2], Y[:2]), (np.zeros((2, 5), "float32"), Y[:2]))
        ),
        ValueError,
        "batch 2 from the generator whose `x` has a shape unlike the first batches",
        names=("shape",),
        expected=r"expected shape \(None, 4\)",
        received=r"\(2, 5\)",
    ),
    case(
        "fit-generator-inconsistent-peeked-shapes",
        # Differing first batches relax the signature (as Keras does, for variable-length
        # data); the batch that does not fit the model then fails the model's step, which
        # fitpipe reports with the batches' shapes.
        lambda h: fit(h, batches((X[:2], Y[:2]), (np.zeros((2, 5), "float32"), Y[:2]))),
        ValueError,
        "could not run the model",
        names=("batches",),
        expected="fit the model's inputs",
        received=r"float32\(None, None\)",
    ),
    case(
        "fit-generator-inconsistent-structures",
        lambda h: fit(h, batches((X[:2], Y[:2]), (X[:2],))),
        ValueError,
        "batch 1 from the generator with a structure unlike the first batches",
        names=("generator",),
        expected=r"structure of the first ones: \(x: array, y: array\)",
        received=r"batch=1 \(counted from 0\), \(x: array\)",
    ),
    case(
        "fit-generator-4-tuple",
        lambda h: fit(h, batches((X[:2], Y[:2], np.ones(2), np.ones(2)))),
        ValueError,
        r"got 4 input array\(s\) for a model with 1 input",
        names=("x",),
        expected="model's inputs",
        received=r"4 array\(s\)",
    ),
    case(
        "fit-generator-list-batch",
        lambda h: fit(h, batches([X[:2], Y[:2]], [X[2:4], Y[2:4]])),
        ValueError,
        r"(?s)got 2 input array\(s\) for a model with 1 input.*yield or return `\(x, y\)`",
        names=("x",),
        expected="model's inputs",
        received=r"2 array\(s\)",
    ),
    case(
        "predict-py-dataset-list-batch",
        lambda h: predict(h, ListBatches()),
        ValueError,
        r"(?s)got 3 input array\(s\) for a model with 1 input.*yield or return `\(x, y\)`",
        caller="predict",
        names=("x",),
        expected="model's inputs",
        received=r"3 array\(s\)",
    ),
    case(
        "fit-generator-namedtuple",
        lambda h: fit(h, batches(Pair(X[:2], Y[:2]))),
        ValueError,
        "cannot unpack a namedtuple yielded by the generator",
        names=("namedtuple",),
        expected="plain tuple",
        received=r"of type Pair",
    ),
    case(
        "fit-generator-empty",
        lambda h: fit(h, batches()),
        ValueError,
        "generator that yields nothing",
        names=("x",),
        expected="at least one batch",
        received=r"of type generator",
    ),
    case(
        "fit-generator-scalars",
        lambda h: fit(h, batches(1, 2)),
        ValueError,
        "no batch dimension",
        names=("batch",),
        expected="first \\(sample\\) dimension",
        received=r"batch=0 \(counted from 0\), `x` of shape \(\)",
    ),
    case(
        "fit-generator-yields-none",
        lambda h: fit(h, batches(None)),
        ValueError,
        "batch without inputs from the generator",
        names=("x",),
        expected="first element",
        received=r"element=None",
    ),
    case(
        "fit-tf-dataset-namedtuple",
        lambda h: fit(h, tf.data.Dataset.from_tensors(Pair(X, Y))),
        ValueError,
        "cannot unpack a namedtuple yielded by the tf.data.Dataset",
        names=("namedtuple",),
        expected="plain tuple",
        received=r"of type Pair",
    ),
    # ------------------------------------------------------------------------ step counts
    case(
        "fit-steps-per-epoch-0",
        lambda h: fit(h, X, Y, steps_per_epoch=0),
        ValueError,
        "got an invalid `steps_per_epoch`",
        names=("steps_per_epoch",),
        expected="a positive integer below 2\\*\\*63, or -1",
        received=r"steps_per_epoch=0 \(of type int\)",
    ),
    case(
        "fit-steps-per-epoch-float",
        lambda h: fit(h, X, Y, steps_per_epoch=1.5),
        ValueError,
        "got an invalid `steps_per_epoch`",
        names=("steps_per_epoch",),
        expected="positive integer",
        received=r"steps_per_epoch=1.5 \(of type float\)",
    ),
    case(
        "fit-steps-per-epoch-minus-2",
        lambda h: fit(h, X, Y, steps_per_epoch=-2),
        ValueError,
        "got an invalid `steps_per_epoch`",
        names=("steps_per_epoch",),
        expected="positive integer",
        received=r"steps_per_epoch=-2",
    ),
    case(
        "fit-validation-steps-0",
        lambda h: fit(h, X, Y, validation_split=0.5, validation_steps=0),
        ValueError,
        "got an invalid `validation_steps`",
        names=("validation_steps",),
        expected="positive integer",
        received=r"validation_steps=0",
    ),
    case(
        "evaluate-steps-negative",
        lambda h: evaluate(h, X, Y, steps=-1),
        ValueError,
        "got an invalid `steps`",
        caller="evaluate",
        names=("steps",),
        expected="`steps` is None or a positive integer below 2\\*\\*63",
        received=r"steps=-1",
    ),
    case(
        "predict-steps-string",
        lambda h: predict(h, X, steps="3"),
        ValueError,
        "got an invalid `steps`",
        caller="predict",
        names=("steps",),
        expected="positive integer",
        received=r"steps='3' \(of type str\)",
    ),
    case(
        "adapt-steps-0",
        lambda h: fitpipe.adapt(X, steps=0),
        ValueError,
        "got an invalid `steps`",
        caller="adapt",
        names=("steps",),
        expected="positive integer",
        received=r"steps=0",
    ),
    case(
        "fit-infinite-dataset-without-steps",
        lambda h: fit(h, infinite()),
        ValueError,
        NEVER_ENDS,
        names=("steps_per_epoch",),
        expected="infinitely repeating input needs `steps_per_epoch`",
        received=r"x=<_RepeatDataset .*\(of type _RepeatDataset\)",
    ),
    case(
        "evaluate-infinite-dataset-without-steps",
        lambda h: evaluate(h, infinite()),
        ValueError,
        NEVER_ENDS,
        caller="evaluate",
        names=("steps",),
        expected="needs `steps`",
        received=r"x=<_RepeatDataset .*\(of type _RepeatDataset\)",
    ),
    case(
        "fit-infinite-validation-without-steps",
        lambda h: fit(h, X, Y, validation_data=infinite()),
        ValueError,
        NEVER_ENDS,
        names=("validation_steps",),
        expected="needs `validation_steps`",
        received=r"validation_data=<_RepeatDataset .*\(of type _RepeatDataset\)",
    ),
    # -------------------------------------------------------------------------- verbose
    case(
        "fit-verbose-3",
        lambda h: fit(h, X, Y, verbose=3),
        ValueError,
        "got an invalid `verbose`",
        names=("verbose",),
        expected='"auto", 0',
        received=r"verbose=3 \(of type int\)",
    ),
    case(
        "evaluate-verbose-string",
        lambda h: evaluate(h, X, Y, verbose="loud"),
        ValueError,
        "got an invalid `verbose`",
        caller="evaluate",
        names=("verbose",),
        expected='"auto", 0',
        received=r"verbose='loud'",
    ),
    case(
        "predict-verbose-negative",
        lambda h: predict(h, X, verbose=-1),
        ValueError,
        "got an invalid `verbose`",
        caller="predict",
        names=("verbose",),
        expected='"auto", 0',
        received=r"verbose=-1 \(of type int\)",
    ),
    # ------------------------------------------------------------------------ callbacks
    case(
        "fit-callback-function",
        lambda h: fit(h, X, Y, callbacks=[lambda: None]),
        TypeError,
        CALLBACKS,
        names=("callbacks",),
        expected=r"`keras.callbacks.Callback` instances",
        received=r"of type function",
    ),
    case(
        "fit-callback-class-not-instance",
        lambda h: fit(h, X, Y, callbacks=[keras.callbacks.History]),
        TypeError,
        CALLBACKS,
        names=("callbacks",),
        expected=r"`keras.callbacks.Callback` instances",
        received=r"of type type",
    ),
    case(
        "fit-callback-nested-function",
        lambda h: fit(h, X, Y, callbacks=[[keras.callbacks.History(), print]]),
        TypeError,
        CALLBACKS + r" in `callbacks`: `callbacks\[0\]\[1\]` is not a Keras callback",
        names=("callbacks",),
        expected=r"`keras.callbacks.Callback` instances",
        received=r"callbacks\[0\]\[1\]=<built-in function print>",
    ),
    case(
        "evaluate-callbacks-string",
        lambda h: evaluate(h, X, Y, callbacks="progbar"),
        TypeError,
        CALLBACKS,
        caller="evaluate",
        names=("callbacks",),
        expected=r"`keras.callbacks.Callback` instances",
        received=r"callbacks='progbar'",
    ),
    # ------------------------------------------------------------------ validation_freq
    case(
        "fit-validation-freq-0",
        lambda h: fit(h, X, Y, validation_split=0.5, validation_freq=0),
        ValueError,
        FREQ,
        names=("validation_freq",),
        expected="positive integer",
        received=r"validation_freq=0 \(of type int\)",
    ),
    case(
        "fit-validation-freq-empty-list",
        lambda h: fit(h, X, Y, validation_split=0.5, validation_freq=[]),
        ValueError,
        FREQ,
        names=("validation_freq",),
        expected="list of 1-based epoch numbers",
        received=r"validation_freq=\[\]",
    ),
    case(
        "fit-validation-freq-strings",
        lambda h: fit(h, X, Y, validation_split=0.5, validation_freq=["a"]),
        ValueError,
        FREQ,
        names=("validation_freq",),
        expected="list of 1-based epoch numbers",
        received=r"validation_freq=\['a'\]",
    ),
    # --------------------------------------------- arguments a tf.data.Dataset cannot take
    case(
        "fit-dataset-with-y",
        lambda h: fit(h, tf.data.Dataset.from_tensors((X, Y)), Y),
        ValueError,
        UNSUPPORTED.format("y"),
        names=("y",),
        expected="second element of each batch",
        received=r"y=array of shape \(8, 1\)",
    ),
    case(
        "fit-dataset-with-sample-weight",
        lambda h: fit(h, tf.data.Dataset.from_tensors((X, Y)), sample_weight=np.ones(8)),
        ValueError,
        UNSUPPORTED.format("sample_weight"),
        names=("sample_weight",),
        expected="third element of each batch",
        received=r"sample_weight=array of shape \(8,\)",
    ),
    case(
        "fit-dataset-with-batch-size",
        lambda h: fit(h, tf.data.Dataset.from_tensors((X, Y)), batch_size=4),
        ValueError,
        UNSUPPORTED.format("batch_size"),
        names=("batch_size",),
        expected="already yields batches",
        received=r"batch_size=4",
    ),
    # ---------------------------------------------------------------- misc. arguments
    case(
        "evaluate-unknown-kwarg",
        lambda h: evaluate(h, X, Y, foo=1),
        ValueError,
        r"unexpected keyword argument 'foo'",
        caller="evaluate",
        names=("foo",),
        expected="takes x, y, batch_size",
        received=r"foo=1 \(of type int\)",
    ),
    case(
        "compile-steps-per-execution-0",
        lambda h: h.dense_trainer().compile("sgd", "mse", steps_per_execution=0),
        ValueError,
        "got an invalid `steps_per_execution`",
        caller="compile",
        names=("steps_per_execution",),
        expected='positive integer or "auto"',
        received=r"steps_per_execution=0 \(of type int\)",
    ),
    case(
        "compile-steps-per-execution-string",
        lambda h: h.dense_trainer().compile("sgd", "mse", steps_per_execution="fast"),
        ValueError,
        "got an invalid `steps_per_execution`",
        caller="compile",
        names=("steps_per_execution",),
        expected='positive integer or "auto"',
        received=r"steps_per_execution='fast'",
    ),
    case(
        "compile-steps-per-execution-float",
        lambda h: h.dense_trainer().compile("sgd", "mse", steps_per_execution=2.0),
        ValueError,
        "got an invalid `steps_per_execution`",
        caller="compile",
        names=("steps_per_execution",),
        expected='positive integer or "auto"',
        received=r"steps_per_execution=2.0 \(of type float\)",
    ),
    case(
        "fit-shuffle-string",
        lambda h: fit(h, X, Y, shuffle="yes"),
        TypeError,
        "got an invalid `shuffle`",
        names=("shuffle",),
        expected='True, False, or "batch"',
        received=r"shuffle='yes' \(of type str\)",
    ),
    case(
        "fit-x-none",
        lambda h: fit(h, None, Y),
        ValueError,
        "got no input",
        names=("x",),
        expected="data to train on",
        received=r"x=None",
    ),
    case(
        "adapt-int",
        lambda h: fitpipe.adapt(5),
        TypeError,
        "found no adapter for the input `x`",
        caller="adapt",
        names=("x",),
        expected="registered adapters: 'tf.data'",
        received=r"x=5 \(of type int\)",
    ),
    case(
        "adapt-ragged-nested-list",
        lambda h: fitpipe.adapt([[1, 2], [3]]),
        ValueError,
        "cannot convert `x` to an array",
        caller="adapt",
        names=("x",),
        expected="equal-length rows",
        received=r"x=\[\[1, 2\], \[3\]\]",
    ),
    case(
        "adapt-namedtuple",
        lambda h: fitpipe.adapt(Pair(X, Y)),
        ValueError,
        "cannot use a namedtuple in `x`",
        caller="adapt",
        names=("x",),
        expected="plain tuples, lists or dicts",
        received=r"of type Pair",
    ),
    case(
        "adapt-shuffle-not-bool",
        lambda h: fitpipe.adapt(X, shuffle=1),
        TypeError,
        "got an invalid `shuffle`",
        caller="adapt",
        names=("shuffle",),
        expected='True, False, or "batch"',
        received=r"shuffle=1 \(of type int\)",
    ),
]


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_raises_clear_error(bad: Case, rel: Any) -> None:
    with pytest.raises(bad.exc, match=bad.match) as info:
        bad.call(rel)
    rel.check_clear_error(info.value, bad.caller, bad.names, bad.expected, bad.received)


def test_catalogue_is_large_and_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


def test_validation_data_list_is_unpacked_like_a_tuple(rel: Any) -> None:
    trainer = rel.dense_trainer()
    history = trainer.fit(X, Y, epochs=1, verbose=0, validation_data=[X, Y])
    assert "val_loss" in history.history
