"""Batches made in Python a pass at a time (``PyDataset``, torch, Grain) taken in blocks.

:class:`fitpipe.adapters.python_batches.PythonBatches` hands the trainer each pass's batches
joined, runs of equal batches at a time (``RowBlocks.batched``), instead of crossing into
``tf.data`` one batch at a time. That path must train exactly what the ``tf.data`` path
trains: the same batches in the same order (shuffled passes, short and empty batches, a
``PyDataset`` whose ``on_epoch_end`` changes the next pass), the same History, evaluation,
predictions, weights and warnings, and the same errors.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import keras
import numpy as np
import pytest
from block_paths import LEAF_FORMS, BlockSpy, as_leaf_form, assert_same_results, reading_threads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters import python_batches
from fitpipe.errors import DataCheckError

FEATURES = 3


def _trainer() -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3)])
    trainer = fitpipe.Trainer(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer.compile(optimizer="sgd", loss=loss, metrics=["sparse_categorical_accuracy"])
    return trainer


class _Batches(keras.utils.PyDataset):
    """Batches of the given sizes; ``on_epoch_end`` moves every later batch's rows (``moves``)."""

    def __init__(
        self,
        sizes: list[int],
        weights: bool,
        workers: int = 1,
        moves: bool = True,
        form: str = "numpy",
    ) -> None:
        super().__init__(workers=workers)
        self.sizes, self.weights, self.epoch, self.moves = sizes, weights, 0, moves
        self.form = form  # how its batches hold their leaves (``block_paths.LEAF_FORMS``)
        self.read: list[tuple[int, int]] = []  # (index, epochs ended before it was read)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.bad: int | None = None  # the index whose batch raises
        self.nan: int | None = None  # the index whose batch holds a NaN input
        self.ended = 0  # calls of on_epoch_end

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        self.read.append((index, self.ended))
        if index == self.bad:
            raise ValueError(f"bad batch {index}")
        ids = np.arange(self.starts[index], self.starts[index + 1]) + 1000 * self.epoch
        x = np.stack([np.sin(ids), np.cos(ids), ids % 7 / 7.0], 1).astype("float32")
        if index == self.nan:
            x[-1, 2] = np.nan
        y = (ids % 3).astype("int32")
        batch = (x, y, (0.5 + ids % 2).astype("float32")) if self.weights else (x, y)
        return as_leaf_form(batch, self.form, index)

    def on_epoch_end(self) -> None:
        self.ended += 1
        self.epoch += self.moves


def _run(blocks: bool, data: _Batches, checks: _Batches, fit: dict[str, Any]) -> tuple[Any, ...]:
    with (
        pytest.MonkeyPatch.context() as patch,
        warnings.catch_warnings(record=True) as seen,
        BlockSpy() as spy,
    ):
        warnings.simplefilter("always")
        patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        keras.utils.set_random_seed(1)  # the shuffled passes' orders
        trainer = _trainer()
        history = trainer.fit(data, verbose=0, validation_data=checks, **fit)
        scores = trainer.evaluate(checks, verbose=0)
        predicted = trainer.predict(checks, verbose=0)
    weights_after = [w.numpy() for w in trainer.model.weights]
    said = sorted({str(w.message) for w in seen})
    return history.history, scores, predicted, weights_after, said, spy.made


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 2, 5, 8, 8, 8, 8]), min_size=2, max_size=30),
    weights=st.booleans(),
    shuffle=st.booleans(),
    workers=st.sampled_from([1, 2]),
    steps_per_epoch=st.sampled_from([None, 1, 4, 11]),
    epochs=st.integers(1, 3),
    class_weight=st.sampled_from([None, {0: 1.0, 1: 2.5, 2: 0.5}]),
    form=st.sampled_from(LEAF_FORMS),
)
def test_a_py_dataset_in_blocks_trains_what_the_tf_data_path_trains(
    sizes: list[int],
    weights: bool,
    shuffle: bool,
    workers: int,
    steps_per_epoch: int | None,
    epochs: int,
    class_weight: dict[int, float] | None,
    form: str,
) -> None:
    # Whatever the batches' leaves are (NumPy, tensors as Keras' own `PyDataset` tests
    # return, some of each), the block path trains what the tf.data path trains.
    if not any(sizes[:2]):
        sizes = [3, *sizes]  # the first batches give the signature: one holds rows
    fit = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "class_weight": class_weight}
    fit["shuffle"] = shuffle
    # With epochs ending inside a pass, which batches a worker reads before ``on_epoch_end``
    # runs is a race on either path (as in Keras): the data then stays put.
    moves = steps_per_epoch is None
    results = [
        _run(
            blocks,
            _Batches(sizes, weights, workers, moves, form),
            _Batches(sizes[:3], weights, form=form),
            fit,
        )
        for blocks in (False, True)
    ]
    plain, blocked = results
    assert plain[5] == 0 and blocked[5] >= 2, "the block path was not (or always) taken"
    assert blocked[4] == plain[4]  # the same warnings (an input that ran out, ...)
    assert_same_results(blocked, plain)


