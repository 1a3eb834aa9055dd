"""Ray Train: a ``TensorflowTrainer`` of two workers, each training with ``fitpipe.Trainer``.

The test starts a local Ray cluster (two CPUs), runs the training loop of the README's Ray
example on a Parquet folder sharded at the source, and shuts Ray down. With row groups of one
worker-step of rows (as in ``test_dist_multi_worker.py``), step ``i`` of the cluster trains
on the rows of batch ``i`` on one device: both workers run the same steps, read disjoint row
groups, and end with the one-device History. A second run resumes from the checkpoint the
first one reported to Ray and trains the remaining epoch, ending where the uninterrupted
one-device run ends.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dist_data import SCHEMA, worker_model, write

import fitpipe

ray = pytest.importorskip("ray")
pytest.importorskip("ray.train.tensorflow")
from ray.train import Checkpoint, RunConfig, ScalingConfig  # noqa: E402
from ray.train.tensorflow import TensorflowTrainer  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
HERE = Path(__file__).resolve().parent


def train_loop(config: dict[str, Any]) -> None:
    """One Ray worker: the strategy first, then fitpipe on the folder; writes what it saw."""
    import keras
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    from fitpipe.columnar import parquet

    read: list[int] = []
    training = [False]  # not the first rows read while planning (the batches' signature)

    class Recording(parquet._GroupReader):
        """Records the row groups read once training runs (not while planning)."""

        def __call__(self, columns: list[str], buffered: bool = False) -> Any:
            if training[0]:
                read.append(self.group)
            return super().__call__(columns, buffered)

    parquet._GroupReader = Recording  # type: ignore[misc]
    with strategy.scope():
        model = worker_model()
    initial_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            model.load_weights(os.path.join(folder, "model.weights.h5"))
            initial_epoch = json.loads(Path(folder, "epoch.json").read_text())

    class Report(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[int] = []

        def on_train_begin(self, logs: Any = None) -> None:
            training[0] = True

        def on_train_end(self, logs: Any = None) -> None:
            training[0] = False

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.steps.append(0)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.steps[-1] += 1

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            with tempfile.TemporaryDirectory() as folder:
                model.save_weights(os.path.join(folder, "model.weights.h5"))
                Path(folder, "epoch.json").write_text(json.dumps(epoch + 1))
                ray.train.report(dict(logs or {}), checkpoint=Checkpoint.from_directory(folder))

    report = Report()
    history = fitpipe.Trainer(model).fit(
        config["path"],
        schema=SCHEMA,
        batch_size=8,
        epochs=config["epochs"],
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[report],
    )
    rank = ray.train.get_context().get_world_rank()
    Path(config["out"], f"worker-{rank}.json").write_text(
        json.dumps(
            {
                "history": history.history,
                "steps": report.steps,
                "read": read,
                "weights": [w.ravel().tolist() for w in model.get_weights()],
            }
        )
    )


def _run(folder: Path, out: Path, storage: Path, epochs: int) -> tuple[Any, list[Any]]:
    """One run; a run of the same name and storage restores the last checkpoint (Ray's own)."""
    out.mkdir()
    result = TensorflowTrainer(
        train_loop,
        train_loop_config={"path": str(folder), "out": str(out), "epochs": epochs},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=str(storage), name="fitpipe"),
    ).fit()
    assert result.error is None, result.error
    return result, [json.loads((out / f"worker-{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run of one epoch, then a run resumed from its checkpoint for the second epoch."""
    base = tmp_path_factory.mktemp("ray")
    folder = write(base / "data", 48, row_group=4)  # 12 row groups of one worker-step
    paths = os.pathsep.join([str(Path(fitpipe.__file__).parents[1]), str(HERE)])
    env = {"PYTHONPATH": paths, "TF_CPP_MIN_LOG_LEVEL": "3"}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        runtime_env={"env_vars": env},
        log_to_driver=False,
    )
    try:
        first, workers = _run(folder, base / "first", base / "ray", epochs=1)
        assert first.checkpoint is not None
        _, resumed = _run(folder, base / "resumed", base / "ray", epochs=2)
    finally:
        ray.shutdown()
    one = worker_model()
    history = fitpipe.Trainer(one).fit(
        str(folder), schema=SCHEMA, batch_size=8, epochs=2, shuffle=False, verbose=0
    )
    return {
        "first": workers,
        "resumed": resumed,
        "one": history.history,
        "weights": [w.ravel() for w in one.get_weights()],
    }


def test_ray_workers_read_disjoint_row_groups_and_run_the_same_steps(runs: dict[str, Any]):
    first = runs["first"]
    assert [w["steps"] for w in first] == [[6], [6]]
    assert set(first[0]["read"]) == set(range(0, 12, 2))
    assert set(first[1]["read"]) == set(range(1, 12, 2))
    assert not ray.is_initialized()  # the cluster is shut down after the runs


def test_ray_workers_end_with_the_one_device_history(runs: dict[str, Any]) -> None:
    for worker in runs["first"]:
        assert worker["history"].keys() == runs["one"].keys()
        for key, values in worker["history"].items():
            np.testing.assert_allclose(values, runs["one"][key][:1], rtol=RTOL, atol=ATOL)


def test_a_run_resumed_from_the_ray_checkpoint_goes_on(runs: dict[str, Any]) -> None:
    for worker in runs["resumed"]:
        assert worker["steps"] == [6]  # only the second epoch
        for key, values in worker["history"].items():
            np.testing.assert_allclose(values, runs["one"][key][1:], rtol=RTOL, atol=ATOL)
        for a, b in zip(worker["weights"], runs["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
