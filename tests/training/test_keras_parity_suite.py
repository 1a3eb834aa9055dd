"""Differential tests for the differences Keras' own test suite found (benchmarks/keras_suite).

Keras is the oracle: a ragged tensor fed to a ``keras.Input`` whose varying sizes are
``None`` (not declared ``ragged=True``) reaches the model's layers and trains as in Keras,
``None`` given for an input that is not optional is a ``ValueError`` saying so, a
generator may yield SciPy sparse or JAX BCOO batches, which train as ``tf.SparseTensor``, and
a dataset distributed by a strategy of one replica feeds a model built under no strategy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import DataMismatchError
from fitpipe.testing.keras_diff import assert_close, assert_weights_close, compile_both, make_twins

# ------------------------------------------------------------ ragged data, input not ragged


class Scale(keras.layers.Layer):
    """Multiplies its input, ragged or not, by one trainable scalar."""

    def build(self, input_shape: Any) -> None:
        self.factor = self.add_weight(shape=(), initializer="ones")

    def call(self, x: Any) -> Any:
        return x * self.factor


def _ragged_mse(y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
    return tf.reduce_mean(tf.square((y_pred - y_true).flat_values))


def _scale_model() -> keras.Model:
    inputs = keras.Input((None,))  # sizes that vary are None; not declared ragged
    return keras.Model(inputs, Scale()(inputs))


RAGGED_X = tf.ragged.constant([[1.0], [2.0, 3.0], [4.0, 5.0, 6.0], [7.0], [8.0, 9.0]])
RAGGED_Y = RAGGED_X * 3.0


@pytest.mark.parametrize("jit_compile", ["auto", False])  # Keras: no XLA kernel either
def test_ragged_data_trains_an_input_whose_varying_sizes_are_none(jit_compile: Any) -> None:
    # Before: fitpipe refused the data before the first step ("got rows of different lengths
    # (a ragged tensor) for input 0, which takes a dense tensor"), and with XLA (its "auto")
    # the compiled step failed on the ragged loss; Keras trains it (trainer_test.py,
    # test_trainer_with_raggeds).
    ref, twin = make_twins(_scale_model)
    compile_kwargs = {"optimizer": "sgd", "loss": _ragged_mse, "jit_compile": jit_compile}
    api = compile_both(ref, twin, compile_kwargs)
    fit_kwargs = {"batch_size": 2, "epochs": 2, "verbose": 0, "shuffle": False}
    expected = ref.fit(RAGGED_X, RAGGED_Y, **fit_kwargs).history
    got = api.fit(RAGGED_X, RAGGED_Y, **fit_kwargs).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)
    assert_close(
        ref.evaluate(RAGGED_X, RAGGED_Y, batch_size=2, verbose=0),
        api.evaluate(RAGGED_X, RAGGED_Y, batch_size=2, verbose=0),
        "evaluate",
    )
    predicted = api.predict(RAGGED_X, batch_size=2, verbose=0)
    assert isinstance(predicted, tf.RaggedTensor)
    assert_close(
        ref.predict(RAGGED_X, batch_size=2, verbose=0).flat_values,
        predicted.flat_values,
        "predict",
    )


def test_ragged_data_for_an_input_of_a_fixed_size_is_refused() -> None:
    inputs = keras.Input((3,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DataMismatchError, match=r"ragged.*fixed size.*\(None, 3\)"):
        trainer.predict(RAGGED_X, verbose=0)


# --------------------------------------------------------------- None for a required input


def _two_inputs() -> keras.Model:
    a = keras.Input((2,), name="a")
    b = keras.Input((2,), name="b", optional=True)
    return keras.Model([a, b], keras.layers.Dense(1)(a))


X2 = np.ones((4, 2), "float32")
Y1 = np.ones((4, 1), "float32")


@pytest.mark.parametrize(
    "x",
    [[None, X2], {"a": None, "b": X2}],
    ids=["list", "dict"],
)
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "train_on_batch"])
def test_none_for_an_input_not_optional_is_a_value_error(x: Any, method: str) -> None:
    # Before: `fit` found no adapter for the list (a TypeError), or failed in the step.
    ref, twin = make_twins(_two_inputs)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    arguments = (x,) if method == "predict" else (x, Y1)
    kwargs = {} if method == "train_on_batch" else {"verbose": 0}
    with pytest.raises(ValueError, match="not optional"):
        getattr(ref, method)(*arguments, **kwargs)
    with pytest.raises(ValueError, match=r"`\w+` got None for the model input 'a', which is not"):
        getattr(api, method)(*arguments, **kwargs)


def test_none_for_an_optional_input_still_trains_as_keras() -> None:
    ref, twin = make_twins(_two_inputs)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    x = {"a": X2, "b": None}
    expected = ref.fit(x, Y1, batch_size=2, epochs=2, verbose=0, shuffle=False).history
    got = api.fit(x, Y1, batch_size=2, epochs=2, verbose=0, shuffle=False).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)


# ------------------------------------- a model built on a dict of inputs, keyed by the dict


def _keyed_inputs() -> keras.Model:
    # The tensors are not named by their keys (Keras warns at construction, then feeds a dict
    # `x` to the inputs by key): `multi_head_attention_test.py::test_lora`'s model.
    inputs = {key: keras.Input((2, 2)) for key in ("query", "key", "value")}
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    outputs = attention(inputs["query"], inputs["value"], inputs["key"])
    return keras.Model(inputs, keras.layers.Flatten()(outputs))


KEYED_X = {
    key: np.random.default_rng(i).random((12, 2, 2)).astype("float32")
    for i, key in enumerate(("query", "key", "value"))
}
KEYED_Y = np.random.default_rng(5).random((12, 4)).astype("float32")


@pytest.mark.parametrize("form", ["arrays", "tf.data", "generator"])
def test_a_dict_x_feeds_a_model_built_on_a_dict_of_inputs_by_its_keys(form: str) -> None:
    # Before: `fit` refused the dict ("input names that do not match the model": it knew the
    # inputs by their tensors' names, `keras_tensor_*`, not by the keys they were built on).
    def data() -> Any:
        if form == "arrays":
            return KEYED_X
        batches = tf.data.Dataset.from_tensor_slices((KEYED_X, KEYED_Y)).batch(4)
        return batches if form == "tf.data" else (b for b in batches.as_numpy_iterator())

    ref, twin = make_twins(_keyed_inputs)
    api = compile_both(ref, twin, {"optimizer": "adam", "loss": "mse"})
    y = KEYED_Y if form == "arrays" else None
    fit = {"batch_size": 4} if form == "arrays" else {}
    fit["epochs"] = 1 if form == "generator" else 2  # a generator is read once
    expected = ref.fit(data(), y, verbose=0, shuffle=False, **fit).history
    got = api.fit(data(), y, verbose=0, shuffle=False, **fit).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)
    assert_close(ref.predict(KEYED_X, verbose=0), api.predict(KEYED_X, verbose=0), "predict")
    assert_close(
        ref.train_on_batch(KEYED_X, KEYED_Y), api.train_on_batch(KEYED_X, KEYED_Y), "on_batch"
    )


def test_a_dict_x_missing_a_key_of_a_model_built_on_a_dict_names_the_keys() -> None:
    trainer = fitpipe.Trainer(_keyed_inputs())
    trainer.compile(optimizer="adam", loss="mse")
    x = {"query": KEYED_X["query"], "value": KEYED_X["value"]}
    with pytest.raises(DataMismatchError, match=r"missing \['key'\].*named \['key', 'query'"):
        trainer.fit(x, KEYED_Y, verbose=0)


# -------------------------------------------- outputs whose sizes are known only at run time


def _varying(batches: list[tuple[int, ...]]) -> Iterator[tuple[np.ndarray]]:
    for i, shape in enumerate(batches):
        yield (np.full(shape, i + 1.0, dtype="float32"),)


@pytest.mark.parametrize(
    "batches", [[(3, 5, 7), (2, 7, 5)], [(0, 4, 6), (3, 6, 4)], [(4, 3, 3)] * 5]
)
def test_outputs_of_sizes_known_at_run_time_are_predicted_as_keras(
    batches: list[tuple[int, ...]],
) -> None:
    # Flatten over inputs of any size per batch: its output's size is None in the model,
    # the same in every batch at run time. Before: `predict` failed building the empty
    # result of a call ("Expected int32, but got None"): `flatten_test.py`'s
    # `test_flatten_with_dynamic_batch_size_and_dynamic_dimenstions`.
    model = keras.Sequential([keras.Input((None, None)), keras.layers.Flatten()])
    expected = model.predict(_varying(batches), verbose=0)
    got = fitpipe.Trainer(model).predict(_varying(batches), verbose=0)
    assert_close(expected, got, "predict")
    assert got.shape == expected.shape


def _sequences(lengths: list[int], rows: int = 2) -> Iterator[tuple[np.ndarray]]:
    for i, length in enumerate(lengths):
        yield (np.full((rows, length, 3), i + 1.0, dtype="float32"),)


def _assert_same_predictions(expected: Any, got: Any) -> None:
    assert type(got) is type(expected), (type(expected), type(got))
    if isinstance(expected, tf.RaggedTensor):
        assert got.shape.as_list() == expected.shape.as_list()
        assert got.ragged_rank == expected.ragged_rank
        assert_close(expected.flat_values.numpy(), got.flat_values.numpy(), "values")
        for ours, theirs in zip(got.nested_row_splits, expected.nested_row_splits, strict=True):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    else:
        assert_close(expected, got, "predict")


@pytest.mark.parametrize("lengths", [[4, 5], [4, 5, 7], [5, 5]])
def test_outputs_whose_sizes_differ_between_calls_are_ragged_as_in_keras(
    lengths: list[int],
) -> None:
    # A sequence model over batches of different lengths, a batch a call here (the shapes
    # change): Keras returns a tf.RaggedTensor whose varying dimensions are ragged and the
    # others uniform, NumPy where every batch has one size. Before: NumPy's concatenate
    # error (`center_crop_test.py::test_dynamic_spatial_dims`,
    # `stft_spectrogram_test.py::test_spectrogram_dynamic_shape`).
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.Dense(2)])
    expected = model.predict(_sequences(lengths), verbose=0)
    _assert_same_predictions(
        expected, fitpipe.Trainer(model).predict(_sequences(lengths), verbose=0)
    )


@pytest.mark.parametrize(
    ("lengths", "rows"),
    [
        ([3 + i % 3 for i in range(40)], 2),  # calls of several steps, sizes varying in each
        ([5, *[6] * 30, 4], 3),  # one size in most calls: dense until the last
        ([5] * 30, 2),  # one size: NumPy, as Keras
        ([4, 5, *[6] * 20, 0], 2),  # and a batch of no rows
    ],
)
@pytest.mark.parametrize("feature", [3, None])
def test_outputs_whose_sizes_differ_within_a_call_are_ragged_as_in_keras(
    lengths: list[int], rows: int, feature: int | None
) -> None:
    # A compiled call of several steps holds such outputs ragged (their sizes are None in
    # the model) and `predict` settles them as Keras does. Before: a ConcatOp error in the
    # call. `feature=None`: flattened, the last size is the one unknown.
    def batches() -> Iterator[tuple[np.ndarray]]:
        for i, length in enumerate(lengths):
            yield (np.full((rows if length else 0, length or 4, 3), i + 1.0, "float32"),)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3))
    outputs = keras.layers.Dense(2)(inputs)
    if feature is None:
        outputs = keras.layers.Flatten()(outputs)
    model = keras.Model(inputs, outputs)
    expected = model.predict(batches(), verbose=0)
    got = fitpipe.Trainer(model).predict(batches(), verbose=0)
    _assert_same_predictions(expected, got)


@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=24),
    rows=st.integers(1, 3),
    flatten=st.booleans(),
    run_eagerly=st.booleans(),
    steps=st.sampled_from([1, 3, 8]),
)
@settings(max_examples=12)
def test_outputs_whose_sizes_vary_are_settled_as_in_keras(
    lengths: list[int], rows: int, flatten: bool, run_eagerly: bool, steps: int
) -> None:
    # The class of the cases above: batches of any lengths (0: a batch of no rows), calls
    # of one or several steps, compiled or run eagerly. Before: with `run_eagerly=True`, a
    # call of several steps joined its steps' outputs with tf.concat (an error when their
    # sizes differ), and the outputs of a call where they did were never settled.
    # Keras' result, from the batches with rows: a batch of no rows adds none, and fitpipe
    # settles by the rows' sizes (NumPy where all have one), where Keras would return a
    # RaggedTensor when the empty batch's size differs (a departure toward the documented
    # "NumPy array(s) of predictions").
    # Keras and fitpipe type a generator's batches by its first two: where they agree, a
    # size is fixed (a later batch of another size is refused; an empty batch is of size 4)
    for sizes in ([length for length in lengths if length], [n or 4 for n in lengths]):
        assume(sizes and (len(set(sizes)) == 1 or sizes[0] != sizes[1]))

    def batches(empty: bool = True) -> Iterator[tuple[np.ndarray]]:
        for i, length in enumerate(lengths):
            if length or empty:
                yield (np.full((rows if length else 0, length or 4, 3), i + 1.0, "float32"),)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3))
    outputs = keras.layers.Dense(2)(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(outputs) if flatten else outputs)
    expected = model.predict(batches(empty=False), verbose=0)
    trainer = fitpipe.Trainer(model)
    trainer.compile(run_eagerly=run_eagerly, steps_per_execution=steps)
    _assert_same_predictions(expected, trainer.predict(batches(), verbose=0))


# ---------------------------------------------- models built before their layers are built


class BlockOfLayers(keras.layers.Layer):
    """A layer of layers, with no ``build`` of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = keras.layers.Dense(8, activation="relu")

    def call(self, x: Any) -> Any:
        return self.inner(x)


