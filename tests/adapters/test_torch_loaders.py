"""``torch.utils.data.DataLoader`` inputs and torch tensors as arrays (torch is a test extra)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import (
    DataMismatchError,
    FitpipeWarning,
    UnsupportedArgumentError,
    UnsupportedInputError,
)
from fitpipe.testing import AdapterConformanceTests, epoch_batches

torch = pytest.importorskip("torch")
data = torch.utils.data

X = np.arange(40, dtype="float32").reshape(20, 2)
Y = np.arange(20, dtype="int64")


def loader(batch_size: int = 6, **kwargs: Any) -> Any:
    rows = data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    return data.DataLoader(rows, batch_size=batch_size, **kwargs)


class Rows(data.IterableDataset):
    """The rows of X and Y one by one, as ``(x, y)``, without a length."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for i in range(20):
            yield torch.from_numpy(X[i]), torch.tensor(Y[i])


class SizedRows(Rows):
    """:class:`Rows` with a length."""

    def __len__(self) -> int:
        return 20


class Batches(data.IterableDataset):
    """Yields the given batches as they are (read with ``batch_size=None``)."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[Any]:
        yield from self.batches


class Samples(data.Dataset):
    """A map-style dataset of 20 samples, each made by ``make(i)``."""

    def __init__(self, make: Any) -> None:
        self.make = make

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int) -> Any:
        return self.make(index)


def ids(pipeline: Any) -> list[list[int]]:
    return [b[1].tolist() for b in epoch_batches(pipeline)]


def trainer(inputs: int = 2) -> fitpipe.Trainer:
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(1)])
    fit_with = fitpipe.Trainer(model)
    fit_with.compile(optimizer="sgd", loss="mse", jit_compile=False)
    return fit_with


# ------------------------------------------------------------------------ lengths, epochs


def test_map_style_loader_gives_len_batches_in_its_order_every_epoch() -> None:
    pipeline = fitpipe.adapt(loader())
    assert pipeline.adapter == "torch"
    assert pipeline.num_batches == 4
    expected = [list(range(i, min(i + 6, 20))) for i in range(0, 20, 6)]
    assert ids(pipeline) == expected and ids(pipeline) == expected
    x, y = epoch_batches(pipeline)[0]
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, X[:6])


def test_iterable_dataset_loader_has_no_length_unless_the_dataset_has_one() -> None:
    unsized = fitpipe.adapt(data.DataLoader(Rows(), batch_size=6))
    assert unsized.num_batches is None
    assert ids(unsized) == ids(unsized) == [list(range(i, min(i + 6, 20))) for i in (0, 6, 12, 18)]
    sized = fitpipe.adapt(data.DataLoader(SizedRows(), batch_size=6, drop_last=True))
    assert sized.num_batches == 3 and len(ids(sized)) == 3


def test_loader_subclasses_are_taken() -> None:
    class Mine(data.DataLoader):
        pass

    rows = data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    assert fitpipe.adapt(Mine(rows, batch_size=5)).num_batches == 4


def test_the_loaders_own_shuffling_orders_the_batches() -> None:
    pipeline = fitpipe.adapt(loader(shuffle=True, generator=torch.Generator().manual_seed(0)))
    first, second = ids(pipeline), ids(pipeline)
    assert first != second
    for epoch in (first, second):
        assert sorted(i for batch in epoch for i in batch) == list(range(20))


class TestTorchLoaderConformance(AdapterConformanceTests):
    adapter_name = "torch"

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        parts = [torch.from_numpy(p) for p in (x, y, sample_weight) if p is not None]
        return data.DataLoader(data.TensorDataset(*parts), batch_size=batch_size)


# ------------------------------------------------------------------------ batch structures


def test_tuple_samples_collate_to_x_y_and_x_y_sample_weight() -> None:
    # default_collate turns tuple samples into a list batch: read as the Keras tuple.
    weighted = Samples(lambda i: (torch.from_numpy(X[i]), torch.tensor(Y[i]), torch.tensor(0.5)))
    batches = epoch_batches(fitpipe.adapt(data.DataLoader(weighted, batch_size=8)))
    assert [len(b) for b in batches] == [3, 3, 3]
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), np.full(20, 0.5))


def test_dict_inputs_nested_in_the_batch_keep_their_names() -> None:
    def sample(i: int) -> Any:
        return {"a": torch.from_numpy(X[i]), "b": torch.from_numpy(X[i, :1])}, torch.tensor(Y[i])

    pipeline = fitpipe.adapt(data.DataLoader(Samples(sample), batch_size=8))
    x, y = epoch_batches(pipeline)[0]
    assert set(x) == {"a", "b"} and x["a"].shape == (8, 2) and x["b"].shape == (8, 1)
    np.testing.assert_array_equal(y, Y[:8])


def test_a_dict_or_a_single_tensor_batch_is_x() -> None:
    # Keras 3.15 turns such a batch into a tuple of its keys or rows; fitpipe reads it as x.
    named = data.DataLoader(Samples(lambda i: {"a": torch.from_numpy(X[i])}), batch_size=8)
    (x,) = epoch_batches(fitpipe.adapt(named))[0]
    np.testing.assert_array_equal(x["a"], X[:8])
    single = data.DataLoader(Samples(lambda i: torch.from_numpy(X[i])), batch_size=8)
    (x,) = epoch_batches(fitpipe.adapt(single))[0]
    np.testing.assert_array_equal(x, X[:8])


def test_tensors_that_require_grad_or_are_bfloat16_are_read() -> None:
    grads = torch.ones((4, 2), requires_grad=True)
    halves = torch.ones((4, 2), dtype=torch.bfloat16)
    batches = [(grads * 2, halves), (grads * 3, halves)]
    x, y = epoch_batches(fitpipe.adapt(data.DataLoader(Batches(batches), batch_size=None)))[1]
    np.testing.assert_array_equal(x, np.full((4, 2), 3.0))
    assert y.dtype.name == "bfloat16"


# ------------------------------------------------------------------------ arguments, errors


@pytest.mark.parametrize(
    ("argument", "match"),
    [
        ({"y": Y}, r"^`adapt` does not support `y` when `x` is a torch\.utils\.data\.DataLoader"),
        ({"sample_weight": Y}, r"does not support `sample_weight` when `x` is a torch"),
        ({"batch_size": 4}, r"does not support `batch_size` when .*Drop `batch_size`"),
    ],
    ids=["y", "sample_weight", "batch_size"],
)
def test_refused_arguments(argument: dict[str, Any], match: str) -> None:
    with pytest.raises(UnsupportedArgumentError, match=match):
        fitpipe.adapt(loader(), **argument)


def test_validation_split_is_refused_and_shuffle_ignored() -> None:
    fit_with = trainer()
    with pytest.raises(
        UnsupportedArgumentError,
        match=r"^`fit` does not support `validation_split` when `x` is a torch.*validation_data",
    ):
        fit_with.fit(loader(), validation_split=0.2, verbose=0)
    with pytest.warns(FitpipeWarning, match="ignores `shuffle=True` for a torch"):
        fitpipe.adapt(loader(), shuffle=True)


def test_class_weight_weighs_each_row_by_its_class() -> None:
    pipeline = fitpipe.adapt(loader(batch_size=5), class_weight={0: 3.0, 1: 2.0})
    weights = np.concatenate([b[2] for b in epoch_batches(pipeline)])
    np.testing.assert_array_equal(weights, np.where(Y == 0, 3.0, np.where(Y == 1, 2.0, 1.0)))


def test_an_empty_loader_is_an_error() -> None:
    empty = data.DataLoader(Samples(lambda i: X[i]), batch_size=64, drop_last=True)
    with pytest.raises(DataMismatchError, match=r"^`adapt` got a DataLoader that yields no batch"):
        fitpipe.adapt(empty)


def test_a_later_batch_of_another_dtype_is_an_error_naming_it() -> None:
    good = (torch.ones((3, 2)), torch.ones((3, 1)))
    drifted = (torch.ones((3, 2)), torch.ones((3, 1), dtype=torch.float64))
    batches = data.DataLoader(Batches([good, good, drifted]), batch_size=None)
    with pytest.raises(
        DataMismatchError,
        match=r"^`fit` got batch 2 from the DataLoader whose `y` has dtype float64, unlike "
        r"the first batches \(float32\)",
    ):
        trainer().fit(batches, epochs=1, verbose=0)


def test_zero_row_batches_train_on() -> None:
    batches = [(torch.ones((r, 2)), torch.ones((r, 1))) for r in (3, 0, 2, 0)]
    history = trainer().fit(data.DataLoader(Batches(batches), batch_size=None), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_an_error_in_the_dataset_reaches_the_caller_as_itself() -> None:
    def sample(i: int) -> Any:
        if i == 13:
            raise KeyError(f"no sample {i}")
        return torch.from_numpy(X[i]), torch.from_numpy(X[i, :1])

    with pytest.raises(KeyError, match="no sample 13"):
        trainer().fit(data.DataLoader(Samples(sample), batch_size=4), epochs=1, verbose=0)


@pytest.mark.slow
def test_worker_processes_deliver_every_row_once_per_epoch() -> None:
    pipeline = fitpipe.adapt(loader(batch_size=4, num_workers=2, shuffle=True))
    for _ in range(2):
        assert sorted(i for batch in ids(pipeline) for i in batch) == list(range(20))


def test_a_torch_dataset_is_refused_with_a_hint_to_wrap_it() -> None:
    rows = data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    with pytest.raises(
        UnsupportedInputError,
        match=r"^`adapt` found no adapter for the input `x`: a PyTorch Dataset .*DataLoader",
    ):
        fitpipe.adapt(rows)


# ------------------------------------------------------------------------ tensors as arrays


def test_torch_tensors_are_arrays_in_any_structure() -> None:
    x = torch.from_numpy(X)
    pipeline = fitpipe.adapt({"a": x, "b": [x, x]}, torch.from_numpy(Y), batch_size=8)
    assert pipeline.adapter == "mapping" and pipeline.num_batches == 3
    x_batch, y_batch = epoch_batches(pipeline)[0]
    np.testing.assert_array_equal(x_batch["b"][1], X[:8])
    np.testing.assert_array_equal(y_batch, Y[:8])


def test_torch_tensors_that_require_grad_or_are_bfloat16_are_read_as_keras_reads_them() -> None:
    # Keras detaches them (its own conversion) and casts bfloat16 to floatx.
    grads = torch.from_numpy(X).requires_grad_()
    halves = torch.from_numpy(X).to(torch.bfloat16)
    for x in (grads, halves):
        (x_batch, _) = epoch_batches(fitpipe.adapt(x, Y, batch_size=20))[0]
        assert x_batch.dtype == np.float32
        np.testing.assert_array_equal(x_batch, X)


def test_torch_is_never_imported_unless_a_torch_object_is_passed() -> None:
    code = (
        "import sys, numpy as np, fitpipe\n"
        "import fitpipe.adapters.torch_loaders, fitpipe.adapters.torch_tensors\n"
        "fitpipe.adapt(np.zeros((3, 2)), np.zeros(3))\n"
        "fitpipe.adapt(iter([(np.zeros((3, 2)), np.zeros(3))]))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
