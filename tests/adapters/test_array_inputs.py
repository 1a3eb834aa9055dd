"""Row-addressed input forms: arrays, array-likes, lists, dicts, tensors, pandas objects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import fitpipe
from fitpipe.adapters import AdaptRequest, ArraySource
from fitpipe.adapters.numbers import dtype_refusal
from fitpipe.pipeline import adapt_source
from fitpipe.testing import epoch_batches

X = np.arange(20, dtype="float32").reshape(10, 2)
Y = np.arange(10, dtype="int64")


class ArrayLike:
    """An object exposing only ``__array__`` (and ``__len__``), like many array libraries."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._data if dtype is None else self._data.astype(dtype)

    def __len__(self) -> int:
        return len(self._data)


def concat(batches: list[Any], part: int) -> np.ndarray:
    return np.concatenate([np.asarray(b[part]) for b in batches])


def test_numpy_arrays_batch_in_order_keeping_the_last_partial_batch() -> None:
    pipeline = fitpipe.adapt(X, Y, batch_size=4)
    assert pipeline.adapter == "numpy"
    assert pipeline.num_batches == 3
    assert pipeline.batch_size == 4
    batches = epoch_batches(pipeline)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(concat(batches, 0), X)
    np.testing.assert_array_equal(concat(batches, 1), Y)
    spec = pipeline.element_spec
    assert spec[0].shape.as_list() == [None, 2]
    assert spec[0].dtype == tf.float32
    assert spec[1].dtype == tf.int64


def test_batch_forms_x_only_xy_and_xy_sw() -> None:
    sw = np.linspace(0.5, 1.0, 10).astype("float32")
    assert len(epoch_batches(fitpipe.adapt(X))[0]) == 1
    assert len(epoch_batches(fitpipe.adapt(X, Y))[0]) == 2
    (batch,) = epoch_batches(fitpipe.adapt(X, Y, sw))
    assert len(batch) == 3
    np.testing.assert_allclose(batch[2], sw)


def test_default_batch_size_is_32() -> None:
    data = np.zeros((70, 1), "float32")
    pipeline = fitpipe.adapt(data)
    assert pipeline.batch_size == 32
    assert pipeline.num_batches == 3
    assert [len(b[0]) for b in epoch_batches(pipeline)] == [32, 32, 6]


def test_steps_sets_the_batch_size() -> None:
    pipeline = fitpipe.adapt(X, steps=3)
    assert pipeline.batch_size == 4
    assert pipeline.num_batches == 3


