"""What an input that runs out of data is told: the warnings of a cut epoch, the no-batch error.

As Keras words them: an epoch (or validation, or ``steps`` of ``evaluate``/``predict``) whose
input ends before its steps warns and goes on; an epoch that ran no step reports no metric;
a run whose input gave no batch at all is an error (:func:`no_step_error`).
"""

from __future__ import annotations

from typing import Any

from fitpipe.errors import FitpipeValueError, FitpipeWarning, message, warn

__all__ = [
    "RAN_OUT",
    "RAN_OUT_OF_STEPS",
    "RAN_OUT_VALIDATING",
    "RAN_SHORT",
    "no_step_error",
    "warn_no_step",
]

#: :attr:`~fitpipe.training.epochs.EpochRunner.ran_out` of ``fit``'s epochs (the default).
RAN_OUT = (
    "Your input ran out of data; interrupting the epoch. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches (for a "
    "`tf.data.Dataset`, `.repeat()` it)."
)
#: :attr:`~fitpipe.training.epochs.EpochRunner.ran_out` of ``fit``'s validation runs.
RAN_OUT_VALIDATING = (
    "Your validation data ran out of data; interrupting the validation. Make sure that "
    "`validation_data` gives at least `validation_steps` batches at every validation (for a "
    "`tf.data.Dataset`, `.repeat()` it), or lower `validation_steps`."
)
#: :attr:`~fitpipe.training.epochs.EpochRunner.ran_out` of ``evaluate`` and ``predict``.
RAN_OUT_OF_STEPS = (
    "Your input ran out of data before `steps` batches; the last batches were not run. Make "
    "sure that your dataset or generator can generate at least `steps` batches (for a "
    "`tf.data.Dataset`, `.repeat()` it), or lower `steps`."
)
#: The warning of a pass that ends before the batches its input's length promised.
RAN_SHORT = (
    "Your input ran out of data; interrupting the pass after {steps} of the {known} batches "
    "its length promised. Make sure that the input's length (`len()` of a DataLoader, of its "
    "dataset or of a PyDataset) counts the batches it gives."
)

_NO_TRAINING_STEP = (
    "Your input ran out of data; interrupting training. Epoch {epoch} ran no step, so it "
    "reports no metrics and training stops after the last epoch that ran. Make sure that "
    "your dataset or generator can generate at least `steps_per_epoch * epochs` batches "
    "(for a `tf.data.Dataset`, `.repeat()` it; a Python generator can be iterated only once)."
)
_NO_VALIDATION_STEP = (
    "Your validation data ran out of data: the validation after epoch {epoch} ran no step, so "
    "that epoch reports no `val_` metrics. Make sure that `validation_data` gives at least "
    "`validation_steps` batches at every validation (a Python generator can be iterated "
    "only once; pass a `tf.data.Dataset`, a `keras.utils.PyDataset` or arrays instead)."
)


def warn_no_step(epoch: int, validation: bool = False) -> None:
    """Warns that an epoch (or its validation) ran no step and so reports no metric.

    Args:
        epoch: The 0-based epoch.
        validation: True for the validation run after the epoch.

    """
    text = _NO_VALIDATION_STEP if validation else _NO_TRAINING_STEP
    warn(text.format(epoch=epoch + 1), FitpipeWarning)


def no_step_error(caller: str, x: Any) -> FitpipeValueError:
    """The error of a ``fit``, ``evaluate`` or ``predict`` whose input ``x`` gave no batch.

    ``fit``'s when the first epoch it runs gets no batch (a later one that gets none ends
    training with :func:`warn_no_step`).
    """
    return FitpipeValueError(
        message(
            caller,
            "ran no step: the input gave no batch",
            f"`{caller}` needs at least one batch (a result from no data would be made up)",
            "Check that the input is not empty or already consumed (a Python generator can be "
            "iterated only once)",
            x=x,
        )
    )
