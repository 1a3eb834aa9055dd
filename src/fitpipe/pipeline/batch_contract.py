"""A batch source's answers, checked where the pipeline first uses them.

Every batch source reaches the trainer (``fit``, ``evaluate``, ``predict``) and the
conformance kit through :func:`fitpipe.pipeline.pipeline_from_source`, which asks it for its
dataset and its batch count through the functions here. A built-in source's answers and a
third party's alike are held to the contract of :class:`fitpipe.adapters.BatchSource`, with
errors naming the adapter:

* ``make_dataset()`` returns a ``tf.data.Dataset``;
* its batches are tuples ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (checked once on
  the dataset's ``element_spec``, never per batch);
* ``count_batches()`` returns an int (a NumPy integer is taken, as an int) or None.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from fitpipe.errors import DataMismatchError, FitpipeTypeError, message, raw

__all__ = ["check_batch_spec", "checked_count", "checked_make"]


def checked_make(
    make: Callable[[], Any], adapter: str, caller: str
) -> Callable[[], tf.data.Dataset]:
    """``make``, whose result is checked: a ``tf.data.Dataset`` of tuples of 1 to 3 parts.

    Checked once per call (``make_dataset`` is called once per pipeline), before any stage
    of the pipeline reads the batches' structure.

    Args:
        make: The source's ``make_dataset``.
        adapter: The name of the adapter that made the source.
        caller: The public method being run.

    Returns:
        A function that calls ``make`` and returns its dataset.

    Raises:
        FitpipeTypeError: (when called) ``make`` returned anything but a dataset.
        DataMismatchError: (when called) its batches are not such tuples.

    """

    def made() -> tf.data.Dataset:
        dataset = make()
        if not isinstance(dataset, tf.data.Dataset):
            raise FitpipeTypeError(
                message(
                    caller,
                    f"got {type(dataset).__name__} from `make_dataset` of a source of the "
                    f"adapter {adapter!r}, which is not a tf.data.Dataset",
                    "A batch source's `make_dataset` returns the `tf.data.Dataset` of one "
                    "pass, whose batches are `(x,)`, `(x, y)` or `(x, y, sample_weight)`",
                    f"Fix the {adapter!r} adapter's `make_dataset`, e.g. "
                    "`tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)`",
                    returned=dataset,
                )
            )
        check_batch_spec(dataset.element_spec, adapter, caller)
        return dataset

    return made


def check_batch_spec(spec: Any, adapter: str, caller: str) -> None:
    """Checks that a batch source's batches are tuples of 1 to 3 parts.

    Args:
        spec: The ``element_spec`` of the source's dataset.
        adapter: The name of the adapter that made the source.
        caller: The public method being run.

    Raises:
        DataMismatchError: For batches of any other structure (a bare ``x``, a dict, a
            named tuple, a tuple of 4 parts).

    """
    plain = isinstance(spec, tuple) and not hasattr(type(spec), "_fields")
    if plain and 1 <= len(spec) <= 3:
        return
    kind = f"tuples of {len(spec)} parts" if plain else f"{type(spec).__name__} batches"
    raise DataMismatchError(
        message(
            caller,
            f"got {kind} from a source of the adapter {adapter!r}",
            "A batch source's batches are tuples `(x,)`, `(x, y)` or "
            "`(x, y, sample_weight)`; an `x` alone (a tensor, a dict) is no batch",
            f"Fix the {adapter!r} adapter's `make_dataset`: map a dataset of bare features "
            "to one-part tuples, e.g. `dataset.map(lambda x: (x,))`",
            element_spec=raw(_short(spec)),
        )
    )


def _short(spec: Any) -> str:
    text = repr(spec)
    return text if len(text) <= 200 else text[:197] + "..."


def checked_count(count: Callable[[], Any], adapter: str, caller: str) -> Callable[[], int | None]:
    """``count``, whose every answer is checked: an int (NumPy integers taken) or None.

    Asked once per epoch, never per batch.

    Args:
        count: The source's ``count_batches``.
        adapter: The name of the adapter that made the source.
        caller: The public method being run.

    Returns:
        A function that returns ``count()`` as an int, or None.

    Raises:
        FitpipeTypeError: (when called) ``count`` returned anything else (a float, even
            a whole one, a string, a bool).
        DataMismatchError: (when called) ``count`` returned a negative int.

    """

    def counted() -> int | None:
        value = count()
        if value is None:
            return None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if int(value) >= 0:
                return int(value)
            raise _negative(value, adapter, caller)
        raise FitpipeTypeError(
            message(
                caller,
                f"got a batch count of type {type(value).__name__} from `count_batches` of a "
                f"source of the adapter {adapter!r}",
                "A batch source's `count_batches` returns the batches of the coming epoch "
                "as an int (a NumPy integer is taken), or None when unknown",
                f"Fix the {adapter!r} adapter's `count_batches`, e.g. return "
                "`math.ceil(rows / batch_size)` (an int), not `np.ceil(...)` (a float)",
                count_batches=value,
            )
        )

    return counted


def _negative(value: Any, adapter: str, caller: str) -> DataMismatchError:
    return DataMismatchError(
        message(
            caller,
            f"got a negative batch count from `count_batches` of a source of the adapter "
            f"{adapter!r}",
            "A batch source's `count_batches` returns the batches of the coming epoch (0 or "
            "more), or None when unknown",
            f"Fix the {adapter!r} adapter's `count_batches`",
            count_batches=value,
        )
    )
