"""The tf.data service: a dispatcher and two workers on localhost, in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from dist_data import SCHEMA, WEIGHTED, table, write

import fitpipe
from fitpipe import limits
from fitpipe.errors import FitpipeTypeError, FitpipeValueError
from fitpipe.pipeline.service import python_stages

REFUSED = "cannot run the input on tf.data service workers"
service = tf.data.experimental.service


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """A dispatcher and two workers; yields the dispatcher's ``grpc://`` address.

    Jobs whose clients are gone are collected within a second: a worker's stop waits for the
    tasks it still holds, and with TensorFlow's defaults (a check every minute, 5 minutes to
    collect) those of every test so far (28 s alone, 79 s in CI beside other tests).
    """
    config = service.DispatcherConfig(job_gc_check_interval_ms=200, job_gc_timeout_ms=500)
    dispatcher = service.DispatchServer(config)
    host = dispatcher.target.split("://", 1)[1]
    workers = [
        service.WorkerServer(
            service.WorkerConfig(dispatcher_address=host, heartbeat_interval_ms=200)
        )
        for _ in "12"
    ]
    yield dispatcher.target
    for server in (*workers, dispatcher):
        server._stop()


def _rows(pipeline: fitpipe.Pipeline) -> tuple[int, list[tuple[float, ...]]]:
    """One epoch: the number of batches and every row (as a tuple of floats), sorted."""
    count, rows = 0, []
    for batch in pipeline.dataset:
        count += 1
        columns = [np.asarray(part).reshape(len(np.asarray(part)), -1) for part in batch]
        rows.extend(tuple(float(v) for v in np.concatenate(r)) for r in zip(*columns, strict=True))
    return count, sorted(rows)


def _arrays(n: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.arange(2 * n, dtype="float32").reshape(n, 2)
    y = (np.arange(n) % 3).astype("int64")
    return x, y, np.linspace(0.5, 2.0, n).astype("float32")


@pytest.mark.parametrize("shuffle", [False, True])
def test_arrays_deliver_the_same_rows_as_the_local_pipeline(address: str, shuffle: bool) -> None:
    x, y, w = _arrays()
    kwargs: dict[str, Any] = {"batch_size": 8, "shuffle": shuffle, "class_weight": {2: 4.0}}
    local = fitpipe.adapt(x, y, w, **kwargs)
    remote = fitpipe.adapt(x, y, w, data_service=address, **kwargs)
    expected = _rows(local)
    assert remote.rows is None  # never sliced from resident rows
    for _ in range(2):  # each epoch is a new service job
        assert _rows(remote) == expected
    assert remote.num_batches == expected[0] == 7


def test_arrow_tables_run_on_the_workers(address: str) -> None:
    data = table(30)
    local = _rows(fitpipe.adapt(data, schema=WEIGHTED, batch_size=4))
    assert _rows(fitpipe.adapt(data, schema=WEIGHTED, batch_size=4, data_service=address)) == local


def test_graph_only_datasets_run_on_the_workers(address: str) -> None:
    x, y, _ = _arrays(40)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a * 2, b)).batch(5)
    local = _rows(fitpipe.adapt(dataset))
    remote = fitpipe.adapt(dataset, data_service=address)
    assert remote.num_batches is None  # each worker batches the rows of its own splits
    count, rows = _rows(remote)
    assert rows == local[1]
    assert count >= local[0]


def _generator() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    x, y, _ = _arrays(8)
    yield x, y


class _Batches(keras.utils.PyDataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        x, y, _ = _arrays(4)
        return x, y


def _py_function_dataset() -> tf.data.Dataset:
    x, y, _ = _arrays(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    return dataset.map(lambda a, b: (tf.py_function(lambda t: t, [a], tf.float32), b))


@pytest.mark.parametrize(
    ("make", "adapter", "op"),
    [
        (lambda _: _generator(), "generator", "PyFunc"),
        (lambda _: _Batches(), "pydataset", "PyFunc"),
        (lambda _: _py_function_dataset(), "tf.data", "EagerPyFunc"),
        (lambda d: write(d / "p", 20, 5), "parquet", "PyFunc"),
    ],
)
def test_pipelines_calling_python_are_refused_before_any_batch(
    address: str, tmp_path: Path, make: Any, adapter: str, op: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)  # Parquet streamed by pyarrow
    x = make(tmp_path)
    schema = SCHEMA if adapter == "parquet" else None
    with pytest.raises(FitpipeValueError, match=rf"{REFUSED}.*adapter '{adapter}'.*{op}"):
        fitpipe.adapt(x, schema=schema, data_service=address)


def test_small_parquet_read_into_memory_runs_on_the_workers(address: str, tmp_path: Path) -> None:
    path = write(tmp_path / "p", 20, 5)
    local = fitpipe.adapt(path, schema=SCHEMA, batch_size=4)
    remote = fitpipe.adapt(path, schema=SCHEMA, batch_size=4, data_service=address)
    assert local.rows is not None  # held in memory, so graph-native

    def rows(pipeline: Any) -> list[tuple[float, ...]]:
        return sorted(tuple(r) for b in pipeline.dataset for r in b[0].numpy().tolist())

    assert rows(remote) == rows(local)


def test_fit_refuses_before_training(address: str) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile("sgd", "mse")
    before = model.get_weights()
    with pytest.raises(FitpipeValueError, match=REFUSED):
        trainer.fit(_generator(), data_service=address, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_python_stages_are_found_in_the_dataset_graph() -> None:
    assert python_stages(tf.data.Dataset.range(3).map(lambda i: i * 2)) == []
    assert python_stages(_py_function_dataset()) == ["EagerPyFunc"]


@pytest.mark.parametrize("bad", [5, ""])
def test_an_invalid_address_is_refused(bad: Any) -> None:
    x, y, _ = _arrays()
    with pytest.raises(FitpipeTypeError, match="invalid `data_service`"):
        fitpipe.adapt(x, y, data_service=bad)


def _history(x: Any, y: Any, **kwargs: Any) -> dict[str, list[float]]:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = fitpipe.Trainer(model)
    trainer.compile(keras.optimizers.SGD(0.0), "mse", metrics=["mae"])
    return trainer.fit(x, y, batch_size=8, epochs=2, verbose=0, **kwargs).history


def test_fit_on_the_service_sees_every_row_once_per_epoch(address: str) -> None:
    # With a learning rate of 0 the epoch logs are means over the rows seen, whatever their
    # order: equal to the local run only if every row came exactly once.
    x, _, _ = _arrays(44)
    y = x.sum(axis=1, keepdims=True) / 100
    local = _history(x, y, shuffle=False)
    remote = _history(x, y, shuffle=True, data_service=address)
    for key in ("loss", "mae"):
        np.testing.assert_allclose(remote[key], local[key], rtol=1e-5)
