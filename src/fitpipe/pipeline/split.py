"""``validation_split``: the rows set apart for validation before any shuffling.

* Plain: the last fraction of the rows, as Keras does (:func:`split_source`).
* Grouped (``split_by``): every row of a key on one side, decided by a stable hash of the
  key (:mod:`fitpipe.columnar.keys`): rows in memory are split here; Parquet streamed from
  disk splits itself (:class:`~fitpipe.adapters.GroupSplittable`). The fraction is of the
  keys, so the rows' fraction is approximate; the sizes are reported
  (:class:`ValidationSplit`).
* Stratified (``stratify=True``): each class split in the same proportion, rows in memory
  only (:mod:`fitpipe.pipeline.stratify`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters import AdaptRequest, ArraySource, GroupSplittable, Source, Splittable
from fitpipe.columnar import (
    SplitCounts,
    count_split,
    empty_side_error,
    key_hashes,
    validation_mask,
)
from fitpipe.errors import DataMismatchError, FitpipeTypeError, FitpipeValueError, message
from fitpipe.pipeline.options import PipelineOptions
from fitpipe.pipeline.stratify import stratified_split, take_rows_where

__all__ = [
    "ValidationSplit",
    "check_split_options",
    "check_splittable",
    "check_validation_split",
    "split_source",
    "split_validation",
    "take_rows_where",
]


def check_validation_split(validation_split: Any, caller: str = "fit") -> float:
    """Validates ``validation_split``: a float in [0, 1).

    Args:
        validation_split: The user's argument.
        caller: The public method being run.

    Returns:
        It, as a float.

    Raises:
        FitpipeValueError: Outside [0, 1) or not a number.

    """
    valid = (
        isinstance(validation_split, numbers.Real)
        and not isinstance(validation_split, bool)
        and 0.0 <= float(validation_split) < 1.0
    )
    if not valid:
        raise FitpipeValueError(
            message(
                caller,
                "got an invalid `validation_split`",
                "`validation_split` is a float in [0, 1): the fraction of the training rows "
                "set apart for validation",
                "Pass e.g. `validation_split=0.2`, or `validation_data=(x_val, y_val)`",
                validation_split=validation_split,
            )
        )
    return float(validation_split)


def check_splittable(
    adapter: str, source: Source, request: AdaptRequest, options: PipelineOptions | None
) -> None:
    """Checks that a plain ``validation_split`` asked of ``source`` can be made.

    The adapter claims ``validation_split`` (its ``supports`` was checked before): its
    source is rows in memory (an ``ArraySource``) or a ``Splittable`` batch source that
    knows its ``rows``. (A grouped or stratified split checks its own source.)

    Args:
        adapter: The name of the adapter that made the source.
        source: The source.
        request: The adapter's request (``split_by``).
        options: The pipeline's options (``validation_split``, ``stratify``); None: none.

    Raises:
        DataMismatchError: Naming the adapter, when the source cannot be split so.

    """
    if options is None or not options.validation_split or isinstance(source, ArraySource):
        return
    if request.split_by is not None or options.stratify:
        return
    name = type(source).__name__
    if not isinstance(source, Splittable):
        problem = f"its source ({name}) is neither an ArraySource nor Splittable"
    elif getattr(source, "rows", None) is None:
        problem = f"its Splittable source ({name}) does not know its rows (`rows` is None)"
    else:
        return
    raise DataMismatchError(
        message(
            request.caller,
            f"cannot split the input of the adapter {adapter!r} for `validation_split`: the "
            f"adapter claims `validation_split`, but {problem}",
            "An adapter that lists `validation_split` in `supports` returns rows in memory "
            "(an ArraySource) or a Splittable batch source (with `split`) that knows its `rows`",
            f"Fix the {adapter!r} adapter: give its source `split` and `rows` (implement "
            "Splittable), or drop `validation_split` from its `supports`",
            validation_split=options.validation_split,
        )
    )


def _slice(leaf: Any, start: int, stop: int) -> Any:
    if leaf is None:
        return None
    if isinstance(leaf, tf.SparseTensor):
        shape = leaf.dense_shape
        size = tf.concat([[stop - start], shape[1:]], axis=0)
        begin = tf.concat([[start], tf.zeros_like(shape[1:])], axis=0)
        return tf.sparse.slice(leaf, begin, size)
    return leaf[start:stop]


def split_source(
    source: Source,
    validation_split: float,
    caller: str = "fit",
    validation_batch_size: int | None = None,
) -> tuple[Source, Source]:
    """Splits rows into training rows and the last ``validation_split`` of them.

    NumPy leaves are sliced as views (nothing is copied); sources planned from metadata
    (Parquet) split by row counts without reading data.

    Args:
        source: Rows in memory, or a batch source that can split.
        validation_split: A fraction in (0, 1), already checked.
        caller: The public method being run.
        validation_batch_size: Batch size of a split batch source's validation part.

    Returns:
        ``(train, validation)``.

    Raises:
        DataMismatchError: When either part would be empty.
    """
    total = source.num_samples if isinstance(source, ArraySource) else (source.rows or 0)
    split_at = math.floor(total * (1.0 - validation_split))
    if split_at in (0, total):
        raise DataMismatchError(
            message(
                caller,
                f"cannot split {total} samples with `validation_split={validation_split}`",
                "Both the training and the validation part need at least one sample",
                "Provide more data, or another `validation_split`",
                validation_split=validation_split,
            )
        )
    if not isinstance(source, ArraySource):
        if not isinstance(source, Splittable):
            raise DataMismatchError(
                message(
                    caller,
                    "cannot split this input",
                    "`validation_split` needs rows known in advance",
                    "Pass `validation_data` instead",
                    validation_split=validation_split,
                )
            )
        return source.split(split_at, validation_batch_size)

    def part(start: int, stop: int) -> ArraySource:
        sliced = [
            tf.nest.map_structure(lambda leaf: _slice(leaf, start, stop), value)
            for value in (source.x, source.y, source.sample_weight)
        ]
        return ArraySource(sliced[0], sliced[1], sliced[2], stop - start, source.shard_rows)

    return part(0, split_at), part(split_at, total)


@dataclasses.dataclass(frozen=True)
class ValidationSplit:
    """How a grouped or stratified ``validation_split`` came out.

    Attributes:
        by: What decided the sides: ``"split_by='user_id'"``, ``"split_by (keys given)"``
            or ``"stratify"``.
        fraction: The ``validation_split`` asked for.
        counts: Rows (and keys, for grouped splits) of each side.
        classes: For stratified splits, ``{class: (training rows, validation rows)}``.
    """

    by: str
    fraction: float
    counts: SplitCounts
    classes: dict[int, tuple[int, int]] | None = None

    def as_params(self) -> dict[str, Any]:
        """The split as ``history.params["validation_split_sizes"]`` holds it (JSON-able)."""
        counts = self.counts
        out: dict[str, Any] = {
            "by": self.by,
            "validation_split": self.fraction,
            "train_rows": counts.train_rows,
            "validation_rows": counts.validation_rows,
        }
        if counts.train_keys is not None:
            out.update(train_keys=counts.train_keys, validation_keys=counts.validation_keys)
        if self.classes is not None:
            out["classes"] = {
                c: {"train": t, "validation": v} for c, (t, v) in self.classes.items()
            }
        return out

    def describe(self) -> str:
        """One line for the console, e.g. what ``fit`` prints with ``verbose``."""
        counts = self.counts
        rows = counts.train_rows + counts.validation_rows
        share = counts.validation_rows / rows if rows else 0.0

        def side(n: int, keys: int | None) -> str:
            return f"{n:,} rows" + ("" if keys is None else f" of {keys:,} keys")

        return (
            f"validation_split={self.fraction} by {self.by}: "
            f"{side(counts.train_rows, counts.train_keys)} for training, "
            f"{side(counts.validation_rows, counts.validation_keys)} for validation "
            f"({share:.1%} of the rows)"
        )


def check_split_options(
    validation_split: float, split_by: Any, stratify: Any, has_validation_data: bool, caller: str
) -> None:
    """Checks ``split_by`` and ``stratify`` against the rest of the split's arguments.

    Raises:
        FitpipeTypeError: ``stratify`` is not a bool.
        FitpipeValueError: They are given with ``validation_data``, without a
            ``validation_split``, or together.
    """
    if not isinstance(stratify, (bool, np.bool_)):
        raise FitpipeTypeError(
            message(
                caller,
                "got an invalid `stratify`",
                "`stratify` is True (split each class in the same proportion) or False",
                "Pass a bool",
                stratify=stratify,
            )
        )
    asked = (("split_by", split_by is not None), ("stratify", bool(stratify)))
    given = [name for name, on in asked if on]
    if not given:
        return
    name = given[0]
    problem = None
    if len(given) == 2:
        problem = (
            "got both `split_by` and `stratify`",
            "A grouped split keeps each key's rows together, so it cannot also split each "
            "class in proportion",
            "Pass one of them",
        )
    elif has_validation_data:
        problem = (
            f"got `{name}` together with `validation_data`",
            f"`{name}` says how `validation_split` sets rows apart; `validation_data` "
            "replaces the split",
            f"Drop `{name}`, or drop `validation_data` and pass `validation_split`",
        )
    elif not validation_split:
        problem = (
            f"got `{name}` without a `validation_split`",
            f"`{name}` says how `validation_split` sets rows apart for validation",
            f"Pass e.g. `validation_split=0.2` with `{name}`",
        )
    if problem is not None:
        what, expected, fix = problem
        received: dict[str, Any] = {"validation_split": validation_split}
        received.update({n: split_by if n == "split_by" else stratify for n in given})
        raise FitpipeValueError(message(caller, what, expected, fix, **received))


def _split_by_name(split_by: Any) -> str:
    return f"split_by={split_by!r}" if isinstance(split_by, str) else "split_by (keys given)"


def _grouped(
    source: Source, request: AdaptRequest, fraction: float, validation_batch_size: int | None
) -> tuple[Source, Source, SplitCounts]:
    caller = request.caller
    if isinstance(source, ArraySource) and source.keys is not None:
        hashes = key_hashes(source.keys)
        mask = validation_mask(hashes, fraction)
        counts = count_split(hashes, mask)
        if not (counts.train_rows and counts.validation_rows):
            raise empty_side_error(counts, fraction, _split_by_name(request.split_by), caller)
        return take_rows_where(source, ~mask), take_rows_where(source, mask), counts
    if isinstance(source, GroupSplittable):
        train, val, counts = source.split_groups(fraction, validation_batch_size)
        return train, val, counts
    raise DataMismatchError(
        message(
            caller,
            "cannot split this input by key",
            "`split_by` needs an input whose rows come with their keys (arrays, dicts, "
            "DataFrames, Arrow tables, Parquet)",
            "Split the data by key yourself and pass `validation_data`",
            split_by=request.split_by,
        )
    )


def split_validation(
    source: Source,
    request: AdaptRequest,
    options: PipelineOptions,
    validation_batch_size: int | None = None,
) -> tuple[Source, Source, ValidationSplit | None]:
    """Sets the validation rows apart as ``options`` ask: plain, grouped or stratified.

    Args:
        source: The adapted source (with its ``split_by`` keys when asked).
        request: ``fit``'s request (``split_by``, read by the adapter too).
        options: ``fit``'s pipeline options (``validation_split``, ``stratify``).
        validation_batch_size: Batch size of a split batch source's validation part.

    Returns:
        ``(train, validation, how)``: ``how`` is None for a plain split.

    Raises:
        DataMismatchError: When a side would be empty, or the input cannot be split so.
    """
    fraction = options.validation_split
    if options.stratify:
        rows, held, classes = stratified_split(source, fraction, request.caller)
        counts = SplitCounts(
            sum(t for t, _ in classes.values()), sum(v for _, v in classes.values())
        )
        return rows, held, ValidationSplit("stratify", fraction, counts, classes)
    if request.split_by is not None:
        train, val, counts = _grouped(source, request, fraction, validation_batch_size)
        return train, val, ValidationSplit(_split_by_name(request.split_by), fraction, counts)
    train, val = split_source(source, fraction, request.caller, validation_batch_size)
    return train, val, None
