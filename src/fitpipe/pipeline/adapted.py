"""What an adapter returns, checked where it enters the pipeline.

Every source reaches the pipeline through :func:`adapted_source`, a built-in adapter's or a
third party's alike: an adapter that returns something other than a source gets an error
naming it and what it returned, and an :class:`~fitpipe.adapters.ArraySource` is held to its
row contract (every leaf of ``x``, ``y`` and ``sample_weight`` has ``num_samples`` rows, and
there is at least one row) with the errors NumPy input gets, naming the adapter.
"""

from __future__ import annotations

import numbers
from typing import Any

import tensorflow as tf

from fitpipe.adapters import (
    Adapter,
    AdaptRequest,
    ArraySource,
    BatchSourceBase,
    Chunked,
    Mode,
    SourceBase,
    leaf_rows,
)
from fitpipe.errors import DataMismatchError, FitpipeTypeError, message, raw

__all__ = ["adapted_source", "check_array_rows"]

_CONTRACT = (
    "Every leaf of an ArraySource's `x`, `y` and `sample_weight` has `num_samples` rows "
    "(its first dimension)"
)


def adapted_source(adapter: Adapter, request: AdaptRequest) -> Any:
    """Asks ``adapter`` to adapt ``request`` and checks what it returns.

    Args:
        adapter: The adapter that takes ``request.x``.
        request: The request.

    Returns:
        The source: an ``ArraySource`` or a batch source, or (``request.chunks``) any
        :class:`~fitpipe.adapters.Chunked` source.

    Raises:
        FitpipeTypeError: When the adapter returns anything else.
        DataMismatchError: When an ``ArraySource``'s rows break its contract.

    """
    adapted = adapter.adapt(request)
    kinds: tuple[type, ...] = (ArraySource, BatchSourceBase)
    if request.chunks:
        kinds += (Chunked,)
    if not isinstance(adapted, kinds):
        if isinstance(adapted, SourceBase):
            adapted.close()
        raise FitpipeTypeError(
            message(
                request.caller,
                f"got {type(adapted).__name__} from the adapter {adapter.name!r}, which is "
                "neither an ArraySource nor a batch source",
                "An adapter's `adapt` returns a `fitpipe.adapters.ArraySource` (rows) or a "
                "`fitpipe.adapters.BatchSource` (batches)",
                "Return one of these from the adapter's `adapt` (a `tf.data.Dataset` goes in "
                "`BatchSource(make_dataset=..., count_batches=...)`)",
                returned=adapted,
            )
        )
    if isinstance(adapted, ArraySource):
        try:
            check_array_rows(adapted, adapter.name, request)
        except BaseException:
            adapted.close()
            raise
    return adapted


def check_array_rows(source: ArraySource, adapter: str, request: AdaptRequest) -> None:
    """Checks an ``ArraySource``'s row contract, as NumPy input's rows are checked.

    Args:
        source: The source.
        adapter: The name of the adapter that made it.
        request: Its request (a ``predict_on_batch`` request may hold no rows).

    Raises:
        FitpipeTypeError: A leaf without rows, or a ``num_samples`` that is not an int.
        DataMismatchError: Leaves of different lengths, a ``num_samples`` that is not their
            length, or no rows.

    """
    caller, declared = request.caller, source.num_samples
    if isinstance(declared, bool) or not isinstance(declared, numbers.Integral):
        raise _contract_error(
            FitpipeTypeError,
            caller,
            adapter,
            f"an ArraySource from the adapter {adapter!r} whose `num_samples` is not an int",
            num_samples=declared,
        )
    parts = {"x": source.x, "y": source.y, "sample_weight": source.sample_weight}
    sizes = {name: _sizes(part, caller, adapter, name) for name, part in parts.items()}

    def listing() -> str:  # worded only for an error (this runs on every *_on_batch call)
        parts = (f"{name} sizes: {', '.join(map(str, n))}" for name, n in sizes.items() if n)
        return "; ".join(parts) + f"; num_samples: {declared}"

    distinct = {n for counts in sizes.values() for n in counts}
    if len(distinct) > 1:
        what = f"inputs with different numbers of samples from the adapter {adapter!r}"
        raise _contract_error(DataMismatchError, caller, adapter, what, listing())
    if distinct != {declared}:
        what = (
            f"an ArraySource from the adapter {adapter!r} whose `num_samples` ({declared}) "
            f"is not its leaves' number of rows ({', '.join(map(str, sorted(distinct))) or 'none'})"
        )
        raise _contract_error(DataMismatchError, caller, adapter, what, listing())
    if declared == 0 and not (request.one_batch and request.mode is Mode.PREDICT):
        raise DataMismatchError(
            message(
                caller,
                f"got an empty input (0 samples) from the adapter {adapter!r}",
                "Training and inference need at least one sample",
                "Check the data given to the adapter, or its `adapt`",
                sizes=raw(listing()),
            )
        )


def _sizes(part: Any, caller: str, adapter: str, name: str) -> list[int]:
    counts = []
    for leaf in tf.nest.flatten(part):
        if leaf is None:
            continue
        try:
            counts.append(leaf_rows(leaf))
        except (AttributeError, IndexError, TypeError, ValueError):
            what = (
                f"an ArraySource from the adapter {adapter!r} whose `{name}` has a leaf that "
                "is not an array"
            )
            raise _contract_error(FitpipeTypeError, caller, adapter, what, leaf=leaf) from None
    return counts


def _contract_error(
    kind: type[Exception], caller: str, adapter: str, what: str, sizes: str = "", **received: Any
) -> Exception:
    if sizes:
        received["sizes"] = raw(sizes)
    return kind(
        message(
            caller,
            f"got {what}",
            _CONTRACT + "; leaves are arrays or tensors and `num_samples` is an int",
            f"Fix the {adapter!r} adapter's `adapt` so that every leaf holds one row per "
            "sample and `num_samples` is that number of rows",
            **received,
        )
    )
