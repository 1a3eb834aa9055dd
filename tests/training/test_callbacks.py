"""Differential tests: Keras callbacks see what they see under Keras ``fit``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from differential import RecordingCallback, assert_events_equal, dense_model, regression_data

from fitpipe.errors import DataCheckWarning
from fitpipe.testing.keras_diff import (
    Side,
    assert_close,
    assert_histories_close,
    assert_weights_close,
    compile_both,
    make_twins,
    run_both,
)

X, Y = regression_data(n=96, d=4)
VAL = (X[:32], Y[:32])
COMPILE = {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}


def _reg() -> keras.Model:
    return dense_model(d=4)


class Interrupt(keras.callbacks.Callback):
    """Raise :class:`InterruptedTraining` when epoch ``at`` begins."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch == self.at:
            raise InterruptedTrainingError(f"interrupted at epoch {epoch}")


class InterruptedTrainingError(Exception):
    """Raised by :class:`Interrupt`."""


def test_callback_model_is_the_users_model_and_hooks_match() -> None:
    recorders: dict[Side, RecordingCallback] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        recorders[side] = RecordingCallback()
        return {
            "x": X,
            "y": Y,
            "batch_size": 32,
            "epochs": 2,
            "validation_data": VAL,
            "callbacks": [recorders[side]],
        }

    res = run_both(_reg, COMPILE, fit_kwargs)
    assert recorders["fitpipe"].models_seen == [res.twin]
    assert recorders["fitpipe"].model is res.twin
    assert_events_equal(recorders["keras"], recorders["fitpipe"])


def test_callbacks_in_nested_lists_all_run_as_in_keras() -> None:
    """Keras' CallbackList flattens nested lists (``callbacks=[common, checkpoint]``)."""
    recorders: dict[Side, list[RecordingCallback]] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        recorders[side] = [RecordingCallback() for _ in range(3)]
        first, second, third = recorders[side]
        nested = [[first, (second,)], third]
        return {"x": X, "y": Y, "batch_size": 32, "epochs": 2, "callbacks": nested}

    run_both(_reg, COMPILE, fit_kwargs)
    for ref, got in zip(recorders["keras"], recorders["fitpipe"], strict=True):
        assert got.counts()["on_epoch_end"] == 2
        assert_events_equal(ref, got)


def test_evaluate_and_predict_hooks_match() -> None:
    ref, twin = make_twins(_reg)
    api = compile_both(ref, twin, COMPILE)
    rec_ref, rec_got = RecordingCallback(), RecordingCallback()
    ref.evaluate(X, Y, batch_size=32, callbacks=[rec_ref], verbose=0)
    api.evaluate(X, Y, batch_size=32, callbacks=[rec_got], verbose=0)
    ref.predict(X, batch_size=40, callbacks=[rec_ref], verbose=0)
    api.predict(X, batch_size=40, callbacks=[rec_got], verbose=0)
    assert rec_got.model is twin
    assert_events_equal(rec_ref, rec_got)
    assert rec_got.counts()["on_predict_batch_end"] == 3


@pytest.mark.parametrize("restore_best_weights", [False, True])
def test_early_stopping(restore_best_weights: bool) -> None:
    stoppers: dict[Side, keras.callbacks.EarlyStopping] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        stoppers[side] = keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=1,
            min_delta=0.05,
            restore_best_weights=restore_best_weights,
        )
        return {
            "x": X,
            "y": Y,
            "batch_size": 16,
            "epochs": 30,
            "validation_data": VAL,
            "callbacks": [stoppers[side]],
        }

    res = run_both(_reg, {"optimizer": keras.optimizers.SGD(0.01), "loss": "mse"}, fit_kwargs)
    assert stoppers["fitpipe"].stopped_epoch == stoppers["keras"].stopped_epoch
    assert 0 < stoppers["keras"].stopped_epoch < 29, "the case must actually stop early"
    assert len(res.twin_history.epoch) == stoppers["keras"].stopped_epoch + 1
    assert stoppers["fitpipe"].best_epoch == stoppers["keras"].best_epoch
    assert res.twin.stop_training is True