class NetBuiltLater(keras.Model):
    """A subclassed model with no ``build`` of its own: ``build(shape)`` builds no layer."""

    def __init__(self, nested: bool) -> None:
        super().__init__()
        self.first = BlockOfLayers() if nested else keras.layers.Dense(8, activation="relu")
        self.last = keras.layers.Dense(1)

    def call(self, x: Any) -> Any:
        return self.last(self.first(x))


@pytest.mark.parametrize("method", ["fit", "train_on_batch"])
@pytest.mark.parametrize("jit_compile", [False, True, "auto"])
@pytest.mark.parametrize("nested", [False, True])
def test_a_model_built_before_its_layers_trains_as_keras(
    method: str, jit_compile: Any, nested: bool
) -> None:
    # `model.build((None, 4))` (as before `summary()`) marks such a model built and leaves
    # its layers unbuilt; Keras' `fit` builds them before its optimizer. Before: fitpipe built
    # the optimizer with no variables, and the first step failed ("Unknown variable: ...
    # This optimizer can only be called for the variables it was originally built with").
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x.sum(1, keepdims=True)
    models = []
    for side in ("keras", "fitpipe"):
        keras.utils.set_random_seed(0)
        model = NetBuiltLater(nested)
        model.build((None, 4))
        trainer: Any = model if side == "keras" else fitpipe.Trainer(model)
        trainer.compile(
            optimizer="adam", loss="mse", jit_compile=jit_compile if side == "fitpipe" else False
        )
        if method == "fit":
            models.append(trainer.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0))
        else:
            models.append([trainer.train_on_batch(x[:16], y[:16]) for _ in range(3)])
        models[-1] = (model, models[-1])
    (ref, expected), (twin, got) = models
    if method == "fit":
        expected, got = expected.history["loss"], got.history["loss"]
    assert_close(expected, got, method)
    assert_weights_close(ref, twin)


