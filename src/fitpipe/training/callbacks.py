"""What fitpipe adds around Keras' callbacks: which hooks listen, the progress bar, History.

Keras' ``ProgbarLogger`` draws the bar on each batch's end when 0.05 s have passed since the
last redraw, then once more, finalized, on the epoch's (or ``predict``'s) end. When the last
batch ends more than 0.05 s after the previous redraw (a loaded machine), its ``3/3`` line is
drawn twice: once by the batch, once finalized. Where output is not a terminal (a log file,
a pipe, ``capsys``), both lines stay. fitpipe's :class:`ProgressBar` leaves the last batch's
line to the finalizing update, so it is drawn once whatever the timing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from fitpipe.pipeline import ClassWeightPlan, ValidationSplit
    from fitpipe.training.input_report import InputReport

__all__ = [
    "ProgressBar",
    "RunCallbacks",
    "callback_list",
    "history_of",
    "listens_per_batch",
    "set_steps",
]

_BATCH_HOOKS = {
    "train": ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"),
    "test": ("on_test_batch_begin", "on_test_batch_end"),
    "predict": ("on_predict_batch_begin", "on_predict_batch_end"),
}


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, drawing the last step's line once (by the finalizing update)."""

    def _update_progbar(self, batch: int, logs: Any = None) -> None:
        if self.target is not None and batch + 1 >= self.target:
            # The epoch's (or run's) end redraws this step finalized, with the epoch's logs.
            self._maybe_init_progbar()
            self.seen = batch + 1
            return
        super()._update_progbar(batch, logs)


def callback_list(
    model: keras.Model, callbacks: Any, verbose: Any, epochs: int, steps: int | None, history: bool
) -> keras.callbacks.CallbackList:
    """The run's ``CallbackList``, with History and the progress bar added as Keras adds them.

    The progress bar is fitpipe's :class:`ProgressBar` unless the callbacks bring their own
    ``ProgbarLogger``.
    """
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks  # the caller's, used as given (Keras sets none of its params)
    listed = list(keras.tree.flatten(callbacks)) if callbacks else []
    own_bar = any(isinstance(cb, keras.callbacks.ProgbarLogger) for cb in listed)
    if verbose != 0 and not own_bar:
        if history and not any(isinstance(cb, keras.callbacks.History) for cb in listed):
            listed.append(keras.callbacks.History())
        listed.append(ProgressBar())
    return RunCallbacks(
        listed,
        add_history=history,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )


class RunCallbacks(keras.callbacks.CallbackList):
    """The ``CallbackList`` fitpipe makes for a run: the one whose ``params`` it updates.

    A ``CallbackList`` given by the caller is used as given, as Keras uses it: its ``params``
    stay the caller's (a ``ProgbarLogger`` in it made without them raised ``KeyError``).
    """


def _saves_per_epoch(callback: Any) -> bool:
    return bool(callback.save_freq == "epoch")


def _writes_per_epoch(callback: Any) -> bool:
    # (profiling a batch range is set by ``profile_batch``, kept only in private fields)
    tracing = getattr(callback, "_should_trace", True)
    return callback.update_freq == "epoch" and not callback.write_steps_per_second and not tracing


#: Keras' callbacks whose batch hooks do nothing with these settings (their defaults): a
#: checkpoint saved once an epoch, TensorBoard writing once an epoch without profiling.
#: Their hooks need no call a step: fitpipe runs several steps a call as with no callback,
#: and calls the hooks once a call, as Keras does with ``steps_per_execution`` above 1.
#: A ``ModelCheckpoint`` forced calls of one step: 3.9 s against 1.0 s for 3 epochs of
#: 64,000 x 32 rows at batch 32, no faster than Keras.
_QUIET_WHEN: tuple[tuple[type, Callable[[Any], bool]], ...] = (
    (keras.callbacks.ModelCheckpoint, _saves_per_epoch),
    (keras.callbacks.BackupAndRestore, _saves_per_epoch),
    (keras.callbacks.OrbaxCheckpoint, _saves_per_epoch),
    (keras.callbacks.TensorBoard, _writes_per_epoch),
    # the progress bar redraws by time, not by batch; History has no batch hooks
    (keras.callbacks.ProgbarLogger, lambda callback: True),
)


