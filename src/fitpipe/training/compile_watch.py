"""A ``compile`` during ``fit`` (from a callback): refused before the next step.

``fit`` runs the step its model was compiled with when it began. A callback that compiles
the model again replaces the optimizer and metrics that step updates: the run went on with
the old step (a whole epoch, its weights moved), then failed reading the new, unbuilt
metrics ("Cannot get result() since the metric has not yet been built"). Keras stops at the
next step too (its train function is gone), with ``'NoneType' object is not callable``.
fitpipe stops where the hook that compiled returns, and says why. A compile from another
thread (Keras' own ``model.compile``, which fitpipe cannot refuse as it refuses
``Trainer.compile``) is found at the same checks, and ``evaluate`` checks once its batches ran
(it failed reading the new metrics, with Keras' "has not yet been built").
"""

from __future__ import annotations

from typing import Any

import keras

from fitpipe.errors import RecompiledError, message, raw

__all__ = ["CompileWatch", "still_compiled"]


def still_compiled(
    model: keras.Model, optimizer: Any, made: list[Any], metrics: list[Any] | None = None
) -> bool:
    """Whether ``model`` keeps the ``optimizer`` and the metrics ``made`` of one compile.

    Every ``compile`` makes its loss tracker and compiled metrics anew (and its optimizer,
    unless given the same one); a model of several outputs adds loss trackers at its first
    step, so those made must be kept, not be all. ``metrics``: ``model.metrics``, if read.
    """
    kept = {id(m) for m in (model.metrics if metrics is None else metrics)}
    return getattr(model, "optimizer", None) is optimizer and all(id(m) in kept for m in made)


class CompileWatch:
    """The optimizer and metrics a model was compiled with when ``fit`` began (held).

    Args:
        model: The model being trained (or evaluated).
        caller: The public method that runs, for the error.
    """

    def __init__(self, model: keras.Model, caller: str = "fit") -> None:
        self.model = model
        self.caller = caller
        self.optimizer = getattr(model, "optimizer", None)
        #: Held, so that no id is reused; a model of several outputs adds loss trackers
        #: at its first step (checked to be kept, not to be all).
        self.metrics = list(model.metrics)

    def check_optimizer(self, hook: str) -> None:
        """After a batch's hooks: the optimizer alone (a compile makes a new one).

        A compile given the very optimizer it had is found at the epoch's end (:meth:`check`).
        """
        if getattr(self.model, "optimizer", None) is not self.optimizer:
            raise self._error(hook)

    def check(self, hook: str) -> None:
        """After an epoch's hooks: the optimizer and every metric compiled are the model's."""
        if not still_compiled(self.model, self.optimizer, self.metrics):
            raise self._error(hook)

    def _error(self, hook: str) -> RecompiledError:
        optimizer: Any = getattr(self.model, "optimizer", None)
        new = "the same" if optimizer is self.optimizer else "a new"
        caller = self.caller
        return RecompiledError(
            message(
                caller,
                "cannot go on: the model was compiled again during it (found after "
                f"{hook}: a callback's `compile`, or another thread's)",
                f"`{caller}` runs the step of the compile before it; a `compile` during it "
                "replaces the optimizer and metrics that step updates, so no further step "
                "ran (Keras stops there too)",
                f"Compile before `{caller}`, and not while another thread trains or evaluates "
                "the model. To change the learning rate during training, set "
                "`self.model.optimizer.learning_rate` (or use "
                "`keras.callbacks.LearningRateScheduler`); to change the loss or optimizer, "
                "set `self.model.stop_training = True` in the callback, then compile and "
                "call `fit` again",
                optimizer=raw(f"{new} {type(optimizer).__name__}"),
            )
        )
