"""Differential tests: input forms and arguments Keras takes, trained on Keras and on fitpipe.

Each case trains a Keras model and a fitpipe twin from the same initial weights on the same
data and compares histories, ``evaluate``, ``predict`` and the final weights.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from differential import classification_data, dense_model

import fitpipe
from fitpipe.testing.keras_diff import Side, run_both

XC, LABELS = classification_data(n=96, d=6, classes=3)
CLASS_WEIGHT = {0: 0.5, 1: 2.0, 2: 1.25}
CLS_COMPILE = {
    "optimizer": "adam",
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "weighted_metrics": ["accuracy"],
}


def _cls() -> keras.Model:
    return dense_model(d=6, units=3, activation="softmax")


# ------------------------------------------------------------------ class_weight keys


def test_digit_string_class_weight_keys_train_like_int_keys() -> None:
    # Keras 3.16 reads {"0": ...} keys as class indices; the oracle here (3.15) is given ints.
    def fit_kwargs(side: Side) -> dict[str, Any]:
        weights: dict[Any, float] = dict(CLASS_WEIGHT)
        if side == "fitpipe":
            weights = {str(k): v for k, v in CLASS_WEIGHT.items()}
        return {"x": XC, "y": LABELS, "batch_size": 16, "epochs": 2, "class_weight": weights}

    run_both(_cls, CLS_COMPILE, fit_kwargs)


def test_digit_string_class_weight_keys_in_train_on_batch() -> None:
    from fitpipe.testing.keras_diff import make_twins

    ref, twin = make_twins(_cls)
    ref.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    trainer = fitpipe.Trainer(twin)
    trainer.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    expected = ref.train_on_batch(XC[:16], LABELS[:16], class_weight=CLASS_WEIGHT)
    text = {str(k): v for k, v in CLASS_WEIGHT.items()}
    got = trainer.train_on_batch(XC[:16], LABELS[:16], class_weight=text)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with pytest.raises(TypeError, match="non-integer `class_weight` key 'cat'"):
        trainer.train_on_batch(XC[:16], LABELS[:16], class_weight={"cat": 1.0})


# ------------------------------------------------------------------ sparse inputs

scipy_sparse = pytest.importorskip("scipy.sparse")


def _sparse_data(n: int = 40, d: int = 7, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, d)).astype("float32")
    dense[rng.random((n, d)) < 0.6] = 0.0
    return dense, (dense @ rng.normal(size=(d, 1))).astype("float32")


def _sparse_model(d: int = 7) -> keras.Model:
    inputs = keras.Input((d,), sparse=True)
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


# Every format is checked against the dense rows in tests/adapters/test_sparse_inputs.py.
@pytest.mark.parametrize("form", ["csc_matrix", "coo_array"])
def test_scipy_sparse_trains_like_keras(form: str) -> None:
    dense, y = _sparse_data()
    x = getattr(scipy_sparse, form)(dense)
    # Keras 3.15 slices the entries in the order `tocoo()` gives them, which fails for
    # column-major formats (csc): its side gets the same matrix as CSR. fitpipe sorts them.
    reference = scipy_sparse.csr_matrix(dense)

    def fit_kwargs(side: Side) -> dict[str, Any]:
        return {"x": reference if side == "keras" else x, "y": y, "batch_size": 16, "epochs": 2}

    result = run_both(_sparse_model, {"optimizer": "sgd", "loss": "mse"}, fit_kwargs)
    np.testing.assert_allclose(
        fitpipe.Trainer(result.twin).predict(x, batch_size=16, verbose=0),
        result.ref.predict(reference, batch_size=16, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_scipy_sparse_in_a_dict_with_validation_split_trains_like_keras() -> None:
    dense, y = _sparse_data()

    def build() -> keras.Model:
        sparse = keras.Input((7,), sparse=True, name="tokens")
        extra = keras.Input((2,), name="extra")
        merged = keras.layers.Concatenate()([keras.layers.Dense(3)(sparse), extra])
        return keras.Model({"tokens": sparse, "extra": extra}, keras.layers.Dense(1)(merged))

    x = {"tokens": scipy_sparse.csr_matrix(dense), "extra": dense[:, :2]}
    run_both(
        build,
        {"optimizer": "sgd", "loss": "mse"},
        {"x": x, "y": y, "batch_size": 8, "epochs": 1, "validation_split": 0.25},
        eval_kwargs={"x": x, "y": y, "batch_size": 8},
        predict_x=x,
    )


def test_jax_bcoo_trains_like_keras() -> None:
    from fitpipe.testing import assert_matches_keras

    jax_sparse = pytest.importorskip("jax.experimental.sparse")
    dense, y = _sparse_data()
    # Keras 3.15's TensorFlow trainer reads BCOO through the same conversion as scipy's.
    assert_matches_keras(
        _sparse_model,
        lambda: jax_sparse.BCOO.fromdense(dense),
        y,
        batch_size=16,
        epochs=2,
    )


# ------------------------------------------------------------------ shuffle="batch"


def _linear_loss(y_true: Any, y_pred: Any) -> Any:
    # Its gradient does not depend on the weights, so plain SGD ends an epoch at the same
    # weights whatever the order of the batches: only which rows share a batch matters.
    return keras.ops.mean(y_true * y_pred, axis=-1)


def _linear_model() -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])


def _train_shuffled(shuffle: Any, side: Side) -> np.ndarray:
    from fitpipe.testing.keras_diff import make_twins

    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 3)).astype("float32")
    y = rng.normal(size=(50, 1)).astype("float32")
    ref, twin = make_twins(_linear_model)
    model = ref if side == "keras" else twin
    api: Any = model if side == "keras" else fitpipe.Trainer(model)
    api.compile(optimizer=keras.optimizers.SGD(0.1), loss=_linear_loss)
    keras.utils.set_random_seed(5)
    api.fit(x, y, batch_size=8, epochs=3, shuffle=shuffle, verbose=0)
    return np.asarray(model.get_weights()[0])


def test_batch_shuffle_trains_on_the_batches_keras_does() -> None:
    # Keras 3 keeps the blocks in order and shuffles inside them; fitpipe also moves the
    # blocks, as documented for tf.keras 2 ("shuffles in batch-sized chunks"). The batches
    # hold the same rows, so an order-free loss ends at Keras' weights.
    keras_weights = _train_shuffled("batch", "keras")
    np.testing.assert_allclose(_train_shuffled("batch", "fitpipe"), keras_weights, rtol=1e-5)
    # Any other grouping of rows ends elsewhere.
    assert not np.allclose(_train_shuffled(True, "fitpipe"), keras_weights, rtol=1e-3)


# ------------------------------------------------------------------ PyDataset shuffle


class _RecordingBatches(keras.utils.PyDataset):
    """50 rows in batches of 8, recording which batch is read."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(7)
        self.x = rng.normal(size=(50, 3)).astype("float32")
        self.y = rng.normal(size=(50, 1)).astype("float32")
        self.read: list[int] = []

    def __len__(self) -> int:
        return 7

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.read.append(index)
        return self.x[index * 8 : (index + 1) * 8], self.y[index * 8 : (index + 1) * 8]


