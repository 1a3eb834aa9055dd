"""``validation_batch_size`` is checked under its own name and refused where it cannot apply;
an error about ``validation_data`` says that it is about ``validation_data``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from differential import dense_model, regression_data

import fitpipe
from fitpipe.errors import FitpipeError, UnsupportedArgumentError

X, Y = regression_data(n=40, d=4)
XV, YV = regression_data(n=20, d=4, seed=5)


class Batches(keras.utils.PyDataset):
    """Four batches of five validation rows."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return XV[index * 5 : index * 5 + 5], YV[index * 5 : index * 5 + 5]


def _generator() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, 20, 5):
        yield XV[start : start + 5], YV[start : start + 5]


BATCHED: dict[str, Callable[[], Any]] = {
    "tf.data": lambda: tf.data.Dataset.from_tensor_slices((XV, YV)).batch(5),
    "PyDataset": Batches,
    "generator": _generator,
}


def _trainer() -> fitpipe.Trainer:
    model = dense_model(d=4)
    model.compile("sgd", "mse")
    return fitpipe.Trainer(model)


@pytest.mark.parametrize("form", sorted(BATCHED))
def test_validation_batch_size_is_refused_for_inputs_that_come_in_batches(form: str) -> None:
    with pytest.raises(
        UnsupportedArgumentError,
        match=r"^`fit` does not support `validation_batch_size` when `validation_data` is .*"
        r"Drop `validation_batch_size`, or batch the validation input yourself\. "
        r"Received: validation_batch_size=4",
    ):
        _trainer().fit(X, Y, validation_data=BATCHED[form](), validation_batch_size=4, verbose=0)


@pytest.mark.parametrize("form", sorted(BATCHED))
def test_batched_validation_data_without_validation_batch_size_still_runs(form: str) -> None:
    history = _trainer().fit(X, Y, batch_size=8, validation_data=BATCHED[form](), verbose=0)
    assert len(history.history["val_loss"]) == 1


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "8"])
def test_an_invalid_validation_batch_size_is_named_as_such(value: Any) -> None:
    with pytest.raises(FitpipeError, match=r"^`fit` got an invalid `validation_batch_size`"):
        _trainer().fit(X, Y, validation_data=(XV, YV), validation_batch_size=value, verbose=0)


@pytest.mark.parametrize("size", [3, 7, 64])
def test_validation_batch_size_of_arrays_matches_keras(size: int) -> None:
    keras.utils.set_random_seed(2)
    ref = dense_model(d=4)
    twin = dense_model(d=4)
    twin.set_weights(ref.get_weights())
    for model in (ref, twin):
        model.compile("sgd", "mse", metrics=["mae"])
    kwargs: dict[str, Any] = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    kwargs.update(validation_data=(XV, YV), validation_batch_size=size)
    want = ref.fit(X, Y, **kwargs).history
    got = fitpipe.Trainer(twin).fit(X, Y, **kwargs).history
    for key in ("val_loss", "val_mae"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5)


#: Bad validation data, each with the error its fault gives when it is the training data.
BAD: dict[str, tuple[Any, str]] = {
    "no rows": ((XV[:0], YV[:0]), "got an empty input"),
    "other sizes": ((XV, YV[:5]), "different numbers of samples"),
    "other width": ((XV[:, :3], YV), "does not fit the model"),
    "strings": ((XV.astype(str), YV), "got strings"),
    "complex targets": ((XV, YV.astype(complex)), "complex"),
    "weights of other size": ((XV, YV, np.ones(3, "float32")), "."),
    # found by the checks of the pipelines' batches against the model (check_fit_specs)
    "targets of other width": ((XV, np.zeros((len(XV), 2), "float32")), "got targets `y`"),
    "no targets": ((XV, None), "got no targets"),
    "weights of other shape": ((XV, YV, np.ones((len(XV), 3), "float32")), "`sample_weight`"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_error_about_validation_data_says_so(case: str) -> None:
    data, what = BAD[case]
    with pytest.raises(FitpipeError, match=r"^`fit` ") as caught:
        _trainer().fit(X, Y, validation_data=data, verbose=0)
    text = str(caught.value)
    assert what in text and text.endswith("(This is about `validation_data`.)"), text
    with pytest.raises(FitpipeError) as as_training:  # the control: said of the training data
        _trainer().fit(*data, verbose=0)
    assert "validation_data" not in str(as_training.value), str(as_training.value)