def test_model_checkpoint(tmp_path: Path) -> None:
    def fit_kwargs(side: Side) -> dict[str, Any]:
        (tmp_path / side).mkdir()
        ckpt = keras.callbacks.ModelCheckpoint(
            str(tmp_path / side / "w.{epoch:02d}-{val_loss:.2f}.weights.h5"),
            save_weights_only=True,
            monitor="val_loss",
        )
        best = keras.callbacks.ModelCheckpoint(
            str(tmp_path / side / "best.keras"), save_best_only=True
        )
        return {"x": X, "y": Y, "epochs": 3, "validation_data": VAL, "callbacks": [ckpt, best]}

    res = run_both(_reg, COMPILE, fit_kwargs)
    ref_files = sorted(p.name for p in (tmp_path / "keras").iterdir())
    got_files = sorted(p.name for p in (tmp_path / "fitpipe").iterdir())
    assert got_files == ref_files
    assert len(ref_files) == 4
    for name in ref_files:
        if name.endswith(".weights.h5"):
            a, b = _reg(), _reg()
            a.load_weights(tmp_path / "keras" / name)
            b.load_weights(tmp_path / "fitpipe" / name)
            assert_weights_close(a, b)
    best = keras.models.load_model(tmp_path / "fitpipe" / "best.keras")
    assert_weights_close(res.ref, best)


def test_backup_and_restore_resumes(tmp_path: Path) -> None:
    models = make_twins(_reg)
    ref, twin = models
    api = compile_both(ref, twin, COMPILE)
    histories = {}
    for side, fit in (("keras", ref.fit), ("fitpipe", api.fit)):
        backup = str(tmp_path / side)
        kwargs = {"x": X, "y": Y, "batch_size": 16, "epochs": 4, "shuffle": False, "verbose": 0}
        with pytest.raises(InterruptedTrainingError):
            fit(callbacks=[keras.callbacks.BackupAndRestore(backup), Interrupt(at=2)], **kwargs)
        histories[side] = fit(callbacks=[keras.callbacks.BackupAndRestore(backup)], **kwargs)
    assert_histories_close(histories["keras"], histories["fitpipe"])
    assert histories["fitpipe"].epoch == [2, 3]
    assert_weights_close(ref, twin)
    # A finished run deletes its backup, like Keras.
    assert (tmp_path / "keras").exists() == (tmp_path / "fitpipe").exists()


def test_reduce_lr_on_plateau() -> None:
    def fit_kwargs(side: Side) -> dict[str, Any]:
        cb = keras.callbacks.ReduceLROnPlateau(
            monitor="loss", factor=0.5, patience=0, min_delta=10.0, min_lr=1e-4
        )
        return {"x": X, "y": Y, "batch_size": 16, "epochs": 3, "callbacks": [cb]}

    res = run_both(_reg, {"optimizer": keras.optimizers.Adam(0.01), "loss": "mse"}, fit_kwargs)
    lr_ref = float(keras.ops.convert_to_numpy(res.ref.optimizer.learning_rate))
    lr_got = float(keras.ops.convert_to_numpy(res.twin.optimizer.learning_rate))
    assert lr_got == pytest.approx(lr_ref)
    # Epoch 0 sets the baseline; epochs 1 and 2 each halve the rate.
    assert lr_got == pytest.approx(0.01 * 0.5**2)
    assert_close(
        res.ref_history.history["learning_rate"], res.twin_history.history["learning_rate"], "lr"
    )


def test_terminate_on_nan() -> None:
    x = X.copy()
    x[40, 0] = np.nan  # row 40 is in batch 2 (batch size 16)
    recorders: dict[Side, RecordingCallback] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        recorders[side] = RecordingCallback()
        return {
            "x": x,
            "y": Y,
            "batch_size": 16,
            "epochs": 3,
            "callbacks": [keras.callbacks.TerminateOnNaN(), recorders[side]],
        }

    with pytest.warns(DataCheckWarning, match=r"'x\[:, 0\]' holds 1 NaN \(first in row 40\)"):
        res = run_both(_reg, COMPILE, fit_kwargs)  # fitpipe warns, then trains as Keras does
    assert recorders["fitpipe"].counts()["on_train_batch_end"] == 3
    assert_events_equal(recorders["keras"], recorders["fitpipe"])
    assert np.isnan(res.twin_history.history["loss"][0])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_logger(tmp_path: Path) -> None:
    def fit_kwargs(side: Side) -> dict[str, Any]:
        return {
            "x": X,
            "y": Y,
            "epochs": 3,
            "validation_data": VAL,
            "callbacks": [keras.callbacks.CSVLogger(str(tmp_path / f"{side}.csv"))],
        }

    run_both(_reg, COMPILE, fit_kwargs)
    ref_rows, got_rows = _read_csv(tmp_path / "keras.csv"), _read_csv(tmp_path / "fitpipe.csv")
    assert len(ref_rows) == 3
    assert len(got_rows) == len(ref_rows)
    assert list(got_rows[0]) == list(ref_rows[0]), "CSV header differs"
    for i, (r, g) in enumerate(zip(ref_rows, got_rows, strict=True)):
        assert g["epoch"] == r["epoch"]
        for key in r:
            assert_close(float(r[key]), float(g[key]), f"CSV row {i} column {key!r}")


