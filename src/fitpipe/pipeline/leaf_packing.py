"""Narrow leaves held side by side: one gather for many inputs' rows, split back per batch.

A compiled loop over rows held in memory picks each batch leaf by leaf. A model taking one
input per column (a dict of 50 float32 scalars, as Keras' structured-data examples build)
picked 50 leaves a batch: its first ``fit`` step cost 0.98 s of CPU against Keras' 0.31 s
(every leaf's gather, cut and slice traced and optimized), and its steps three times those of
one 50-column input. Numeric NumPy leaves of rank 1 or 2, each under :data:`NARROW_BYTES` a
row and sharing a dtype, are held as one matrix instead, written once (as any held leaf is
copied once, see ``fitpipe.columnar.owned_tensor``); a batch picked from it is split back
into them. Wider leaves, and a leaf alone of its dtype, are held as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.columnar import aligned_empty, as_tensor

__all__ = [
    "NARROW_BYTES",
    "Packing",
    "held_specs",
    "pack",
    "pack_leaves",
    "plan",
    "plan_specs",
]

#: Leaves narrower than this many bytes a row are held side by side with others of their
#: dtype (a row of 64 bytes or more is already wide enough for one gather to pay).
NARROW_BYTES = 64

#: One batch leaf in a held leaf: its index among the batch's flat leaves, its columns there,
#: and whether it is of rank 1 (a column squeezed back to a vector).
Slot = tuple[int, int, bool]


@dataclasses.dataclass(frozen=True)
class Packing:
    """Which held leaf holds which of a batch's flat leaves, and in which columns.

    Attributes:
        count: The batch's flat leaves.
        slots: Per held leaf, the batch leaves it holds, in column order. A held leaf that
            is one batch leaf as it is has one slot of 0 columns.
    """

    count: int
    slots: tuple[tuple[Slot, ...], ...]

    def unpack(self, held: Sequence[Any], wanted: Collection[int] | None = None) -> list[Any]:
        """The batch's flat leaves from the rows picked from each held leaf (graph or eager).

        With ``wanted`` (flat indices), only those leaves are split out of the leaves held side
        by side, the others None: every held row split out whole is a copy of them.
        """
        out: list[Any] = [None] * self.count
        for value, slot in zip(held, self.slots, strict=True):
            if slot[0][1] == 0:  # held as it is
                out[slot[0][0]] = value
                continue
            if wanted is not None:
                _columns_out(value, slot, wanted, out)
                continue
            parts = tf.split(value, [columns for _, columns, _ in slot], axis=1)
            for (index, _, vector), part in zip(slot, parts, strict=True):
                out[index] = tf.squeeze(part, axis=1) if vector else part
        return out

    def specs(self, held: Sequence[Any], rows: int | None) -> list[tf.TensorSpec]:
        """The specs of the batch's flat leaves, of ``rows`` rows, from dense held leaves."""
        out: list[Any] = [None] * self.count
        for leaf, slot in zip(held, self.slots, strict=True):
            for index, columns, vector in slot:
                shape = [rows, *leaf.shape[1:]] if columns == 0 else [rows, columns]
                out[index] = tf.TensorSpec(shape[:1] if vector else shape, leaf.dtype)
        return out


def leaf_indices(structure: Any, parts: Collection[int]) -> list[int]:
    """The flat indices of the leaves of ``parts`` of a batch's structure.

    The structure is a tuple of parts (``(x, y, sample_weight)``); any other is part 0.
    """
    if not isinstance(structure, tuple):
        return list(range(len(tf.nest.flatten(structure)))) if 0 in parts else []
    indices: list[int] = []
    start = 0
    for number, part in enumerate(structure):
        count = len(tf.nest.flatten(part))
        if number in parts:
            indices.extend(range(start, start + count))
        start += count
    return indices


def _columns_out(
    value: Any, slot: tuple[Slot, ...], wanted: Collection[int], out: list[Any]
) -> None:
    """Sets ``out`` at the ``wanted`` leaves ``value`` holds side by side: their columns only."""
    start = 0
    for index, columns, vector in slot:
        if index in wanted:
            part = value[:, start : start + columns]
            out[index] = tf.squeeze(part, axis=1) if vector else part
        start += columns


