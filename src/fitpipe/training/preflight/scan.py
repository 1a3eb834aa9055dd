"""Feeding data to the statistics: in-memory rows by leaf, Arrow record batches by column.

:class:`Scanner` keeps one :class:`~fitpipe.training.preflight.stats.BlockStats` per leaf or
column and one :class:`~fitpipe.training.preflight.stats.TargetStats` per target leaf. Rows
held in memory (:func:`scan_rows`) are fed in chunks of about 16 MiB, so the temporary masks
stay small; Arrow data (:func:`scan_batches`) is fed a record batch at a time, reading only
the schema's feature, target and weight columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat
import tensorflow as tf

from fitpipe.adapters import NATIVE_FLOATS, is_number_dtype
from fitpipe.columnar import classic, one_array
from fitpipe.schemas import Named, Schema
from fitpipe.training.preflight.stats import BlockStats, ColumnStats, TargetStats, as_block

__all__ = [
    "ColumnNames",
    "Scanner",
    "leaf_paths",
    "role_columns",
    "scan_batches",
    "scan_rows",
    "spec_names",
]

_CHUNK_BYTES = 16 * 2**20
_ROLES = ("feature", "target", "weight")


class ColumnNames(list):
    """The names of one leaf's columns (a leaf of a names structure, not a nesting level)."""


class Scanner:
    """The statistics of every scanned leaf (in memory) or column (Arrow), merged over blocks."""

    def __init__(self) -> None:
        self.blocks: dict[str, BlockStats] = {}
        self.targets: dict[int, TargetStats] = {}
        self.target_keys: dict[int, list[str]] = {}
        self.rows = 0

    def feed(
        self,
        key: str,
        role: str,
        block: np.ndarray,
        names: Callable[[int], list[str]],
        nulls: list[int] | None = None,
        filled: list[int] | None = None,
    ) -> None:
        """Adds a block ``(rows, columns)`` of the leaf or column ``key``.

        Args:
            key: The leaf or column.
            role: ``"feature"``, ``"target"`` or ``"weight"``.
            block: The rows.
            names: Names the columns, given their count (asked on the first block).
            nulls: Nulls per column of the block (Arrow data).
            filled: Per column, the nulls the reader turned into NaN.
        """
        stats = self.blocks.get(key)
        if stats is None:
            stats = self.blocks[key] = BlockStats(names(block.shape[1]), role)
        stats.update(block, nulls, filled)

    def feed_target(self, leaf: int, name: str, block: np.ndarray, keys: list[str]) -> None:
        """Adds a block of target rows of leaf ``leaf`` (all its columns, side by side).

        Args:
            leaf: The target leaf (the model output it trains).
            name: The target, in words.
            block: Its rows.
            keys: The leaves or columns fed with :meth:`feed` that make it up.
        """
        self.targets.setdefault(leaf, TargetStats(name, leaf)).update(block)
        self.target_keys[leaf] = keys

    def columns_of(self, keys: list[str]) -> list[ColumnStats]:
        """The column statistics of the given leaves or columns."""
        return [c for key in keys if key in self.blocks for c in self.blocks[key].columns]

    def columns(self) -> list[ColumnStats]:
        """Every column's statistics, in the order first fed."""
        return [column for block in self.blocks.values() for column in block.columns]


def leaf_paths(structure: Any, prefix: str) -> list[tuple[str, Any]]:
    """The leaves of a nested structure with a readable path each, in ``tf.nest`` order."""
    if structure is None:
        return []
    if isinstance(structure, ColumnNames):
        return [(prefix, structure)]
    if isinstance(structure, Mapping):
        return [
            pair
            for key in sorted(structure)
            for pair in leaf_paths(structure[key], f"{prefix}[{key!r}]")
        ]
    if isinstance(structure, (list, tuple)):
        return [pair for i, v in enumerate(structure) for pair in leaf_paths(v, f"{prefix}[{i}]")]
    return [(prefix, structure)]


def _numeric(leaf: Any) -> np.ndarray | None:
    """A leaf as a NumPy array (ragged and sparse: their values); None if not numbers."""
    if isinstance(leaf, tf.RaggedTensor):
        leaf = leaf.flat_values
    elif isinstance(leaf, tf.SparseTensor):
        leaf = leaf.values
    array = np.asarray(leaf)  # a tensor's own memory (``.numpy()`` copies it whole)
    return array if is_number_dtype(array.dtype) else None


def _plain(block: np.ndarray) -> np.ndarray:
    """A block of ``ml_dtypes`` numbers (bfloat16) as float32, which holds each exactly.

    Their NumPy kind is ``"V"``: the statistics, which look for NaN and infinities in
    blocks of kind ``"f"``, passed a bfloat16 tensor's NaN by.
    """
    native = block.dtype.kind in "biu" or block.dtype in NATIVE_FLOATS
    return block if native else block.astype("f4")


def _column_names(path: str, given: list[str] | None) -> Callable[[int], list[str]]:
    def names(width: int) -> list[str]:
        if given is not None and len(given) == width:
            return given
        if given is not None and len(given) == 1:
            return [f"{given[0]}[{j}]" for j in range(width)]
        return [path] if width == 1 else [f"{path}[:, {j}]" for j in range(width)]

    return names


