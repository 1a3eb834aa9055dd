"""The epoch loop of ``fit``: training epochs, validation, callbacks, backups and reports.

``Trainer.fit`` checks its arguments and builds the pipelines; :class:`FitLoop` runs them.
It is built and run by ``fit`` itself (no frame between them), so the warnings it gives
(an epoch with no step, a position that matches no backup) point at the user's call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Container, Iterator
from typing import Any

import keras
import tensorflow as tf

from fitpipe.adapters import timing
from fitpipe.errors import FitpipeError, message
from fitpipe.pipeline import Pipeline
from fitpipe.schemas import Mode
from fitpipe.training import arguments, distribute
from fitpipe.training import callbacks as callbacks_mod
from fitpipe.training.batch_checks import BatchChecks
from fitpipe.training.compile_watch import CompileWatch
from fitpipe.training.conversions import absent_as_none
from fitpipe.training.epochs import (
    RAN_OUT_VALIDATING,
    EpochRunner,
    no_step_error,
    warn_no_step,
)
from fitpipe.training.input_report import InputReport
from fitpipe.training.logs import epoch_logs
from fitpipe.training.loops import evaluate_loop
from fitpipe.training.resume import PositionBackups
from fitpipe.training.state import ModelState
from fitpipe.training.steps import ANNOUNCE_XLA

__all__ = ["FitLoop", "FitSettings", "closing", "run_no_epoch"]


@contextlib.contextmanager
def closing(pipeline: Pipeline | None) -> Iterator[Pipeline | None]:
    """Closes ``pipeline`` (when there is one) on leaving the block."""
    try:
        yield pipeline
    finally:
        if pipeline is not None:
            pipeline.close()


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """``fit``'s arguments that shape its loop, checked.

    Args:
        epochs: The epoch to stop at (capped by ``keras.config.set_max_epochs``).
        verbose: 0, 1, 2 or ``"auto"``.
        callbacks: The user's callbacks (a list, or a ``CallbackList``).
        steps_per_epoch: Batches per epoch; None for one pass; -1 until the input ends.
        validation_steps: Batches per validation; None for the whole validation input.
        validation_freq: Validate every this many epochs, or at these 1-based epochs.
        finite: The check of non-finite values in batches as they pass (or None).
        given: The training input as given (shown in the error of an input with no batch).
    """

    epochs: int
    verbose: Any
    callbacks: Any
    steps_per_epoch: int | None
    validation_steps: int | None
    validation_freq: int | Container[int]
    finite: str | None = None
    given: Any = None


class FitLoop:
    """Runs ``fit``'s epochs over its (already checked) training and validation pipelines.

    Building it distributes the pipelines over the model's strategy and makes the runners,
    the callback list and the compiled train step; :meth:`run` runs the epochs.

    Args:
        model: The compiled model.
        state: The model's :class:`~fitpipe.training.state.ModelState`.
        train: The training pipeline.
        val: The validation pipeline, or None.
        settings: The loop's arguments.
    """

    def __init__(
        self,
        model: keras.Model,
        state: ModelState,
        train: Pipeline,
        val: Pipeline | None,
        settings: FitSettings,
    ) -> None:
        self.model, self.state, self.settings = model, state, settings
        plan, how = train.class_weight, train.split
        self.train = distribute.distributed_pipeline(model, train, Mode.TRAIN, "fit")
        val = distribute.distributed_pipeline(model, val, Mode.EVALUATE, "evaluate")
        steps = arguments.limit_steps(settings.steps_per_epoch, "steps_per_epoch")
        self.runner = EpochRunner(self.train, steps)
        self.runner.checks = BatchChecks.for_model(  # (the spec of a batch before a split)
            model, train.element_spec, "fit", settings.finite
        )
        self.cbs = _callbacks(model, settings, self.runner.num_batches, plan, how)
        self.execution = state.execution_size(model, self.cbs, "train", "test")
        val_steps = (
            arguments.limit_steps(settings.validation_steps, "validation_steps") if val else None
        )
        self.val_runner = self._val_runner(val, val_steps)
        self.function = state.function(model, "train", self.train)
        batched = train.batch_size is None
        self.report = InputReport(self.train.adapter, self.function.timed, batched)
        self.backups = PositionBackups(self.cbs.callbacks, self.runner, model)
        self.watch = CompileWatch(model)

    def _val_runner(self, val: Pipeline | None, steps: int | None) -> EpochRunner | None:
        if not val:
            return None
        runner = EpochRunner(val, steps)
        runner.ran_out = RAN_OUT_VALIDATING
        spec = getattr(val, "base", val).element_spec  # a batch's before a strategy's split
        runner.checks = BatchChecks.for_model(self.model, spec, "fit", self.settings.finite)
        if runner.checks is not None:
            runner.checks.of = " of the validation data"
        return runner

    def run(self, initial_epoch: int) -> keras.callbacks.History:
        """Runs the epochs from ``initial_epoch`` (or the position of a restored backup).

        Returns:
            The run's ``keras.callbacks.History``, with its input report.
        """
        model, runner = self.model, self.runner
        model.stop_training = False
        # The train step says when it is compiled with XLA (steps.XLA_NOTICE) in this run
        # alone, when verbose: not in a later train_on_batch, which prints nothing.
        announcing = ANNOUNCE_XLA.set(self.settings.verbose != 0)
        self.cbs.on_train_begin()
        self.watch.check("`on_train_begin`")
        start = getattr(model, "_initial_epoch", None) or initial_epoch
        start, first = self.backups.restore(start)
        try:
            logs = self._epochs(start, first)
        finally:  # a pass read ahead for an epoch that will not run stops reading
            ANNOUNCE_XLA.reset(announcing)
            runner.close()
            if self.val_runner is not None:
                self.val_runner.close()
        return self._finish(logs)

    def _epochs(self, start: int, first: int) -> dict[str, Any] | None:
        """Runs epochs ``start...`` (the first from step ``first``); the last epoch's logs."""
        model, runner, cbs = self.model, self.runner, self.cbs
        logs: dict[str, Any] | None = None
        resumed = first > 0
        for epoch in range(start, self.settings.epochs):
            if epoch > start and runner.input_ended():  # begin no epoch that cannot run
                warn_no_step(epoch)
                break
            self._begin_epoch(epoch)
            # resumed mid-epoch: the metrics hold the steps of it run before the restart
            restored = first > 0 and self.backups.restore_metrics(self._build_step)
            _, last = runner.run(
                self.function,
                self.execution,
                cbs.on_train_batch_begin,
                self._batch_end(epoch),
                lambda: bool(model.stop_training),
                first,
            )
            first = 0
            self.watch.check("`on_train_batch_begin` or `on_train_batch_end`")
            if runner.timing is not None and not runner.ran_nothing:
                self.report.add(epoch, runner.timing)
            if runner.ran_nothing and epoch == start and not resumed:
                raise no_step_error("fit", self.settings.given)  # nothing at all to train on
            if runner.ran_nothing:  # no metric to report: Keras' "ran out of data", and stop
                warn_no_step(epoch)
                break
            logs = epoch_logs(model, last, flatten=False) if last is not None or restored else {}
            self.train.on_epoch_end()
            if self.val_runner is not None and self._validates(epoch):
                self._validate(epoch, self.val_runner, logs)
            self._end_epoch(epoch, logs)
            if model.stop_training:
                break
        return logs

    def _build_step(self) -> None:
        """Traces the train step for the input's batches, running nothing.

        Builds what the step builds when first traced (the compiled metrics), in a function
        of its own: the step's own trace is left to the first call.
        """
        step = tf.function(self.function.step, autograph=False)
        step.get_concrete_function(absent_as_none(self.train.element_spec))

    def _validate(self, epoch: int, runner: EpochRunner, logs: dict[str, Any]) -> None:
        """The validation after ``epoch``: its ``val_`` metrics added to ``logs``."""
        later = range(epoch + 1, self.settings.epochs)
        runner.passes_after = sum(1 for e in later if self._validates(e))
        val_logs = evaluate_loop(self.model, self.state, runner, self.cbs, self.execution, "fit")
        if val_logs is None:
            warn_no_step(epoch, validation=True)
        else:
            logs.update({f"val_{name}": value for name, value in val_logs.items()})

    def _validates(self, epoch: int) -> bool:
        return arguments.should_validate(epoch, self.settings.validation_freq)

    def _begin_epoch(self, epoch: int) -> None:
        self.model.reset_metrics()
        callbacks_mod.set_steps(self.cbs, self.runner.num_batches)
        self.cbs.on_epoch_begin(epoch)
        self.watch.check("`on_epoch_begin`")
        # calls of whole epochs: as long as can be
        batches = self.runner.num_batches
        self.runner.passes_after = self.settings.epochs - epoch - 1
        self.execution.fit_epoch(batches)
        ahead = None if batches is None else batches * (self.settings.epochs - epoch)
        self.function.expect_steps(ahead)  # what an XLA trial could pay back

    def _batch_end(self, epoch: int) -> Callable[[int, Any], None]:
        cbs, backups, watch = self.cbs, self.backups, self.watch

        def batch_end(end: int, outputs: Any) -> None:
            backups.before(epoch, end + 1, end)  # the position exists before any backup
            cbs.on_train_batch_end(end, outputs)
            backups.saved(epoch, end + 1)
            watch.check_optimizer("`on_train_batch_begin` or `on_train_batch_end`")

        return batch_end

    def _end_epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        self.backups.before(epoch + 1, 0, None)
        self.cbs.on_epoch_end(epoch, logs)
        self.backups.saved(epoch + 1, 0)
        self.watch.check("`on_epoch_end` or a validation hook")

    def _finish(self, logs: dict[str, Any] | None) -> keras.callbacks.History:
        return _finish(self.model, self.cbs, self.settings, self.report, logs)