def test_tensorboard_event_files(tmp_path: Path) -> None:
    pytest.importorskip(
        "tensorboard", reason="Keras' TensorBoard callback needs the tensorboard package"
    )

    def fit_kwargs(side: Side) -> dict[str, Any]:
        tb = keras.callbacks.TensorBoard(log_dir=str(tmp_path / side), update_freq="epoch")
        return {"x": X, "y": Y, "epochs": 2, "validation_data": VAL, "callbacks": [tb]}

    run_both(_reg, COMPILE, fit_kwargs)

    def event_dirs(root: Path) -> list[str]:
        return sorted(
            str(p.parent.relative_to(root))
            for p in root.rglob("events.out.tfevents*")
            if p.stat().st_size > 0
        )

    ref_dirs = event_dirs(tmp_path / "keras")
    assert ref_dirs == ["train", "validation"]
    assert event_dirs(tmp_path / "fitpipe") == ref_dirs


def test_lambda_callback_counts_and_log_keys() -> None:
    calls: dict[Side, dict[str, list[tuple[str, ...]]]] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        seen: dict[str, list[tuple[str, ...]]] = {}
        calls[side] = seen

        def rec(name: str) -> Any:
            def hook(*args: Any, logs: dict[str, Any] | None = None) -> None:
                if logs is None and args and isinstance(args[-1], dict):
                    logs = args[-1]
                seen.setdefault(name, []).append(tuple(sorted(logs or {})))

            return hook

        cb = keras.callbacks.LambdaCallback(
            on_epoch_begin=rec("on_epoch_begin"),
            on_epoch_end=rec("on_epoch_end"),
            on_train_batch_begin=rec("on_train_batch_begin"),
            on_train_batch_end=rec("on_train_batch_end"),
            on_train_begin=rec("on_train_begin"),
            on_train_end=rec("on_train_end"),
        )
        return {
            "x": X,
            "y": Y,
            "batch_size": 20,
            "epochs": 2,
            "validation_data": VAL,
            "callbacks": [cb],
        }

    run_both(_reg, COMPILE, fit_kwargs)
    ref_counts = {k: len(v) for k, v in calls["keras"].items()}
    got_counts = {k: len(v) for k, v in calls["fitpipe"].items()}
    assert got_counts == ref_counts
    assert ref_counts["on_train_batch_end"] == 10
    assert calls["fitpipe"] == calls["keras"], "logs keys differ"


