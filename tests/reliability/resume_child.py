"""A training run for the kill-and-resume tests, run as a child process.

Usage: ``python resume_child.py FORM MODE WORKDIR [MODE WORKDIR ...]`` with FORM one of
``arrays``, ``parquet``, ``generator``, ``pydataset`` (its batches shuffled every epoch),
``grain`` (resumed from the iterator's saved state), ``torch`` (a ``DataLoader`` in order,
read again up to the position) and MODE one of:

- ``full``: trains every epoch and writes the final weights to ``WORKDIR/FORM-full.npz``;
- ``interrupt``: trains with a backup every 3 batches and, at epoch 1 batch KILL_BATCH (an
  optional 4th argument, default 5), writes ``WORKDIR/ready`` and waits to be killed (the
  parent sends SIGKILL); the backups of epoch 1 are made at its batches 0, 3 and 6;
- ``resume``: trains again with the same backup folder, so the run resumes, and writes the
  final weights to ``WORKDIR/FORM-resume.npz``.

Several runs may follow in one process (each starts from ``keras.utils.set_random_seed``, so a
run does not depend on the runs before it): the tests restart a killed run in a fresh process
and run the control and the uninterrupted run after it in the same one, saving two imports of
TensorFlow (about 10 s of CPU each) per test.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import fitpipe

ROWS, FEATURES, BATCH, EPOCHS = 64, 4, 8, 3
KILL_EPOCH = 1


class WaitForKill(keras.callbacks.Callback):
    """Signals the parent at the kill point and sleeps until the parent kills the process."""

    def __init__(self, ready: str, batch: int) -> None:
        super().__init__()
        self.ready = ready
        self.batch = batch
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: object = None) -> None:
        if (self.epoch, batch) == (KILL_EPOCH, self.batch):
            with open(self.ready, "w") as file:
                file.write("ready")
            time.sleep(120)
            raise SystemExit("not killed")


class Batches(keras.utils.PyDataset):
    """The rows in batches of ``BATCH``, read by index (shuffled by ``fit`` every epoch)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y

    def __len__(self) -> int:
        return ROWS // BATCH

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(index * BATCH, (index + 1) * BATCH)
        return self.x[rows], self.y[rows]


def data(form: str, workdir: str) -> dict[str, object]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = (x @ np.arange(1, FEATURES + 1, dtype="float32")[:, None] > 0).astype("float32")
    if form == "arrays":
        return {"x": x, "y": y, "shuffle": True}
    if form == "grain":
        import grain

        rows = [(x[i], y[i]) for i in range(ROWS)]
        dataset = grain.MapDataset.source(rows).shuffle(seed=5).batch(BATCH).to_iter_dataset()
        return {"x": dataset, "batch_size": None}
    if form == "torch":
        import torch

        rows = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        return {"x": torch.utils.data.DataLoader(rows, batch_size=BATCH), "batch_size": None}
    if form == "pydataset":
        return {"x": Batches(x, y), "shuffle": True, "batch_size": None}
    if form == "generator":

        def batches() -> object:  # every epoch's batches, in order, then ends
            for _ in range(EPOCHS):
                for start in range(0, ROWS, BATCH):
                    yield x[start : start + BATCH], y[start : start + BATCH]

        return {"x": batches(), "steps_per_epoch": ROWS // BATCH, "batch_size": None}
    folder = os.path.join(workdir, "data")
    os.makedirs(folder, exist_ok=True)
    table = pa.table({"f": pa.array(list(x), pa.list_(pa.float32(), FEATURES)), "y": y[:, 0]})
    for part in range(4):  # 4 files of 2 row groups: shuffled by row group and within a buffer
        path = os.path.join(folder, f"part-{part}.parquet")
        pq.write_table(table.slice(part * 16, 16), path, row_group_size=8)
    schema = fitpipe.Schema(features="f", targets="y")
    return {"x": folder, "schema": schema, "shuffle": True}


def main(form: str, mode: str, workdir: str, kill_batch: str = "5") -> None:
    keras.utils.set_random_seed(11)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    trainer = fitpipe.Trainer(model)
    trainer.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    backup = keras.callbacks.BackupAndRestore(os.path.join(workdir, f"backup-{form}"), save_freq=3)
    callbacks: list[keras.callbacks.Callback] = [] if mode == "full" else [backup]
    if mode == "interrupt":
        # After the backup callback: at a batch it backs up at, the kill comes right after
        # the backup and before fitpipe confirms the position.
        callbacks.append(WaitForKill(os.path.join(workdir, "ready"), int(kill_batch)))
    kwargs = {"batch_size": BATCH, "epochs": EPOCHS, **data(form, workdir)}
    trainer.fit(callbacks=callbacks, verbose=0, **kwargs)
    weights = {str(i): w for i, w in enumerate(model.get_weights())}
    np.savez(os.path.join(workdir, f"{form}-{mode}.npz"), **weights)


def runs(args: list[str]) -> list[tuple[str, ...]]:
    """``MODE WORKDIR`` groups (``interrupt`` may add its kill batch) of the command line."""
    groups: list[tuple[str, ...]] = []
    while args:
        mode, workdir, args = args[0], args[1], args[2:]
        extra = [args.pop(0)] if mode == "interrupt" and args and args[0].isdigit() else []
        groups.append((mode, workdir, *extra))
    return groups


if __name__ == "__main__":
    for run in runs(sys.argv[2:]):
        main(sys.argv[1], *run)
