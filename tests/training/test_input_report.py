"""Tests for the input-bound report of ``fit``: measured waits, stages, the line, the switch.

Timings are asserted only where the input is made slow on purpose (a sleep per batch far
above a tiny model's step), so a loaded machine cannot flip them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from fitpipe import Schema, Trainer, limits
from fitpipe.adapters import set_timing
from fitpipe.errors import UnsupportedArgumentError
from fitpipe.training.input_report import INPUT_BOUND_SHARE, LINE_PREFIX, EpochTiming, InputReport

SLEEP = 0.03
BATCHES = 24


def _trainer(d: int = 3) -> Trainer:
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(1)])
    trainer = Trainer(model)
    trainer.compile("sgd", "mse")
    return trainer


def _batch(rows: int = 4, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return np.ones((rows, d), "float32"), np.ones((rows, 1), "float32")


def _slow_generator(count: int = BATCHES) -> Iterator[Any]:
    for _ in range(count):
        time.sleep(SLEEP)
        yield _batch()


def _warm(trainer: Trainer) -> None:
    """One fit so the step is traced and compiled before the measured one."""
    trainer.fit(iter([_batch()] * 2), verbose=0)


def test_in_memory_rows_never_wait_and_the_report_is_json(capsys) -> None:
    trainer = _trainer()
    x, y = np.ones((64, 3), "float32"), np.ones((64, 1), "float32")
    history = trainer.fit(x, y, batch_size=8, epochs=2, verbose=2)
    report = history.input_report
    assert json.loads(json.dumps(report)) == report
    assert report["in_memory"] and report["input"] == "numpy" and report["timed"]
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]
    assert all(e["waited_seconds"] == 0 and e["steps"] == 8 for e in report["epochs"])
    assert not report["input_bound"] and report["stage"] is None and report["hint"] is None
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(LINE_PREFIX)]
    assert len(lines) == 1 and "rows in memory" in lines[0] and "not input-bound" in lines[0]


def test_verbose_0_prints_no_line_but_keeps_the_report(capsys) -> None:
    history = _trainer().fit(*_batch(16), verbose=0)
    assert capsys.readouterr().out == ""
    assert history.input_report["epochs"][0]["steps"] == 1


def test_a_slow_generator_is_input_bound_in_python(capsys) -> None:
    trainer = _trainer()
    _warm(trainer)
    history = trainer.fit(_slow_generator(), verbose=1)
    report = history.input_report
    epoch = report["epochs"][0]
    assert epoch["steps"] == BATCHES
    # The step waited for most batches: the generator sleeps far longer than a step takes.
    assert epoch["waited_seconds"] >= 0.5 * BATCHES * SLEEP
    assert epoch["waited_seconds"] <= epoch["seconds"] + 1e-6
    assert epoch["waited_share"] > INPUT_BOUND_SHARE and report["input_bound"]
    assert report["stage"] == "python" and "workers" in report["hint"]
    assert epoch["stages"]["python"] >= 0.8 * BATCHES * SLEEP  # the sleeps, measured
    out = capsys.readouterr().out
    line = [line for line in out.splitlines() if line.startswith(LINE_PREFIX)]
    assert len(line) == 1 and "input-bound" in line[0] and "Python code" in line[0]


def test_a_slow_pydataset_is_input_bound_in_python() -> None:
    class Slow(keras.utils.PyDataset):
        def __len__(self) -> int:
            return BATCHES

        def __getitem__(self, index: int) -> Any:
            time.sleep(SLEEP)
            return _batch()

    trainer = _trainer()
    _warm(trainer)
    report = trainer.fit(Slow(), verbose=0).input_report
    assert report["input"] == "pydataset" and report["input_bound"]
    assert report["stage"] == "python"


def test_a_slow_tf_data_map_is_input_bound_in_transfer() -> None:
    def slow(x: Any, y: Any) -> Any:
        time.sleep(SLEEP)
        return x, y

    x, y = np.ones((BATCHES * 4, 3), "float32"), np.ones((BATCHES * 4, 1), "float32")
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(4)
        .map(
            lambda a, b: tf.numpy_function(slow, [a, b], (tf.float32, tf.float32)),
        )
        .map(lambda a, b: (tf.ensure_shape(a, [None, 3]), tf.ensure_shape(b, [None, 1])))
    )
    trainer = _trainer()
    _warm(trainer)
    report = trainer.fit(dataset, verbose=0).input_report
    assert report["input"] == "tf.data" and report["input_bound"]
    assert report["stage"] == "transfer" and "prefetch" in report["hint"]
    assert report["epochs"][0]["waited_seconds"] >= 0.5 * BATCHES * SLEEP
    # its batches are its own: `batch_size`, which `fit` refuses for it, is not advised
    assert "`.batch(n)`" in report["hint"] and "pass a larger" not in report["hint"]
    with pytest.raises(UnsupportedArgumentError, match="batch_size"):
        trainer.fit(dataset, batch_size=8, verbose=0)


@pytest.mark.parametrize(
    ("batched", "stage", "advised", "not_advised"),
    [
        (False, "transfer", "pass a larger `batch_size`", "prefetch"),
        (True, "transfer", "`.batch(n)`", "pass a larger"),
        (False, "convert", "pass a larger `batch_size`", "input's batches"),
        (True, "convert", "make the input's batches larger", "pass a larger"),
        (True, "python", "workers=N", "pass a larger"),
    ],
)
def test_the_hint_fits_how_the_input_is_batched(
    batched: bool, stage: str, advised: str, not_advised: str
) -> None:
    """Rows are batched by `batch_size`; an input's own batches are made larger in it."""
    report = InputReport("input", timed=True, batched=batched)
    timing = EpochTiming(10, seconds=1.0, waited=0.8, stages={stage: 0.8}, in_memory=False)
    report.add(0, timing)
    hint = report.as_dict()["hint"]
    assert advised in hint and not_advised not in hint


