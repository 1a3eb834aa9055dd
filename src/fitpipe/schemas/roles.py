"""Roles of the parts of a batch and the documented rule that splits a batch into them.

A Keras-style batch is ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``: each part has a role
(feature, target, weight). :func:`split_roles` applies the documented unpacking rule for the
outputs of iterator-like inputs (generators, ``tf.data.Dataset``, ``keras.utils.PyDataset``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from fitpipe.errors import FitpipeValueError, message, raw

__all__ = ["Mode", "Role", "find_namedtuple", "is_namedtuple", "pack_roles", "split_roles"]


class Role(enum.Enum):
    """The role a field or batch part plays in training."""

    FEATURE = "feature"
    TARGET = "target"
    WEIGHT = "weight"
    PASSTHROUGH = "passthrough"


class Mode(enum.Enum):
    """What a call does with its input; decides which roles are read and how rows flow.

    The mode, not the name of the public method (``caller``, kept for messages only),
    decides behaviour: ``fit`` and ``train_on_batch`` train, ``evaluate`` and
    ``test_on_batch`` evaluate, ``predict`` and its kin predict.
    """

    TRAIN = "train"
    EVALUATE = "evaluate"
    PREDICT = "predict"

    @property
    def roles(self) -> tuple[Role, ...]:
        """The roles read: prediction reads features (and passthrough) only."""
        if self is Mode.PREDICT:
            return (Role.FEATURE, Role.PASSTHROUGH)
        return (Role.FEATURE, Role.TARGET, Role.WEIGHT)

    @property
    def reads_targets(self) -> bool:
        """True when targets (and weights) are read."""
        return Role.TARGET in self.roles

    @property
    def shards(self) -> bool:
        """True when a source may be sharded over workers (prediction keeps every row in order)."""
        return self is not Mode.PREDICT

    @property
    def step(self) -> str:
        """The name of the model's step this mode runs (``train_step``, ...)."""
        return {"train": "train_step", "evaluate": "test_step", "predict": "predict_step"}[
            self.value
        ]


def is_namedtuple(value: Any) -> bool:
    """Tells whether ``value`` is an instance of a ``collections.namedtuple``/``NamedTuple``.

    Args:
        value: Anything.

    Returns:
        True for namedtuple instances.

    """
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def find_namedtuple(value: Any, path: str = "") -> str | None:
    """Finds a namedtuple anywhere in a nested structure of tuples, lists and dicts.

    Args:
        value: The structure.
        path: The path of ``value`` itself, used to build the returned path.

    Returns:
        The path of the first namedtuple found (``""`` for ``value`` itself), or None.

    """
    if is_namedtuple(value):
        return path or "the element itself"
    if isinstance(value, (list, tuple)):
        children: Any = enumerate(value)
    elif isinstance(value, Mapping):
        children = value.items()
    else:
        return None
    for key, child in children:
        found = find_namedtuple(child, f"{path}[{key!r}]")
        if found is not None:
            return found
    return None


def reject_namedtuple(element: Any, caller: str, source: str) -> None:
    """Raises the documented ``ValueError`` when a batch holds a namedtuple.

    Args:
        element: One element yielded by the input.
        caller: The public method being run.
        source: What yielded it (``"generator"``, ``"tf.data.Dataset"``, ...).

    Raises:
        FitpipeValueError: When ``element`` holds a namedtuple.

    """
    where = find_namedtuple(element)
    if where is None:
        return
    kind = type(element).__name__ if is_namedtuple(element) else "a namedtuple"
    raise FitpipeValueError(
        message(
            caller,
            f"cannot unpack a namedtuple yielded by the {source} (found at {where})",
            "Batches must be a plain tuple `(x,)`, `(x, y)` or `(x, y, sample_weight)`, or "
            "anything else as `x`; a namedtuple is both ordered and named, so it is ambiguous "
            "whether its fields are x, y and sample_weight or one structure for x",
            "Yield a plain tuple, e.g. `tuple(batch)`, or a dict of named inputs inside a "
            "tuple, e.g. `({'a': a, 'b': b}, y)`",
            element=raw(f"{kind} (of type {type(element).__name__})"),
        )
    )


def split_roles(element: Any) -> tuple[Any, Any, Any]:
    """Splits one yielded batch into ``(x, y, sample_weight)`` by the documented rule.

    A tuple of length 1, 2 or 3 is ``(x,)``, ``(x, y)``, ``(x, y, sample_weight)``; anything
    else (a dict, a single array, a tuple of another length) is ``x``.

    Args:
        element: One batch.

    Returns:
        ``(x, y, sample_weight)``; missing parts are None.

    """
    if isinstance(element, tuple) and not is_namedtuple(element) and 1 <= len(element) <= 3:
        padded = (*element, None, None)
        return padded[0], padded[1], padded[2]
    return element, None, None


def pack_roles(x: Any, y: Any = None, sample_weight: Any = None) -> tuple[Any, ...]:
    """Packs parts into the Keras batch tuple ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

    Args:
        x: Features.
        y: Targets, or None.
        sample_weight: Weights, or None. Given without ``y``, ``y`` is kept as None.

    Returns:
        The shortest tuple that holds every given part.

    """
    if sample_weight is not None:
        return (x, y, sample_weight)
    if y is not None:
        return (x, y)
    return (x,)