def _callbacks(
    model: keras.Model, settings: FitSettings, batches: int | None, plan: Any, how: Any
) -> keras.callbacks.CallbackList:
    """``fit``'s callback list, told the class weights (``plan``) and the split (``how``)."""
    cbs = callbacks_mod.callback_list(
        model, settings.callbacks, settings.verbose, settings.epochs, batches, history=True
    )
    callbacks_mod.report_class_weight(cbs, plan, settings.verbose)
    callbacks_mod.report_split(cbs, how, settings.verbose)
    return cbs


def _finish(
    model: keras.Model,
    cbs: keras.callbacks.CallbackList,
    settings: FitSettings,
    report: InputReport,
    logs: dict[str, Any] | None,
) -> keras.callbacks.History:
    """Ends the run as Keras does (``on_train_end``); its History, with the input report."""
    if settings.epochs > 0 and isinstance(model.optimizer, keras.optimizers.Optimizer):
        model.optimizer.finalize_variable_values(model.trainable_weights)
    cbs.on_train_end(logs=logs)
    history = callbacks_mod.history_of(cbs, model)
    callbacks_mod.report_input(history, report, settings.verbose)
    return history


def run_no_epoch(
    model: keras.Model, train: Pipeline, settings: FitSettings, initial_epoch: int
) -> keras.callbacks.History:
    """``fit`` when its start epoch is ``epochs`` or later: no epoch, as in Keras.

    The callbacks get ``on_train_begin`` and ``on_train_end`` (no logs) and History stays
    empty, with the ``params`` a run would have. Nothing reads the training data beyond
    what adapting it read, and the validation data is not read: ``fit`` does not check
    the data against the model either (Keras never looks at data no step takes).

    Args:
        model: The compiled model.
        train: The training pipeline (for ``params["steps"]``), never read here.
        settings: The loop's arguments.
        initial_epoch: ``fit``'s ``initial_epoch``.

    Raises:
        FitpipeError: When a callback's ``on_train_begin`` moves the start before
            ``epochs`` (a ``BackupAndRestore`` falling back to its previous backup).
    """
    steps = arguments.limit_steps(settings.steps_per_epoch, "steps_per_epoch")
    batches = EpochRunner(train, steps).num_batches
    cbs = _callbacks(model, settings, batches, train.class_weight, train.split)
    model.stop_training = False
    cbs.on_train_begin()
    start = getattr(model, "_initial_epoch", None) or initial_epoch
    if not isinstance(start, int) or start < settings.epochs:
        raise FitpipeError(
            message(
                "fit",
                "had its start epoch moved by a callback's `on_train_begin`",
                "`fit` judged from `initial_epoch` and the backups on disk that no epoch "
                "would run, so it read no data for one",
                "Call `fit` again: it starts from the backup restored now",
                start=start,
                epochs=settings.epochs,
            )
        )
    report = InputReport(train.adapter, timing())
    return _finish(model, cbs, settings, report, None)
