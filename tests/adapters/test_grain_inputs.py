"""Grain MapDataset, IterDataset and DataLoader inputs, and the iterator state they keep."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe.testing import epoch_batches

grain = pytest.importorskip("grain")

X = np.arange(40, dtype="float32").reshape(20, 2)
Y = np.arange(20)
ROWS = [(X[i], Y[i]) for i in range(20)]


class Reads:
    """Records which rows the Grain pipeline reads."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def __call__(self, row: tuple[np.ndarray, Any]) -> tuple[np.ndarray, Any]:
        self.rows.append(int(row[1]))
        return row


def ids(pipeline: Any) -> list[list[int]]:
    return [b[1].tolist() for b in epoch_batches(pipeline)]


def test_map_dataset_length_gives_num_batches() -> None:
    pipeline = fitpipe.adapt(grain.MapDataset.source(ROWS).batch(6))
    assert pipeline.adapter == "grain"
    assert pipeline.num_batches == 4
    assert ids(pipeline) == [list(range(i, min(i + 6, 20))) for i in range(0, 20, 6)]


ENDLESS = {
    "repeat-batch": lambda d: d.repeat().batch(4),
    "batch-repeat": lambda d: d.batch(4).repeat(),
    "repeat-slice-batch": lambda d: d.repeat()[::3].batch(5),
    "shuffle-repeat-map-batch": lambda d: d.shuffle(seed=1).repeat().map(lambda r: r).batch(2),
}


@pytest.mark.parametrize("make", ENDLESS.values(), ids=ENDLESS.keys())
def test_a_map_dataset_made_of_a_repeat_is_endless(make: Any) -> None:
    """Not only a repeat's own length (``sys.maxsize``): a batch or slice of it divides it."""
    data = make(grain.MapDataset.source(ROWS))
    assert fitpipe.adapt(data).num_batches is None
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    with pytest.raises(fitpipe.errors.FitpipeValueError, match="never ends without a step count"):
        trainer.evaluate(data, verbose=0)
    assert len(trainer.predict(data, steps=3, verbose=0)) > 0


def test_iter_dataset_and_loader_have_no_length_and_repeat_each_epoch() -> None:
    shuffled = grain.MapDataset.source(ROWS).shuffle(seed=3).batch(6)
    sampler = grain.samplers.IndexSampler(num_records=20, shuffle=True, seed=1, num_epochs=1)
    loader = grain.DataLoader(
        data_source=ROWS, sampler=sampler, operations=[grain.transforms.Batch(6)]
    )
    for data in (shuffled.to_iter_dataset(), loader):
        pipeline = fitpipe.adapt(data)
        assert pipeline.num_batches is None
        first, second = ids(pipeline), ids(pipeline)
        assert first == second and sorted(i for batch in first for i in batch) == list(range(20))


def test_a_restored_state_continues_at_the_exact_element_without_rereading() -> None:
    reads = Reads()
    data = grain.MapDataset.source(ROWS).shuffle(seed=2).map(reads).batch(4).to_iter_dataset()
    pipeline = fitpipe.adapt(data)
    full = ids(pipeline)
    state = pipeline.input_state(0, 3)  # after 3 batches of the first pass
    assert state is not None
    reads.rows.clear()
    pipeline.restore_state(1, 3, state)
    pipeline.seek(1)
    resumed = [b[1].tolist() for b in list(pipeline.dataset.skip(3).as_numpy_iterator())]
    assert resumed == full[3:]
    # Only the rows after the state are read (placeholders stand in for the batches skipped).
    assert sorted(reads.rows) == sorted(i for batch in full[3:] for i in batch)


def test_class_weight_and_refused_arguments() -> None:
    data = grain.MapDataset.source(ROWS).batch(5)
    pipeline = fitpipe.adapt(data, class_weight={0: 3.0})
    weights = np.concatenate([b[2] for b in epoch_batches(pipeline)])
    np.testing.assert_array_equal(weights, np.where(Y == 0, 3.0, 1.0))
    with pytest.raises(ValueError, match=r"does not support `batch_size` when `x` is a grain"):
        fitpipe.adapt(data, batch_size=4)


@pytest.mark.slow
@pytest.mark.subprocess
def test_grain_is_not_imported_for_other_inputs() -> None:
    code = (
        "import sys, numpy as np, fitpipe\n"
        "fitpipe.adapt(np.zeros((3, 2)), np.zeros(3))\n"
        "print('grain' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