@pytest.mark.parametrize(
    "value",
    [
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]],
        ((0, 1), (2, 3), (4, 5)),
        ArrayLike(np.arange(6, dtype="float32").reshape(3, 2)),
    ],
    ids=["nested-list", "nested-tuple", "__array__"],
)
def test_array_likes(value: Any) -> None:
    pipeline = fitpipe.adapt(value, [0, 1, 0], batch_size=2)
    assert pipeline.adapter == "numpy"
    batches = epoch_batches(pipeline)
    np.testing.assert_array_equal(concat(batches, 0), np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(concat(batches, 1), [0, 1, 0])


def test_flat_list_of_numbers_is_one_array() -> None:
    pipeline = fitpipe.adapt([1.0, 2.0, 3.0])
    assert pipeline.adapter == "numpy"
    np.testing.assert_array_equal(epoch_batches(pipeline)[0][0], [1.0, 2.0, 3.0])


def test_string_arrays() -> None:
    text = np.array(["a", "bb", "ccc"], dtype=object)
    (batch,) = epoch_batches(fitpipe.adapt(text, [1, 2, 3]))
    assert batch[0].tolist() == [b"a", b"bb", b"ccc"]


@pytest.mark.parametrize("container", [list, tuple])
def test_list_or_tuple_of_arrays_is_a_multi_input(container: type) -> None:
    other = np.arange(10, dtype="float32")
    pipeline = fitpipe.adapt(container([X, other]), Y, batch_size=6)
    assert pipeline.adapter == "sequence"
    x_spec = pipeline.element_spec[0]
    assert isinstance(x_spec, tuple)
    assert len(x_spec) == 2
    batches = epoch_batches(pipeline)
    np.testing.assert_array_equal(np.concatenate([b[0][0] for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[0][1] for b in batches]), other)
    np.testing.assert_array_equal(concat(batches, 1), Y)


def test_dict_of_arrays_keeps_names() -> None:
    other = np.arange(10, dtype="float32")
    pipeline = fitpipe.adapt({"a": X, "b": other}, {"out": Y}, batch_size=4)
    assert pipeline.adapter == "mapping"
    assert set(pipeline.element_spec[0]) == {"a", "b"}
    batches = epoch_batches(pipeline)
    np.testing.assert_array_equal(np.concatenate([b[0]["a"] for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[0]["b"] for b in batches]), other)
    np.testing.assert_array_equal(np.concatenate([b[1]["out"] for b in batches]), Y)


def test_nested_structures_of_arrays() -> None:
    x = {"a": [X, X[:, :1]], "b": X[:, 0]}
    (batch,) = epoch_batches(fitpipe.adapt(x, Y, batch_size=10))
    np.testing.assert_array_equal(batch[0]["a"][1], X[:, :1])
    np.testing.assert_array_equal(batch[0]["b"], X[:, 0])


def test_dense_tensor() -> None:
    pipeline = fitpipe.adapt(tf.constant(X), tf.constant(Y), batch_size=3)
    assert pipeline.adapter == "tensor"
    batches = epoch_batches(pipeline)
    assert [len(b[0]) for b in batches] == [3, 3, 3, 1]
    np.testing.assert_array_equal(concat(batches, 0), X)
    np.testing.assert_array_equal(concat(batches, 1), Y)


def test_variable_is_read_as_a_tensor() -> None:
    pipeline = fitpipe.adapt(tf.Variable(X), Y, batch_size=5)
    assert pipeline.adapter == "tensor"
    np.testing.assert_array_equal(concat(epoch_batches(pipeline), 0), X)


RAGGED_ROWS = [[1], [2, 3], [], [4, 5, 6], [7], [8, 9]]


def ragged_batches(pipeline: Any) -> list[tuple[list[Any], list[int]]]:
    return [(b[0].to_list(), b[1].numpy().tolist()) for b in pipeline.dataset]


def test_ragged_tensor_in_order() -> None:
    ragged = tf.ragged.constant(RAGGED_ROWS)
    pipeline = fitpipe.adapt(ragged, np.arange(6), batch_size=4)
    assert pipeline.adapter == "tensor"
    assert isinstance(pipeline.element_spec[0], tf.RaggedTensorSpec)
    assert ragged_batches(pipeline) == [
        (RAGGED_ROWS[:4], [0, 1, 2, 3]),
        (RAGGED_ROWS[4:], [4, 5]),
    ]


def test_ragged_tensor_shuffled_keeps_rows_with_their_targets(seeded: Any) -> None:
    seeded(1)
    pipeline = fitpipe.adapt(
        tf.ragged.constant(RAGGED_ROWS), np.arange(6), batch_size=4, shuffle=True
    )
    orders = []
    for _ in range(3):
        rows, ids = [], []
        for values, targets in ragged_batches(pipeline):
            rows += values
            ids += targets
        assert sorted(ids) == list(range(6))
        assert rows == [RAGGED_ROWS[i] for i in ids]
        orders.append(ids)
    assert len({tuple(o) for o in orders}) > 1


DENSE_FOR_SPARSE = np.array(
    [[1, 0, 0], [0, 0, 0], [0, 2, 3], [4, 0, 0], [0, 0, 5], [6, 7, 8], [0, 0, 0]],
    dtype="float32",
)


def test_sparse_tensor_in_order() -> None:
    sparse = tf.sparse.from_dense(DENSE_FOR_SPARSE)
    pipeline = fitpipe.adapt(sparse, np.arange(7), batch_size=3)
    assert pipeline.adapter == "tensor"
    assert isinstance(pipeline.element_spec[0], tf.SparseTensorSpec)
    batches = epoch_batches(pipeline)
    assert [b[0].shape for b in batches] == [(3, 3), (3, 3), (1, 3)]
    np.testing.assert_array_equal(concat(batches, 0), DENSE_FOR_SPARSE)


def test_sparse_tensor_with_unordered_indices() -> None:
    sparse = tf.SparseTensor(
        indices=[[2, 1], [0, 0], [2, 0]], values=[3.0, 1.0, 2.0], dense_shape=[3, 2]
    )
    (batch,) = epoch_batches(fitpipe.adapt(sparse, batch_size=3))
    np.testing.assert_array_equal(batch[0], [[1, 0], [0, 0], [2, 3]])


def test_sparse_tensor_shuffled_keeps_rows_with_their_targets(seeded: Any) -> None:
    seeded(2)
    sparse = tf.sparse.from_dense(DENSE_FOR_SPARSE)
    pipeline = fitpipe.adapt(sparse, np.arange(7), batch_size=3, shuffle=True)
    orders = []
    for _ in range(3):
        batches = epoch_batches(pipeline)
        dense, ids = concat(batches, 0), concat(batches, 1)
        assert sorted(ids.tolist()) == list(range(7))
        np.testing.assert_array_equal(dense, DENSE_FOR_SPARSE[ids])
        orders.append(tuple(ids))
    assert len(set(orders)) > 1


def test_pandas_dataframe_and_series() -> None:
    frame = pd.DataFrame({"a": np.arange(5, dtype="float64"), "b": np.arange(5, 10)})
    target = pd.Series([0, 1, 0, 1, 1], name="label")
    weights = pd.Series(np.linspace(1, 2, 5))
    pipeline = fitpipe.adapt(frame, target, weights, batch_size=2)
    assert pipeline.adapter == "pandas"
    batches = epoch_batches(pipeline)
    np.testing.assert_array_equal(concat(batches, 0), frame.to_numpy())
    np.testing.assert_array_equal(concat(batches, 1), target.to_numpy())
    np.testing.assert_allclose(concat(batches, 2), weights.to_numpy())


def _digits_frame() -> pd.DataFrame:
    frame = pd.DataFrame({"id": np.arange(6), "px0": np.ones(6), "px1": np.zeros(6)})
    frame["name"] = [f"d{i}" for i in range(6)]
    frame["when"] = pd.Timestamp("2024-01-01")
    frame["label"] = np.arange(6) % 2
    return frame


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda f: f, "x"),
        (lambda f: {"pixels": f}, "x['pixels']"),
        (lambda f: [f, f], "x[0]"),
    ],
    ids=["frame", "dict", "list"],
)
def test_frame_with_text_columns_suggests_selecting_columns_or_a_schema(make, path) -> None:
    with pytest.raises(TypeError) as info:
        fitpipe.adapt(make(_digits_frame()), np.zeros(6))
    text = str(info.value)
    assert f"cannot read `{path}`, a pandas DataFrame with non-numeric columns" in text
    assert "['name', 'when']" in text and ".drop(columns=['name', 'when'])" in text
    assert "pass `schema=`" in text and "np.asarray" not in text
    assert "DataFrame of shape (6, 6) with columns ['id', 'px0'" in text


