"""torch ``DataLoader`` passes (one-shot streams, lengths that promise too much) and torch
tensors NumPy cannot hold, given directly or inside a loader's batches."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.errors import DataMismatchError, FitpipeTypeError, FitpipeWarning
from fitpipe.testing import epoch_batches

torch = pytest.importorskip("torch")
data = torch.utils.data

X = np.arange(48, dtype="float32").reshape(24, 2)
Y = np.arange(24, dtype="float32").reshape(24, 1)


def trainer(named: bool = False) -> fitpipe.Trainer:
    """A linear model of 2 features; of a dict of two inputs, ``a`` and ``b``, if ``named``."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    if named:
        a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
        model = keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(a + b))
    fit_with = fitpipe.Trainer(model)
    fit_with.compile(optimizer="sgd", loss="mse", jit_compile=False)
    return fit_with


class OneShot(data.IterableDataset):
    """The rows of X and Y, from a source that can be read only once (a stream)."""

    def __init__(self, rows: int = 24, length: int | None = None) -> None:
        self.source = iter(range(rows))
        self.length = length

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for i in self.source:
            yield torch.from_numpy(X[i]), torch.from_numpy(Y[i])

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("no length")
        return self.length


class Repeating(OneShot):
    """Rows of X and Y, read again on every iteration; ``__len__`` says ``length`` rows."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for i in range(24):
            yield torch.from_numpy(X[i]), torch.from_numpy(Y[i])


# ------------------------------------------------------------------------ one-shot streams


@pytest.mark.parametrize(("rows", "batch_size"), [(24, 4), (10, 3), (5, 2), (7, 8)])
def test_a_one_shot_stream_trains_every_batch_in_its_first_epoch(
    rows: int, batch_size: int
) -> None:
    pipeline = fitpipe.adapt(data.DataLoader(OneShot(rows), batch_size=batch_size))
    batches = epoch_batches(pipeline)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X[:rows])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), Y[:rows])
    assert epoch_batches(pipeline) == []  # (a stream read once: the next pass is empty)


@pytest.mark.parametrize("steps_per_epoch", [None, 2, 4])
def test_fit_on_a_one_shot_stream_trains_as_on_its_rows(steps_per_epoch: int | None) -> None:
    # One epoch of 6 batches of 4 rows: the same weights as arrays of those rows.
    keras.utils.set_random_seed(0)
    built = trainer()
    reference = keras.models.clone_model(built.model)
    reference.set_weights(built.model.get_weights())
    reference.compile(optimizer="sgd", loss="mse")
    steps = steps_per_epoch or 6
    reference.fit(X[: 4 * steps], Y[: 4 * steps], batch_size=4, shuffle=False, verbose=0)
    loader = data.DataLoader(OneShot(), batch_size=4)
    built.fit(loader, epochs=1, steps_per_epoch=steps_per_epoch, verbose=0)
    assert int(built.model.optimizer.iterations) == steps
    for got, want in zip(built.model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_map_style_loader_is_read_again_for_its_first_pass() -> None:
    # As Keras: its seeded sampler's first order goes to the batches read for the signature.
    def order(pipeline: Any) -> list[float]:
        return [v for b in epoch_batches(pipeline) for v in b[1][:, 0].tolist()]

    def loader() -> Any:
        rows = data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
        seeded = torch.Generator().manual_seed(5)
        return data.DataLoader(rows, batch_size=5, shuffle=True, generator=seeded)

    plain = loader()
    peek = iter(plain)  # the pass Keras reads its first 2 batches from
    next(peek), next(peek)
    del peek
    expected = [v for b in plain for v in b[1][:, 0].tolist()]
    assert order(fitpipe.adapt(loader())) == expected


# ------------------------------------------------------------------------ lengths


@pytest.mark.parametrize(("promised", "batch_size"), [(80, 8), (30, 4), (25, 6)])
def test_a_loader_that_gives_fewer_batches_than_its_length_warns(
    promised: int, batch_size: int
) -> None:
    loader = data.DataLoader(Repeating(length=promised), batch_size=batch_size)
    given, known = -(-24 // batch_size), -(-promised // batch_size)
    fit_with = trainer()
    with pytest.warns(FitpipeWarning, match=rf"ran out of data.* {given} of the {known} batches"):
        fit_with.fit(loader, epochs=2, verbose=0)
    assert int(fit_with.model.optimizer.iterations) == 2 * given


@pytest.mark.parametrize("promised", [24, 12, 1])
def test_a_loader_that_gives_its_length_or_more_does_not_warn(promised: int) -> None:
    # A length too small: the batches beyond it are not read, as in Keras.
    loader = data.DataLoader(Repeating(length=promised), batch_size=4)
    fit_with = trainer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitpipeWarning)
        fit_with.fit(loader, epochs=2, verbose=0)
    assert int(fit_with.model.optimizer.iterations) == 2 * -(-promised // 4)


# ------------------------------------------------------------------------ unreadable tensors


def _sparse(t: Any) -> Any:
    return t.to_sparse()


def _csr(t: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "sparse CSR support is in beta"
        return (t if t.ndim == 2 else t.reshape(-1, 1)).to_sparse_csr()


def _nested(t: Any) -> Any:
    return torch.nested.nested_tensor([r.reshape(-1) for r in t], layout=torch.jagged)


def _meta(t: Any) -> Any:
    return torch.empty(t.shape, device="meta")


def _float8(t: Any) -> Any:
    return t.to(torch.float8_e4m3fn)


UNREADABLE: dict[str, tuple[Callable[[Any], Any], str]] = {
    "sparse": (
        _sparse,
        r"a sparse torch tensor \(layout torch\.sparse_coo\).*`tensor\.to_dense\(\)`",
    ),
    "csr": (_csr, r"a sparse torch tensor \(layout torch\.sparse_csr\).*`tensor\.to_dense\(\)`"),
    "nested": (_nested, r"a nested torch tensor.*`tensor\.to_padded_tensor\(0\.0\)`.*unbind"),
    "meta": (_meta, r"a torch tensor on the meta device, which holds no values.*Materialize it"),
    "float8": (_float8, r"a torch tensor of dtype torch\.float8_e4m3fn.*`tensor\.float\(\)`"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
@pytest.mark.parametrize("where", ["x", "y", "x['b']", "sample_weight"])
def test_unreadable_tensors_given_directly_are_refused_naming_them(kind: str, where: str) -> None:
    make, match = UNREADABLE[kind]
    x = torch.from_numpy(X)
    parts: dict[str, Any] = {"x": x, "y": torch.from_numpy(Y), "sample_weight": None}
    if where == "x['b']":
        parts["x"] = {"a": x, "b": make(x)}
    else:
        parts[where] = make(torch.from_numpy({"x": X, "y": Y, "sample_weight": Y[:, 0]}[where]))
    with pytest.raises(
        FitpipeTypeError,
        match=rf"^`adapt` cannot read `{re.escape(where)}`, {match}.*"
        r"before passing it.*Received: tensor=torch\.Tensor",
    ):
        fitpipe.adapt(parts["x"], parts["y"], sample_weight=parts["sample_weight"], batch_size=8)


def _batch(structure: str, leaf: Any, rows: slice) -> Any:
    x, y = torch.from_numpy(X[rows]), torch.from_numpy(Y[rows])
    return {
        "tuple-y": (x, leaf),
        "list-x": [leaf, y],
        "tuple-sample_weight": (x, y, leaf),
        "dict-x": ({"a": x, "b": leaf}, y),
        "single-x": leaf,
    }[structure]


PATHS = {
    "tuple-y": "y",
    "list-x": "x",
    "tuple-sample_weight": "sample_weight",
    "dict-x": "x['b']",
    "single-x": "x",
}


class Batches(data.IterableDataset):
    """Batches of 4 rows, as they are (read with ``batch_size=None``); batch ``bad`` is odd."""

    def __init__(self, structure: str, make: Callable[[Any], Any], bad: int) -> None:
        self.structure, self.make, self.bad = structure, make, bad

    def __iter__(self) -> Iterator[Any]:
        for i in range(5):
            rows = slice(4 * i, 4 * i + 4)
            good = {"tuple-sample_weight": torch.ones(4)}.get(
                self.structure, torch.from_numpy(X[rows] if "x" in self.structure else Y[rows])
            )
            yield _batch(self.structure, self.make(good) if i == self.bad else good, rows)


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
@pytest.mark.parametrize("structure", sorted(PATHS))
@pytest.mark.parametrize("bad", [0, 1, 3])
def test_unreadable_tensors_in_loader_batches_are_refused_naming_batch_and_part(
    kind: str, structure: str, bad: int
) -> None:
    make, match = UNREADABLE[kind]
    loader = data.DataLoader(Batches(structure, make, bad), batch_size=None)
    path = re.escape(PATHS[structure])
    pattern = (
        rf"^`fit` cannot read `{path}` of batch {bad} from the DataLoader, {match}.*"
        r"in the dataset or the DataLoader's `collate_fn`"
    )
    caller = "predict" if structure == "single-x" else "fit"  # (batches of x alone)
    with pytest.raises(FitpipeTypeError, match=pattern.replace("fit", caller, 1)):
        getattr(trainer(named=structure == "dict-x"), caller)(loader, verbose=0)


# ------------------------------------------------------------------------ advice for batches


class Keyed(data.Dataset):
    """24 samples, each a dict of the given keys (``x``: 2 features, others: 1 value)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> dict[str, Any]:
        values = {"x": X[i], "y": Y[i], "sample_weight": Y[i, 0] + 1, "id": Y[i, 0]}
        return {k: torch.tensor(values[k]) for k in self.keys}