# ------------------------------------------------- SciPy and JAX sparse batches, generators


def _sparse_batches(kind: str) -> list[tuple[Any, np.ndarray]]:
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        dense = (rng.random((2, 4)) * (rng.random((2, 4)) < 0.4)).astype("float32")
        x: Any = scipy_sparse.csr_matrix(dense)
        if kind == "jax":
            x = pytest.importorskip("jax.experimental.sparse").BCOO.fromdense(dense)
        batches.append((x, rng.random((2, 3)).astype("float32")))
    return batches


def _sparse_input_model() -> keras.Model:
    inputs = keras.Input((4,), sparse=True)
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def _yielding(batches: list[Any]) -> Iterator[Any]:
    yield from batches  # a generator: Keras takes no other iterator


@pytest.mark.parametrize("kind", ["scipy", "jax"])
def test_sparse_batches_from_a_generator_train_as_keras(kind: str) -> None:
    # Before: a generator yielding SciPy sparse matrices or JAX BCOO arrays was refused at the
    # first batch ("`x` is an object array holding Python objects"), although fitpipe takes
    # both as arrays; Keras converts them to tf.SparseTensor (trainer_test.py, test_*_sparse_*).
    batches = _sparse_batches(kind)
    ref, twin = make_twins(_sparse_input_model)
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse", "jit_compile": False})
    expected = ref.fit(_yielding(batches), epochs=1, verbose=0).history
    got = api.fit(_yielding(batches), epochs=1, verbose=0).history
    assert_close(expected["loss"], got["loss"], "History loss")
    assert_weights_close(ref, twin)
    assert_close(
        ref.evaluate(_yielding(batches), verbose=0),
        api.evaluate(_yielding(batches), verbose=0),
        "evaluate",
    )
    xs = [(x,) for x, _ in batches]
    assert_close(
        ref.predict(_yielding(xs), verbose=0), api.predict(_yielding(xs), verbose=0), "predict"
    )