def listens_per_batch(cbs: keras.callbacks.CallbackList, modes: tuple[str, ...]) -> bool:
    """Tells whether a callback has batch hooks.

    The hooks of Keras' callbacks in :data:`_QUIET_WHEN` (the progress bar's always), when
    they do nothing with the callback's settings, do not count; those of a subclass that
    overrides them do (a ``History`` or ``ProgbarLogger`` subclass recording each batch).
    """
    for callback in cbs.callbacks:
        base: type = keras.callbacks.Callback
        for keras_class, quiet in _QUIET_WHEN:
            if isinstance(callback, keras_class) and quiet(callback):
                base = keras_class
        for mode in modes:
            for hook in _BATCH_HOOKS[mode]:
                own = vars(callback).get(hook) is not None
                if own or getattr(type(callback), hook, None) is not getattr(base, hook):
                    return True
    return False


def set_steps(cbs: keras.callbacks.CallbackList, steps: int | None) -> None:
    """Gives the callbacks (the progress bar) this epoch's number of steps."""
    params = getattr(cbs, "params", None)
    if isinstance(cbs, RunCallbacks) and isinstance(params, dict) and params.get("steps") != steps:
        cbs.set_params({**params, "steps": steps})


def history_of(cbs: keras.callbacks.CallbackList, model: keras.Model) -> keras.callbacks.History:
    """The History callback of the run."""
    for callback in cbs.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    return model.history


def report_class_weight(
    cbs: keras.callbacks.CallbackList, plan: ClassWeightPlan | None, verbose: Any
) -> None:
    """Puts a computed ``class_weight="balanced"`` in the run's ``params`` (and prints it).

    ``params["class_weight"]`` is the ``class_weight`` as given with ``"balanced"``
    replaced by its map: callbacks see it, and ``fit``'s History keeps it. Nothing is added
    when no weight was computed (``params`` stay as Keras makes them).
    """
    if plan is None or plan.balanced_rows is None:
        return
    if isinstance(cbs, RunCallbacks):
        cbs.set_params({**(cbs.params or {}), "class_weight": plan.resolved})
    if verbose != 0:
        shown = {c: round(w, 4) for c, w in plan.resolved.items()}
        if any(isinstance(w, dict) for w in plan.resolved.values()):
            shown = {k: {c: round(w, 4) for c, w in v.items()} for k, v in plan.resolved.items()}
        text = f"class_weight='balanced': {shown} from {plan.balanced_rows:,} rows"
        print(text, file=sys.stdout, flush=True)


def report_split(
    cbs: keras.callbacks.CallbackList, split: ValidationSplit | None, verbose: Any
) -> None:
    """Puts the sizes of a grouped or stratified ``validation_split`` in ``params`` (and prints).

    ``params["validation_split_sizes"]`` holds rows (and keys) per side, as
    :meth:`~fitpipe.pipeline.ValidationSplit.as_params` gives them; nothing is added for a
    plain split.
    """
    if split is None:
        return
    if isinstance(cbs, RunCallbacks):
        cbs.set_params({**(cbs.params or {}), "validation_split_sizes": split.as_params()})
    if verbose != 0:
        print(split.describe(), file=sys.stdout, flush=True)


def report_input(history: Any, report: InputReport, verbose: Any) -> None:
    """Keeps the input-bound report as ``history.input_report`` (and prints its line).

    See :mod:`fitpipe.training.input_report`: a JSON-able dict with the share of time the
    step waited for input, per epoch, and the stage that dominates when input-bound.
    """
    if history is not None:
        history.input_report = report.as_dict()
    if verbose != 0:
        print(report.line(), file=sys.stdout, flush=True)
