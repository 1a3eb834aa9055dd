"""fitpipe inside a Ray Train ``TensorflowTrainer`` loop (Ray sets ``TF_CONFIG`` per worker).

Usage: ``python3 examples/cluster/ray_train.py PARQUET_FOLDER [WORKERS]``; the folder needs
float columns ``a``, ``b`` and ``y``. Needs ``pip install "ray[train]"`` (not a fitpipe
dependency; the ``test`` extra installs it). ``tests/distribute/test_ray_train.py`` runs the
same loop on a local Ray cluster, with a checkpoint Ray restores.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import ray
from ray.train import ScalingConfig
from ray.train.tensorflow import TensorflowTrainer


def train_loop(config: dict[str, Any]) -> None:
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: it joins the cluster

    import keras

    import fitpipe

    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        trainer = fitpipe.Trainer(model)
        trainer.compile(optimizer=keras.optimizers.SGD(1e-6), loss="mse")
    history = trainer.fit(
        config["path"],
        schema=fitpipe.Schema(["a", "b"], "y"),
        batch_size=64,
        epochs=config["epochs"],
        verbose=0,
    )
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    print(f"worker {task['index']}: {history.history}", flush=True)


def main() -> None:
    path = os.path.abspath(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    ray.init(num_cpus=workers, include_dashboard=False)
    result = TensorflowTrainer(
        train_loop,
        train_loop_config={"path": path, "epochs": 2},
        scaling_config=ScalingConfig(num_workers=workers),
    ).fit()
    ray.shutdown()
    if result.error:
        raise result.error


if __name__ == "__main__":
    main()