def _narrow(dtype: np.dtype, tail: tuple[int | None, ...]) -> bool:
    """A numeric leaf of rank 1 or 2 (``tail``: its shape past the rows) under 64 bytes a row."""
    columns = tail[0] if len(tail) == 1 else 1 if not tail else None
    if dtype.kind not in "biuf" or columns is None:
        return False
    return 0 < dtype.itemsize * columns < NARROW_BYTES


def plan(leaves: Sequence[tuple[np.dtype, tuple[int | None, ...]] | None]) -> Packing | None:
    """How a batch's flat leaves are held, from each one's dtype and shape past the rows.

    Args:
        leaves: Per flat leaf, ``(dtype, shape[1:])``, or None for a leaf held as it is.

    Returns:
        The packing, or None when no two narrow leaves share a dtype.
    """
    groups: dict[np.dtype, list[int]] = {}
    for index, leaf in enumerate(leaves):
        if leaf is not None and _narrow(*leaf):
            groups.setdefault(leaf[0].newbyteorder("="), []).append(index)
    packed = {members[0]: members for members in groups.values() if len(members) > 1}
    if not packed:
        return None
    inside = {index for members in packed.values() for index in members[1:]}
    slots: list[tuple[Slot, ...]] = []
    for index in range(len(leaves)):
        if index in packed:
            slots.append(tuple(_slot(i, leaves[i]) for i in packed[index]))
        elif index not in inside:
            slots.append(((index, 0, False),))
    return Packing(len(leaves), tuple(slots))


def _slot(index: int, leaf: Any) -> Slot:
    """A narrow leaf's slot: its index, its columns and whether it is a vector."""
    _, tail = leaf
    return index, (int(tail[0]) if tail else 1), not tail


def pack(flat: Sequence[Any], packing: Packing) -> list[Any]:
    """The leaves to hold for a batch's ``flat`` leaves (NumPy arrays where packed)."""
    held: list[Any] = []
    for slot in packing.slots:
        if slot[0][1] == 0:
            held.append(flat[slot[0][0]])
        else:
            held.append(_side_by_side([np.asarray(flat[index]) for index, _, _ in slot], slot))
    return held


def _side_by_side(leaves: list[np.ndarray], slot: tuple[Slot, ...]) -> tf.Tensor:
    """``leaves`` as the columns of one matrix, in fitpipe's memory (written once)."""
    rows = leaves[0].shape[0]
    total = sum(columns for _, columns, _ in slot)
    matrix = aligned_empty((rows, total), leaves[0].dtype.newbyteorder("="))
    start = 0
    for leaf, (_, columns, _) in zip(leaves, slot, strict=True):
        matrix[:, start : start + columns] = leaf.reshape(rows, columns)  # 0 rows too
        start += columns
    return as_tensor(matrix)  # over the matrix's memory: holding it copies nothing more


def pack_leaves(flat: Sequence[Any]) -> tuple[list[Any], Packing | None]:
    """The leaves to hold for a batch's ``flat`` leaves, narrow NumPy ones side by side.

    Returns:
        The leaves to hold (a packed group as a tensor, at its first member's place) and how
        a batch is split back into ``flat``'s leaves; or ``flat`` itself and None when no two
        narrow leaves share a dtype.
    """
    described = [
        (leaf.dtype, leaf.shape[1:]) if isinstance(leaf, np.ndarray) and leaf.size else None
        for leaf in flat
    ]
    packing = plan(described)
    return (list(flat), None) if packing is None else (pack(flat, packing), packing)


def plan_specs(specs: Sequence[Any]) -> Packing | None:
    """:func:`plan` for leaves given as ``tf.TensorSpec`` (a streamed block's batch spec)."""

    def described(spec: Any) -> tuple[np.dtype, tuple[int | None, ...]] | None:
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None:
            return None
        return np.dtype(spec.dtype.as_numpy_dtype), tuple(spec.shape[1:].as_list())

    return plan([described(spec) for spec in specs])


def held_specs(specs: Sequence[Any], packing: Packing | None) -> list[Any]:
    """The specs of the leaves held for batches of ``specs`` (packed ones as matrices)."""
    if packing is None:
        return list(specs)
    out = []
    for slot in packing.slots:
        first = specs[slot[0][0]]
        if slot[0][1] == 0:
            out.append(first)
        else:
            total = sum(columns for _, columns, _ in slot)
            out.append(tf.TensorSpec([first.shape[0], total], first.dtype))
    return out