def scan_rows(
    scanner: Scanner,
    parts: tuple[Any, Any, Any],
    names: tuple[Any, Any, Any] = (None, None, None),
) -> None:
    """Feeds rows held in memory: ``parts`` is ``(x, y, sample_weight)``.

    Args:
        scanner: Where the statistics go.
        parts: The features, targets and weights (nested structures of arrays, or None).
        names: For each part, a structure like it of column-name lists (or None): the
            names of a leaf's columns, e.g. from a schema or a DataFrame.
    """
    for role, part, part_names, prefix in zip(
        _ROLES, parts, names, ("x", "y", "sample_weight"), strict=True
    ):
        given = dict(leaf_paths(part_names, prefix)) if part_names is not None else {}
        for leaf, (path, value) in enumerate(leaf_paths(part, prefix)):
            array = _numeric(value)
            if array is None:
                continue
            block = as_block(array)
            column_names = _column_names(path, given.get(path))
            if role == "target":
                label = ", ".join(given[path]) if path in given else path
            step = max(1, _CHUNK_BYTES // max(1, block.itemsize * block.shape[1]))
            for start in range(0, max(block.shape[0], 1), step):
                chunk = _plain(block[start : start + step])
                scanner.feed(path, role, chunk, column_names)
                if role == "target":
                    scanner.feed_target(leaf, label, chunk, [path])
        scanner.rows = max(scanner.rows, _rows(part))


def _rows(part: Any) -> int:
    leaves = leaf_paths(part, "")
    return int(np.shape(leaves[0][1])[0]) if leaves and np.ndim(leaves[0][1]) else 0


# ----------------------------------------------------------------------------- Arrow data
def spec_names(spec: Any) -> Any:
    """A schema role as a structure of column-name lists shaped like the arrays it becomes.

    A single column is one leaf (``[name]``), stacked columns one leaf (their names), named
    inputs a dict of those.
    """
    if spec is None:
        return None
    if isinstance(spec, Named):
        return {name: spec_names(columns) for name, columns in spec.items}
    return ColumnNames([spec] if isinstance(spec, str) else spec)


def arrow_block(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int, int] | None:
    """A numeric Arrow column as a block ``(rows, width)``, its nulls, and the NaN put in them.

    A plain column's nulls become NaN (so rows stay aligned); a list column's null rows are
    dropped. Fixed-size list columns give their width in columns; variable-length lists
    their values in one column (rows then count values). Other types give None.
    """
    array = classic(one_array(array))
    kind, nulls = array.type, array.null_count
    if pat.is_fixed_size_list(kind) or pat.is_list(kind) or pat.is_large_list(kind):
        values = array.drop_null() if nulls else array
        inner = arrow_block(values.flatten())
        if inner is None:
            return None
        width = kind.list_size if pat.is_fixed_size_list(kind) else 1
        return inner[0].reshape(-1, width), nulls + inner[1], 0
    if pat.is_decimal(kind):  # converted as float64 (see fitpipe.columnar)
        array, kind = array.cast(pa.float64()), pa.float64()
    if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind)):
        return None
    if nulls:
        array = array.cast(pa.float64())
    return as_block(array.to_numpy(zero_copy_only=False)), nulls, nulls


def role_columns(schema: Schema) -> list[tuple[str, str]]:
    """``(role, column)`` for every feature, target and weight column of a resolved schema."""
    roles = (("feature", schema.features), ("target", schema.targets))
    found = [(role, c) for role, spec in roles for c in _flat(spec)]
    return [*found, *([("weight", schema.sample_weight)] if schema.sample_weight else [])]


def _flat(spec: Any) -> list[str]:
    names = spec_names(spec)
    return [c for _, leaf in leaf_paths(names, "") for c in leaf] if names is not None else []


def scan_batches(scanner: Scanner, batches: Iterable[pa.RecordBatch], schema: Schema) -> None:
    """Feeds Arrow record batches by the columns of a resolved schema (other columns unread).

    Args:
        scanner: Where the statistics go.
        batches: The data, a batch at a time.
        schema: A schema naming plain columns (selectors resolved).
    """
    columns = role_columns(schema)
    target_leaves = leaf_paths(spec_names(schema.targets), "")
    for batch in batches:
        blocks: dict[str, np.ndarray] = {}
        for role, name in columns:
            converted = arrow_block(batch.column(name))
            if converted is None:
                continue
            blocks[name], nulls, filled = converted
            width = blocks[name].shape[1]
            names = _column_names(name, [name])
            scanner.feed(name, role, blocks[name], names, [nulls] * width, [filled] * width)
        for leaf, (_, names) in enumerate(target_leaves):
            parts = [blocks[c] for c in names if c in blocks]
            if len(parts) == len(names) and len({p.shape[0] for p in parts}) == 1:
                block = np.concatenate(parts, axis=1)
                scanner.feed_target(leaf, ", ".join(names), block, list(names))
        scanner.rows += batch.num_rows


def table_batches(table: pa.Table, rows: int = 65536) -> Iterator[pa.RecordBatch]:
    """A table's record batches of at most ``rows`` rows."""
    yield from table.to_batches(max_chunksize=rows)