# ---------------------------------- a dataset distributed over one replica, model of no strategy

#: Strategies of one replica (the only device of the test process): their distributed
#: datasets yield plain tensors.
ONE_REPLICA = {
    "one_device": tf.distribute.OneDeviceStrategy("/cpu:0"),
    "mirrored": tf.distribute.MirroredStrategy(["/cpu:0"]),
}


def _distribute(strategy: Any, from_function: bool, parts: tuple[Any, ...], batch: int) -> Any:
    dataset = tf.data.Dataset.from_tensor_slices(parts)
    if from_function:
        return strategy.distribute_datasets_from_function(
            lambda context: dataset.batch(context.get_per_replica_batch_size(batch))
        )
    return strategy.experimental_distribute_dataset(dataset.batch(batch))


@pytest.mark.parametrize("from_function", [True, False], ids=["from_function", "dataset"])
@pytest.mark.parametrize("strategy", sorted(ONE_REPLICA))
def test_a_dataset_distributed_over_one_replica_feeds_a_model_of_no_strategy_as_keras(
    strategy: str, from_function: bool
) -> None:
    # Before: refused ("got a distributed dataset for a model built under no `tf.distribute`
    # strategy"); Keras iterates it with the default strategy, whose step takes its plain
    # tensors (tf_dataset_adapter_test.py,
    # test_distributed_datasets_from_function_model_integration). Over several replicas the
    # batches are per-replica values: Keras fails in the step, fitpipe says why
    # (tests/distribute/test_dist_mirrored.py).
    rows, batch_size, features = 7, 3, 2  # a partial last batch
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    y = rng.normal(size=(rows, 2)).astype("float32")

    def data(*parts: Any) -> Any:
        return _distribute(ONE_REPLICA[strategy], from_function, parts, batch_size)

    ref, twin = make_twins(
        lambda: keras.Sequential([keras.Input((features,)), keras.layers.Dense(2)])
    )
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]})
    fit_kwargs: dict[str, Any] = {"epochs": 2, "verbose": 0, "shuffle": False}
    expected = ref.fit(data(x, y), validation_data=data(x, y), **fit_kwargs).history
    got = api.fit(data(x, y), validation_data=data(x, y), **fit_kwargs).history
    assert expected.keys() == got.keys()
    for key in expected:
        assert_close(expected[key], got[key], f"History {key}")
    assert_weights_close(ref, twin)
    assert_close(
        ref.evaluate(data(x, y), verbose=0), api.evaluate(data(x, y), verbose=0), "evaluate"
    )
    assert_close(ref.predict(data(x), verbose=0), api.predict(data(x), verbose=0), "predict")