def test_frame_with_mixed_object_columns_suggests_a_schema_not_a_float_cast() -> None:
    frame = pd.DataFrame({k: ["s"] * 2 + [1.0] * 2 for k in "ab"})
    with pytest.raises(TypeError, match="object-dtype array holding float, str") as info:
        fitpipe.adapt(frame, np.zeros(4))
    assert "pass `schema=`" in str(info.value) and "np.asarray" not in str(info.value)


def test_frame_of_text_or_numbers_only_is_still_one_array() -> None:
    text = pd.DataFrame({"a": ["x", "y"], "b": ["z", "w"]})
    assert fitpipe.adapt(text).element_spec[0].dtype == tf.string
    numbers = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": [3, 4]})
    assert fitpipe.adapt(numbers).element_spec[0].shape.as_list() == [None, 3]


def test_pandas_series_as_x() -> None:
    pipeline = fitpipe.adapt(pd.Series([1.5, 2.5, 3.5]))
    assert pipeline.adapter == "pandas"
    np.testing.assert_array_equal(epoch_batches(pipeline)[0][0], [1.5, 2.5, 3.5])


def test_pandas_targets_with_numpy_features() -> None:
    pipeline = fitpipe.adapt(X, pd.Series(Y))
    assert pipeline.adapter == "numpy"
    np.testing.assert_array_equal(epoch_batches(pipeline)[0][1], Y)