@pytest.mark.parametrize("shuffle", [True, False])
def test_pydataset_batches_are_shuffled_every_epoch_as_in_keras(shuffle: bool) -> None:
    from fitpipe.testing.keras_diff import make_twins

    ref, twin = make_twins(_linear_model)
    sides: dict[str, Any] = {"keras": ref, "fitpipe": fitpipe.Trainer(twin)}
    reads = {}
    for side, api in sides.items():
        api.compile(optimizer=keras.optimizers.SGD(0.1), loss=_linear_loss)
        data = _RecordingBatches()
        keras.utils.set_random_seed(3)
        api.fit(data, epochs=3, shuffle=shuffle, verbose=0)
        reads[side] = [data.read[-21:][e * 7 : (e + 1) * 7] for e in range(3)]  # peeks aside
    for side, epochs in reads.items():
        assert all(sorted(order) == list(range(7)) for order in epochs), (side, epochs)
        in_order = all(order == list(range(7)) for order in epochs)
        assert in_order != shuffle, (side, epochs)
    # The same batches every epoch, in another order: an order-free loss ends alike.
    np.testing.assert_allclose(twin.get_weights()[0], ref.get_weights()[0], rtol=1e-5)


# ------------------------------------------------------------------ Grain


def _grain_inputs() -> dict[str, Any]:
    grain = pytest.importorskip("grain")
    rng = np.random.default_rng(9)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x @ np.ones((3, 1), "float32")).astype("float32")
    rows = [(x[i], y[i]) for i in range(40)]
    batched = grain.MapDataset.source(rows).batch(8)
    sampler = grain.samplers.IndexSampler(num_records=40, shuffle=False, seed=0, num_epochs=1)
    loader = grain.DataLoader(
        data_source=rows, sampler=sampler, operations=[grain.transforms.Batch(8)]
    )
    return {"map": batched, "iter": batched.to_iter_dataset(), "loader": loader}


@pytest.mark.parametrize("form", ["map", "iter", "loader"])
def test_grain_inputs_train_like_keras(form: str) -> None:
    from fitpipe.testing.keras_diff import assert_weights_close

    data = _grain_inputs()[form]
    result = run_both(
        _linear_model,
        {"optimizer": "sgd", "loss": "mse"},
        {"x": data, "epochs": 2},
        eval_kwargs={"x": data},
        predict_x=data,
        # Keras 3.15 does not take the length of a MapDataset (params["steps"] None), and
        # counts optimizer iterations past the end of an input of unknown length (12 for
        # 10 steps); fitpipe knows len() and counts the 10 steps run.
        check_params=False,
        check_weights=False,
    )
    assert_weights_close(result.ref, result.twin)
    assert int(result.twin.optimizer.iterations) == 10
    expected_steps = 5 if form == "map" else None
    assert result.twin_history.params["steps"] == expected_steps


# ------------------------------------------------------------------ JAX arrays


def test_jax_arrays_train_like_keras() -> None:
    from fitpipe.testing import assert_matches_keras

    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x @ np.ones((3, 1), "float32")).astype("float32")
    assert_matches_keras(_linear_model, jnp.asarray(x), jnp.asarray(y), batch_size=8, epochs=2)


def test_jax_arrays_in_a_dict_and_a_list_train_like_keras() -> None:
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x @ np.ones((3, 1), "float32")).astype("float32")

    def build() -> keras.Model:
        a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
        merged = keras.layers.Concatenate()([keras.layers.Dense(4)(a), b])
        return keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(merged))

    named = {"a": jnp.asarray(x), "b": jnp.asarray(x[:, :2])}
    run_both(
        build,
        {"optimizer": "sgd", "loss": "mse"},
        {"x": named, "y": [jnp.asarray(y)], "batch_size": 8, "epochs": 2},
        eval_kwargs={"x": named, "y": [jnp.asarray(y)], "batch_size": 8},
        predict_x=named,
    )