# ------------------------- BackupAndRestore every step: resumed at the saved step, as documented


class _Interrupt(keras.callbacks.Callback):
    """Raises after ``at`` batches (Keras' InterruptingCallback, backup_and_restore_test.py)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.count = at, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.count += 1
        if self.count == self.at:
            raise RuntimeError("interrupted")


def _resumed(api: Any, x: np.ndarray, y: np.ndarray, folder: str, at: int) -> None:
    kwargs: dict[str, Any] = {"batch_size": 4, "epochs": 3, "shuffle": False, "verbose": 0}
    backup = keras.callbacks.BackupAndRestore(folder, save_freq=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        api.fit(x, y, callbacks=[backup, _Interrupt(at)], **kwargs)
    api.fit(x, y, callbacks=[keras.callbacks.BackupAndRestore(folder, save_freq=1)], **kwargs)


@pytest.mark.parametrize("at", [2, 3, 4], ids=["mid_epoch", "epoch_end", "next_epoch"])
def test_backup_every_step_resumes_at_the_saved_step_as_documented(
    at: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Keras' docstring: "the training state (which includes the `Model` weights and epoch
    # number) is restored to the most recently saved state", and `save_freq=N` "saves the
    # checkpoint every `save_freq` batches". fitpipe follows it: a run interrupted after a
    # backup and resumed ends as the run never interrupted, each batch trained once. Keras
    # 3.15 departs from it: it restores the weights saved mid-epoch, then repeats that epoch
    # from its first batch (it writes the batch in its metadata and never reads it), so the
    # batches before the backup are trained twice (backup_and_restore_test.py,
    # test_best_case_step: counter 17 in Keras, 15 through fitpipe).
    rng = np.random.default_rng(at)
    x = rng.normal(size=(10, 3)).astype("float32")
    y = rng.normal(size=(10, 1)).astype("float32")
    steps = 3 * 3  # 3 epochs of 3 batches of up to 4 rows
    ref, twin = make_twins(lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    _, keras_run = make_twins(lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    api = compile_both(ref, twin, {"optimizer": "sgd", "loss": "mse"})
    keras_run.compile(optimizer="sgd", loss="mse")
    ref.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)  # never interrupted
    _resumed(api, x, y, str(tmp_path_factory.mktemp("fitpipe")), at)
    _resumed(keras_run, x, y, str(tmp_path_factory.mktemp("keras")), at)
    assert int(twin.optimizer.iterations) == steps
    assert_weights_close(ref, twin)
    repeated = (at - 1) % 3 + 1  # the interrupted epoch's batches up to the last backup
    assert int(keras_run.optimizer.iterations) == steps + repeated