def test_numpy_leaves_are_not_copied() -> None:
    request = AdaptRequest(x=X, y=Y, sample_weight=np.ones(10, "float32"))
    adapter, source = adapt_source(request)
    assert adapter.name == "numpy"
    assert isinstance(source, ArraySource)
    assert source.num_samples == 10
    assert source.x is X
    assert source.y is Y


def test_pipeline_close_and_context_manager_are_harmless_for_arrays() -> None:
    with fitpipe.adapt(X) as pipeline:
        pipeline.on_epoch_end()
        assert pipeline.take_error() is None
        assert pipeline.finite
    pipeline.close()
    assert "numpy" in repr(pipeline)


def _ml_dtypes() -> list[np.dtype]:
    import ml_dtypes

    names = [n for n in dir(ml_dtypes) if n.startswith(("bfloat", "float", "int", "uint"))]
    found = []
    for name in names:
        try:
            found.append(np.dtype(getattr(ml_dtypes, name)))
        except TypeError:
            continue  # finfo, iinfo
    return found


def _tensorflow_takes(values: np.ndarray) -> bool:
    """Whether TensorFlow casts ``values`` to floats, and batches them (float8 it cannot)."""
    if values.dtype.itemsize < 2:
        return False
    try:
        tf.cast(tf.convert_to_tensor(values), tf.float32)
    except (TypeError, ValueError, tf.errors.OpError):
        return False
    return True


@pytest.mark.parametrize("dtype", _ml_dtypes(), ids=str)
def test_ml_dtypes_arrays_are_taken_when_tensorflow_computes_with_them(dtype: np.dtype) -> None:
    """bfloat16, float8 and the like, as JAX hands them out: taken as Keras takes them.

    Those TensorFlow converts and casts to floats are batched as they are (``bfloat16`` was
    refused as "not numbers"); the others are refused naming the dtype, dense or sparse.
    """
    values = np.array([[0, 1], [1, 0], [1, 1], [0, 0]]).astype(dtype)
    if _tensorflow_takes(values):
        (batch,) = epoch_batches(fitpipe.adapt(values, batch_size=4))
        assert batch[0].dtype == dtype
        np.testing.assert_array_equal(batch[0].astype("float32"), values.astype("float32"))
        return
    with pytest.raises(fitpipe.errors.FitpipeTypeError, match=f"of dtype {dtype}, which Tensor"):
        fitpipe.adapt(values)
    refusal = dtype_refusal("x", dtype, sparse=True)  # (JAX's BCOO arrays hold them)
    assert refusal is not None
    assert f"sparse `x` of dtype {dtype}, which TensorFlow" in refusal[0]


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_ml_dtypes_arrays_train_and_predict_as_in_keras(dtype: str) -> None:
    import keras
    import ml_dtypes

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(getattr(ml_dtypes, dtype))
    y = rng.normal(size=(16, 1)).astype("float32")

    def model() -> keras.Model:
        keras.utils.set_random_seed(0)
        built = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        built.compile(optimizer="sgd", loss="mse")
        return built

    want = model().fit(x, y, batch_size=8, shuffle=False, verbose=0).history["loss"]
    trainer = fitpipe.Trainer(model())
    got = trainer.fit(x, y, batch_size=8, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(
        trainer.predict_on_batch(x[:2]), trainer.model.predict_on_batch(x[:2]), rtol=1e-6
    )