ADVISED = {
    "fit": lambda t, loader: t.fit(loader, epochs=1, verbose=0),
    "evaluate": lambda t, loader: t.evaluate(loader, verbose=0),
    "validation": lambda t, loader: t.fit(
        data.DataLoader(data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))),
        validation_data=loader,
        verbose=0,
    ),
}


@pytest.mark.parametrize("call", sorted(ADVISED))
@pytest.mark.parametrize("keys", [("x", "y"), ("x", "y", "sample_weight"), ("x", "sample_weight")])
def test_a_batch_dict_keyed_by_roles_is_advised_a_collate_fn_returning_a_tuple(
    call: str, keys: tuple[str, ...]
) -> None:
    loader = data.DataLoader(Keyed(keys), batch_size=8)
    with pytest.raises(DataMismatchError) as info:
        ADVISED[call](trainer(), loader)
    text = str(info.value)
    assert f"a dict batch keyed {list(keys)} is all `x`" in text
    assert "have the DataLoader's `collate_fn` return a tuple" in text
    assert "dataset.map" not in text
    parts = re.search(r"e\.g\. `(\(.*?\))` of `batch = ", text)
    assert parts is not None

    # The advice as worded makes batches that train.
    def collate(rows: list[Any]) -> Any:
        batch = data.default_collate(rows)  # noqa: F841 (read by the advised code)
        return eval(parts.group(1))

    if "y" in keys:
        fixed = data.DataLoader(Keyed(keys), batch_size=8, collate_fn=collate)
        assert len(trainer().fit(fixed, epochs=1, verbose=0).history["loss"]) == 1


def test_batches_with_extra_entries_are_advised_to_select_them_in_the_collate_fn() -> None:
    def sample(i: int) -> Any:
        return {"a": torch.from_numpy(X[i]), "b": torch.from_numpy(X[i]), "id": i}, Y[i]

    class Extra(data.Dataset):
        def __len__(self) -> int:
            return 24

        def __getitem__(self, i: int) -> Any:
            return sample(i)

    with pytest.raises(DataMismatchError) as info:
        trainer(named=True).fit(data.DataLoader(Extra(), batch_size=8), verbose=0)
    text = str(info.value)
    assert "unknown ['id']" in text and "dataset.map" not in text
    assert "select the model's inputs in the batches (in the DataLoader's `collate_fn`" in text