@pytest.mark.parametrize("blocks", [False, True])
def test_a_py_dataset_whose_epochs_end_inside_a_pass_is_read_as_its_steps_run(
    blocks: bool,
) -> None:
    # Blocks read a pass ahead of its steps; an epoch ending inside the pass runs
    # ``on_epoch_end``, which the rest of the pass must see: such a fit is not read in blocks.
    data = _Batches([4] * 30, weights=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        _trainer().fit(data, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    trained = [index for index, _ in data.read[2:]]  # after the two batches peeked
    assert trained[:6] == [0, 1, 2, 3, 4, 5]
    read_before_first_end = [index for index, ended in data.read[2:] if ended == 0]
    assert len(read_before_first_end) <= 4, read_before_first_end  # blocks read 15 or more


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("bad", [2, 5, 11])
def test_an_error_in_a_batch_reaches_fit_as_raised_after_the_batches_before(
    blocks: bool, bad: int
) -> None:
    names = ("fitpipe-blocks", "fitpipe-pydataset")
    before = set(reading_threads(*names))  # other tests' pipelines may still hold theirs
    data = _Batches([4] * 12, weights=False, workers=2)
    data.bad = bad  # read after the first two batches, which give the signature
    trained: list[int] = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda i, logs: trained.append(i))
    with pytest.MonkeyPatch.context() as patch, BlockSpy() as spy:
        patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
        with pytest.raises(ValueError, match=f"bad batch {bad}"):
            _trainer().fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[record])
    assert spy.made == blocks
    assert trained == list(range(bad))  # every batch before the bad one trained
    deadline = time.monotonic() + 5
    while set(reading_threads(*names)) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(reading_threads(*names)) - before


def test_a_bad_value_stops_both_paths_at_the_same_batch() -> None:
    errors = []
    for blocks in (False, True):
        data = _Batches([4] * 9, weights=False)
        data.nan = 6
        with pytest.MonkeyPatch.context() as patch, BlockSpy() as spy:
            patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
            with pytest.raises(DataCheckError, match="found NaN in the inputs of batch") as got:
                _trainer().fit(data, verbose=0, shuffle=False, check="error")
        assert spy.made == blocks
        errors.append(str(got.value))
    assert errors[0] == errors[1]


def test_a_torch_loader_in_blocks_trains_what_the_tf_data_path_trains() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.random((203, FEATURES), dtype=np.float32)
    y = rng.integers(0, 3, 203)
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    results = []
    for blocks in (False, True):
        loader = torch.utils.data.DataLoader(data, batch_size=16)
        with pytest.MonkeyPatch.context() as patch, BlockSpy() as spy:
            patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
            trainer = _trainer()
            history = trainer.fit(loader, epochs=2, verbose=0)
            scores = trainer.evaluate(loader, verbose=0)
            predicted = trainer.predict(loader, verbose=0)
        assert bool(spy.made) == blocks
        weights = [w.numpy() for w in trainer.model.weights]
        results.append((history.history, scores, predicted, weights))
    assert_same_results(results[1], results[0])


def test_a_grain_dataset_in_blocks_trains_what_the_tf_data_path_trains() -> None:
    grain = pytest.importorskip("grain")
    rng = np.random.default_rng(0)
    rows = [{"x": rng.random(FEATURES, dtype=np.float32), "y": np.int32(i % 3)} for i in range(203)]
    results = []
    for blocks in (False, True):
        data = grain.MapDataset.source(rows).batch(16).map(lambda b: (b["x"], b["y"]))
        with pytest.MonkeyPatch.context() as patch, BlockSpy() as spy:
            patch.setattr(limits, "STREAM_IN_BLOCKS", blocks)
            trainer = _trainer()
            history = trainer.fit(data, epochs=2, verbose=0)
            scores = trainer.evaluate(data, verbose=0)
        assert bool(spy.made) == blocks
        weights = [w.numpy() for w in trainer.model.weights]
        results.append((history.history, scores, scores, weights))
    assert_same_results(results[1], results[0])


@pytest.mark.parametrize("form", LEAF_FORMS)
def test_blocks_of_batches_are_bounded_by_their_bytes_whatever_their_leaves(form: str) -> None:
    # A block joins batches up to `GROUP_BYTES` (here 3 batches' worth): batches of tensors
    # count their bytes as arrays do, so large tensor batches are not held 64 at a time.
    batch = (np.ones((8, FEATURES), "float32"), np.zeros(8, "int32"))
    assert python_batches.nbytes(as_leaf_form(batch, form, 0)) == 8 * FEATURES * 4 + 8 * 4
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(python_batches, "GROUP_BYTES", 3 * python_batches.nbytes(batch))
        batches = (as_leaf_form(batch, form, i) for i in range(20))
        counts = [count for _, count in python_batches._joined(batches)]
    assert counts == [1, 2, 3, 3, 3, 3, 3, 2], counts