def test_streamed_parquet_times_reading_and_converting(tmp_path, monkeypatch) -> None:
    rows = 2000
    table = pa.table({"a": np.arange(rows, dtype="float32"), "y": np.ones(rows, "float32")})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=250)
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # streamed, not held in memory
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    trainer = Trainer(model)
    trainer.compile("sgd", "mse")
    history = trainer.fit(
        str(tmp_path / "d.parquet"), schema=Schema(["a"], "y"), batch_size=100, verbose=0
    )
    report = history.input_report
    assert report["input"] == "parquet" and not report["in_memory"]
    stages = report["epochs"][0]["stages"]
    assert stages["read"] > 0 and stages["convert"] > 0
    assert report["epochs"][0]["steps"] == 20


def test_timing_off_measures_nothing(capsys) -> None:
    old = set_timing(False)
    try:
        trainer = _trainer()
        history = trainer.fit(_slow_generator(4), verbose=2)
    finally:
        set_timing(old)
    report = history.input_report
    assert not report["timed"] and not report["input_bound"]
    assert report["epochs"][0]["waited_seconds"] == 0 and report["stages"] == {"transfer": 0}
    assert "not timed" in capsys.readouterr().out


def test_the_dominant_stage_is_the_one_with_most_seconds() -> None:
    report = InputReport("parquet", timed=True)
    stages = {"read": 0.5, "convert": 0.1, "python": 0.0}
    report.add(0, EpochTiming(10, seconds=1.0, waited=0.7, stages=stages, in_memory=False))
    report.add(1, EpochTiming(10, seconds=1.0, waited=0.1, stages={}, in_memory=False))
    data = report.as_dict()
    first, second = data["epochs"]
    assert first["input_bound"] and first["stage"] == "read" and "row group" in first["hint"]
    assert first["stages"] == {"read": 0.5, "convert": 0.1, "transfer": pytest.approx(0.1)}
    assert not second["input_bound"] and second["stage"] is None
    assert data["waited_share"] == pytest.approx(0.4) and data["stage"] == "read"
    assert "reading Parquet" in report.line()
