"""Advice worded for inputs that do not fit the model: how ``x`` is given decides the fix.

A dict ``x`` of arrays given to the call takes ``extra="ignore"`` and is never split into
``(x, y, sample_weight)``; an input's own batches (a generator's, a ``PyDataset``'s, a
dataset's) are split by Keras' rule for batches and are the input's to change.
"""

from __future__ import annotations

from typing import Any

__all__ = ["count_fix", "unknown_fix"]


_ROLES = ("x", "y", "sample_weight")


def unknown_fix(x_given: bool, names: list[str], x: Any = None, source: str = "") -> str:
    """How to leave out a dict's entries that name no model input.

    ``extra="ignore"`` leaves them out of a dict ``x`` of arrays given to the call; a
    generator's, a ``PyDataset``'s, a dataset's or a ``DataLoader``'s batches are the input's
    own to select (worded for the input: ``source`` is its adapter). A batch dict keyed by
    roles (``x`` and ``y``) is all ``x``: the fix makes the batch a tuple.
    """
    if x_given:
        return (
            ', or pass `extra="ignore"` to leave the other entries of the dict `x` out (with '
            "a schema: name only model inputs as its features)"
        )
    keys = [k for k in (x or {}) if k not in names]
    if "x" in keys and any(k in keys for k in _ROLES[1:]):
        return _role_keyed_fix([k for k in _ROLES if k in keys], source)
    selection = f"({{k: x[k] for k in {names}}}, *rest)"
    how = (
        f"in the DataLoader's `collate_fn` or its dataset, e.g. return `{selection}`"
        if source == "torch"
        else f"e.g. `dataset.map(lambda x, *rest: {selection})`, or yield only them"
    )
    return (
        f", or select the model's inputs in the batches ({how}): "
        '`extra="ignore"` leaves out entries of a dict `x` of arrays, not of an input\'s batches'
    )


def _role_keyed_fix(roles: list[str], source: str) -> str:
    """Advice for batches that are a dict keyed by roles (``{'x': ..., 'y': ...}``)."""
    parts = ", ".join(f"batch[{r!r}]" for r in roles)
    if source == "torch":
        how = (
            "have the DataLoader's `collate_fn` return a tuple, e.g. "
            f"`({parts})` of `batch = torch.utils.data.default_collate(rows)`"
        )
    elif source == "tf.data":
        how = f"map the dataset to tuples, e.g. `dataset.map(lambda batch: ({parts}))`"
    else:
        how = f"yield or return a tuple, e.g. `({parts})`"
    return (
        f". A batch is split into `(x, y, sample_weight)` only when it is a tuple (Keras' "
        f"documented rule): a dict batch keyed {roles} is all `x`; {how}"
    )


_LIST_BATCH_FIX = (
    ". A batch is split into `(x, y, sample_weight)` only when it is a tuple (Keras' "
    "documented rule): if each batch is `[x, y]`, yield or return `(x, y)` instead"
)


def _list_batch(element_spec: Any) -> bool:
    """Whether batches came as ``x`` alone of 2 or 3 parts (``[x, y]`` maybe)."""
    x, rest = element_spec[0], element_spec[1:]
    return all(r is None for r in rest) and isinstance(x, (list, tuple)) and 2 <= len(x) <= 3


def count_fix(element_spec: Any, caller: str, x_given: bool) -> str:
    """Advice for ``x`` of 2 or 3 parts: a batch's split rule, or ``x``'s own arguments."""
    if not _list_batch(element_spec):
        return ""
    if not x_given:
        return _LIST_BATCH_FIX
    names = ["x", "y", "sample_weight"][: len(element_spec[0])]
    if caller.removesuffix("_on_batch") == "predict":
        call = f"`{caller}(x)` with the inputs alone (Keras warns and predicts on the first array)"
    else:
        arguments = ", ".join(names).replace("sample_weight", "sample_weight=sample_weight")
        call = f"`{caller}({arguments})`, each as its own argument"
    return (
        ". A tuple or list given as `x` is read as the model's inputs, not split into "
        f"`({', '.join(names)})` (only a generator's or a dataset's batches are): call {call}"
    )