@pytest.mark.parametrize("steps_per_execution", [1, 3, 4])
def test_batch_hooks_with_steps_per_execution(steps_per_execution: int) -> None:
    recorders: dict[Side, RecordingCallback] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        recorders[side] = RecordingCallback()
        return {
            "x": X,
            "y": Y,
            "batch_size": 8,
            "epochs": 2,
            "validation_data": VAL,
            "callbacks": [recorders[side]],
        }

    run_both(_reg, {**COMPILE, "steps_per_execution": steps_per_execution}, fit_kwargs)
    # 12 batches per epoch -> one on_train_batch_end per execution.
    got = recorders["fitpipe"].counts()
    assert got["on_train_batch_end"] == 2 * (12 // steps_per_execution)
    assert got == recorders["keras"].counts()


class _EveryBatchCheckpoint(keras.callbacks.ModelCheckpoint):
    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        super().on_train_batch_end(batch, logs)


class _BatchLossHistory(keras.callbacks.History):
    """The usual per-batch loss curve: a History subclass with its own batch hook."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches.append(batch)


class _BatchBar(keras.callbacks.ProgbarLogger):
    """A progress bar subclass counting batches."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches.append(batch)
        super().on_train_batch_end(batch, logs)


def _callbacks(kind: str, root: Path) -> keras.callbacks.Callback:
    made = {
        "History": keras.callbacks.History,
        "ProgbarLogger": keras.callbacks.ProgbarLogger,
        "a History subclass's batch hook": _BatchLossHistory,
        "a ProgbarLogger subclass's batch hook": _BatchBar,
        "checkpoint": lambda: keras.callbacks.ModelCheckpoint(str(root / "m.keras")),
        "checkpoint, every 3 batches": lambda: keras.callbacks.ModelCheckpoint(
            str(root / "m.keras"), save_freq=3
        ),
        "checkpoint, a subclass's batch hook": lambda: _EveryBatchCheckpoint(str(root / "m.keras")),
        "backup": lambda: keras.callbacks.BackupAndRestore(str(root / "backup")),
        "backup, every 2 batches": lambda: keras.callbacks.BackupAndRestore(
            str(root / "backup"), save_freq=2
        ),
        "tensorboard": lambda: keras.callbacks.TensorBoard(str(root / "tb")),
        "tensorboard, every batch": lambda: keras.callbacks.TensorBoard(
            str(root / "tb"), update_freq="batch"
        ),
        "tensorboard, profiling": lambda: keras.callbacks.TensorBoard(
            str(root / "tb"), profile_batch=2
        ),
        "tensorboard, steps per second": lambda: keras.callbacks.TensorBoard(
            str(root / "tb"), write_steps_per_second=True
        ),
        "terminate on NaN": keras.callbacks.TerminateOnNaN,
    }
    return made[kind]()


@pytest.mark.parametrize(
    ("kind", "per_batch"),
    [
        ("History", False),
        ("ProgbarLogger", False),
        ("a History subclass's batch hook", True),
        ("a ProgbarLogger subclass's batch hook", True),
        ("checkpoint", False),
        ("checkpoint, every 3 batches", True),
        ("checkpoint, a subclass's batch hook", True),
        ("backup", False),
        ("backup, every 2 batches", True),
        ("tensorboard", False),
        ("tensorboard, every batch", True),
        ("tensorboard, profiling", True),
        ("tensorboard, steps per second", True),
        ("terminate on NaN", True),
    ],
)
def test_steps_are_fused_unless_a_callbacks_batch_hooks_act(
    kind: str, per_batch: bool, tmp_path: Path
) -> None:
    """Keras' callbacks whose batch hooks do nothing with their settings run as no callback.

    A ``ModelCheckpoint`` saving once an epoch (its default) ran calls of one step, 4x the
    time of the same ``fit`` without it.
    """
    if kind.startswith("tensorboard"):
        pytest.importorskip("tensorboard", reason="Keras' TensorBoard needs tensorboard")
    from fitpipe.training.callbacks import listens_per_batch

    callback = _callbacks(kind, tmp_path)
    listed = keras.callbacks.CallbackList([callback], model=_reg())
    assert listens_per_batch(listed, ("train",)) is per_batch
    import fitpipe

    trainer = fitpipe.Trainer(_reg())
    trainer.compile(**COMPILE)
    trainer.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert (trainer._state.fused is None) is per_batch


@pytest.mark.parametrize("made", [_BatchLossHistory, _BatchBar])
def test_history_and_progbar_subclasses_see_every_batch_as_in_keras(made: type) -> None:
    # they were taken for fitpipe's own History and bar: steps were fused, and their hooks
    # saw 5-8 of 24 batch ends, at indices set by timing
    seen: dict[Side, list[int]] = {}

    def fit_kwargs(side: Side) -> dict[str, Any]:
        callback = made()
        seen[side] = callback.batches
        return {"x": X, "y": Y, "batch_size": 8, "epochs": 2, "callbacks": [callback]}

    run_both(_reg, COMPILE, fit_kwargs, check_params=False)
    assert seen["fitpipe"] == seen["keras"] == list(range(12)) * 2


def test_a_callback_list_given_is_used_as_given() -> None:
    # fitpipe set its params at every epoch (and with class_weight="balanced"): a
    # ProgbarLogger in the list, made without them, raised KeyError: 'verbose'
    labels = (Y > np.median(Y)).astype("float32")
    for bar in (False, True):
        seen = {}
        for side, fit in (("fitpipe", _fitpipe_fit), ("keras", _keras_fit)):
            recorder = RecordingCallback()
            listed = [recorder, keras.callbacks.ProgbarLogger()] if bar else [recorder]
            model = _reg()
            cbs = keras.callbacks.CallbackList(listed, add_history=True, model=model)
            weights = "balanced" if side == "fitpipe" else {0: 1.0, 1: 1.0}  # Keras: no "balanced"
            fit(
                model,
                X,
                labels,
                batch_size=32,
                epochs=2,
                verbose=0,
                callbacks=cbs,
                class_weight=weights,
            )
            seen[side] = (cbs.params, recorder.params, recorder.counts())
        assert seen["fitpipe"] == seen["keras"]
        assert seen["keras"][2]["on_train_batch_end"] == 6


def _fitpipe_fit(model: keras.Model, *args: Any, **kwargs: Any) -> None:
    import fitpipe

    trainer = fitpipe.Trainer(model)
    trainer.compile(**COMPILE)
    trainer.fit(*args, **kwargs)


def _keras_fit(model: keras.Model, *args: Any, **kwargs: Any) -> None:
    model.compile(**COMPILE)
    model.fit(*args, **kwargs)
