"""What the pipeline is asked beside the input: options adapters never see.

A call's arguments come in two parts. :class:`~fitpipe.adapters.AdaptRequest` is what an
adapter reads (the input, its schema, batch size, shuffle, steps, the call's mode);
:class:`PipelineOptions` is what only the pipeline reads (class weights, the tf.data
service, ``validation_split``, the model's output names) with the batching arguments the
two share. ``PipelineOptions.of(request, ...)`` takes the shared ones from the request.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from fitpipe.adapters import DEFAULT_BATCH_SIZE, AdaptRequest, Shuffle
from fitpipe.errors import FitpipeValueError, message

__all__ = ["GIVEN_ORDER", "INT64_BOUND", "MAX_BATCH_ROWS", "PipelineOptions", "resolve_batch_size"]

#: The order in which given arguments are checked against an adapter's ``supports`` (the
#: first unsupported one is reported).
GIVEN_ORDER = (
    "y",
    "sample_weight",
    "batch_size",
    "class_weight",
    "schema",
    "steps",
    "shuffle",
    "validation_split",
    "split_by",
)


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline makes batches of a source (adapters never see these).

    Attributes:
        batch_size: Rows per batch of row-addressed sources (None: from ``steps``, else 32).
        shuffle: Reshuffle rows every epoch; ``"batch"`` in batch-sized chunks.
        steps: Batches per epoch requested by the caller, if any.
        class_weight: Map from class index to weight, ``"balanced"``, or such values by
            output name (see :mod:`fitpipe.pipeline.class_weights`).
        validation_split: Fraction of rows the trainer sets apart (0 for none).
        stratify: Split off the validation rows class by class (rows in memory only; see
            :mod:`fitpipe.pipeline.split`).
        data_service: Address of a tf.data service dispatcher (``"grpc://host:port"``) to
            run the pipeline on its workers; None runs it in this process.
        output_names: The model's output names (set by the trainer), to find the targets of
            a per-output ``class_weight`` given as a list.
        caller: The public method being run, for error messages only.
    """

    batch_size: int | None = None
    shuffle: Shuffle = False
    steps: int | None = None
    class_weight: Mapping[Any, Any] | str | None = None
    validation_split: float = 0.0
    stratify: bool = False
    data_service: str | None = None
    output_names: tuple[str, ...] | None = None
    caller: str = "adapt"

    @classmethod
    def of(cls, request: AdaptRequest, **options: Any) -> PipelineOptions:
        """The options of ``request``'s call: its batching arguments, and ``options``.

        Args:
            request: The adapter's request (batch size, shuffle, steps, caller).
            **options: The pipeline-only options (``class_weight``, ``data_service``, ...).

        Returns:
            The options.
        """
        shared = {
            "batch_size": request.batch_size,
            "shuffle": request.shuffle,
            "steps": request.steps,
            "caller": request.caller,
        }
        return cls(**{**shared, **options})

    def given(self) -> dict[str, Any]:
        """The pipeline-only arguments that were given (not left at their defaults)."""
        given: dict[str, Any] = {}
        if self.class_weight is not None:
            given["class_weight"] = self.class_weight
        if self.validation_split:
            given["validation_split"] = self.validation_split
        return given


#: The most rows of one batch: TensorFlow indexes a batch's rows with 32-bit integers.
MAX_BATCH_ROWS = 2**31 - 1

#: The bound a count (rows, batches, steps) stays below: TensorFlow counts them in int64.
INT64_BOUND = 2**63


def resolve_batch_size(
    batch_size: int | None, steps: int | None, num_samples: int, caller: str = "fit"
) -> int:
    """Returns the batch size: the given one, else ``ceil(rows / steps)``, else 32 (as Keras).

    Args:
        batch_size: The requested batch size, or None.
        steps: The requested batches per epoch, or None.
        num_samples: The rows.
        caller: The public method, for messages.

    Raises:
        FitpipeValueError: A batch would hold more than :data:`MAX_BATCH_ROWS` rows (its
            row indices wrapped to negative numbers, reported as a mismatch of the data).
    """
    if batch_size:
        size = int(batch_size)
    elif steps:
        size = max(1, math.ceil(num_samples / steps))
    else:
        size = DEFAULT_BATCH_SIZE
    rows = min(size, num_samples)
    if rows > MAX_BATCH_ROWS:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot make batches of {rows:,} rows",
                f"A batch holds at most {MAX_BATCH_ROWS:,} rows (TensorFlow indexes a "
                "batch's rows with 32-bit integers)",
                "Pass a smaller `batch_size`" + ("" if batch_size else " (or more `steps`)"),
                batch_size=batch_size,
            )
        )
    return size
