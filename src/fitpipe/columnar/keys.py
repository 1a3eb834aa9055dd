"""Grouped validation splits: a stable 64-bit hash of each row's key decides its side.

``fit(..., validation_split=f, split_by=key)`` puts every row of a key on one side: the
validation side when the key's hash is below ``f * 2**64``. The hash is fixed (not Python's
``hash``, which is salted per process): FNV-1a 64 over the key's bytes, then SplitMix64's
finalizer, so it is the same on every run and machine, for every input form, and for any
row order, and a row's side is known as soon as the row is read (streamed Parquet filters
each row group as it is read, with no pass over the data first).

A key's bytes: integers (and booleans) as 8 bytes little-endian two's complement (so ``7`` is
the same key as int8, int32, uint64 or pandas ``Int64``); strings as UTF-8 (and bytes as
they are, so ``b"a"`` is ``"a"``); dictionary-encoded columns (pandas categoricals) by
their values. Floats, dates, nested values and nulls are refused: a key names a group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa

from fitpipe.columnar.types import classic, is_text, one_array
from fitpipe.errors import DataMismatchError, FitpipeTypeError, message
from fitpipe.schemas import closest_column, column_listing

__all__ = [
    "SplitCounts",
    "count_split",
    "empty_side_error",
    "key_array",
    "key_hashes",
    "missing_key_column",
    "validation_mask",
]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_BYTE = np.uint64(0xFF)


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    """The sizes of a validation split: rows (and keys, for grouped splits) per side.

    Attributes:
        train_rows: Rows of the training side.
        validation_rows: Rows of the validation side.
        train_keys: Distinct keys of the training side (None: not grouped).
        validation_keys: Distinct keys of the validation side (None: not grouped).
    """

    train_rows: int
    validation_rows: int
    train_keys: int | None = None
    validation_keys: int | None = None

    def __add__(self, other: SplitCounts) -> SplitCounts:
        """Row counts added (keys are counted over the whole data by :func:`count_split`)."""
        return SplitCounts(
            self.train_rows + other.train_rows, self.validation_rows + other.validation_rows
        )


def _received(values: Any) -> Any:
    return values if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values.type


def _key_error(what: str, where: str, caller: str, values: Any) -> FitpipeTypeError:
    return FitpipeTypeError(
        message(
            caller,
            f"cannot split by {where}: {what}",
            "`split_by` keys are integers or strings (an id per user, session, ...); every "
            "row of a key falls on the same side",
            "Pass a column or array of integer or string ids, e.g. `df['user_id'].astype('int64')`",
            split_by=_received(values),
        )
    )


def key_array(values: Any, where: str, caller: str = "fit") -> pa.Array:
    """The keys as one Arrow array of int64, uint64, large_binary or large_string values.

    Args:
        values: An Arrow array or chunked array, a NumPy array, a pandas Series or a list.
        where: What the keys are, for messages (``"column 'user_id'"``).
        caller: The public method being run.

    Returns:
        The keys, one chunk, dictionary-decoded.

    Raises:
        FitpipeTypeError: For floats, temporal or nested values, or nulls.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "US":
        values = values.astype(object)  # Arrow would cut NumPy's text at a NUL character
    try:
        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise _key_error(f"the keys cannot be read ({err})", where, caller, values) from err
    array = classic(one_array(array))
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if pa.types.is_boolean(kind):
        array = array.cast(pa.int64())
    elif is_text(kind):  # one layout of each: keys compare across chunks and files
        binary = kind in (pa.binary(), pa.large_binary(), pa.binary_view())
        array = array.cast(pa.large_binary() if binary else pa.large_string())
    elif pa.types.is_unsigned_integer(kind):
        array = array.cast(pa.uint64())
    elif pa.types.is_integer(kind):
        array = array.cast(pa.int64())
    else:
        raise _key_error(f"its keys are of type {kind}", where, caller, values)
    if array.null_count:
        raise _key_error(f"it holds {array.null_count} null key(s)", where, caller, values)
    return array


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: every input bit reaches every output bit."""
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX_1
    h = h ^ (h >> np.uint64(27))
    h = h * _MIX_2
    return h ^ (h >> np.uint64(31))


def _integer_hashes(array: pa.Array) -> np.ndarray:
    values = array.to_numpy(zero_copy_only=False).view(np.uint64)
    h = np.full(len(values), _FNV_OFFSET, dtype=np.uint64)
    for shift in range(0, 64, 8):
        h = (h ^ ((values >> np.uint64(shift)) & _BYTE)) * _FNV_PRIME
    return h


def _bytes_hashes(array: pa.Array) -> np.ndarray:
    """FNV-1a of each value's bytes, one byte position at a time over the longer values."""
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else None
    starts, lengths = offsets[:-1], np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")  # longest first: a prefix is still going
    starts, sorted_lengths = starts[order], lengths[order]
    h = np.full(len(array), _FNV_OFFSET, dtype=np.uint64)
    longest = int(sorted_lengths[0]) if len(array) else 0
    going = len(array)
    for position in range(longest):
        while going and sorted_lengths[going - 1] <= position:
            going -= 1
        assert data is not None  # some value has a byte at this position
        byte = data[starts[:going] + position].astype(np.uint64)
        h[:going] = (h[:going] ^ byte) * _FNV_PRIME
    out = np.empty_like(h)
    out[order] = h
    return out


def key_hashes(array: pa.Array) -> np.ndarray:
    """The stable 64-bit hash of each key (see the module's description).

    Args:
        array: Keys from :func:`key_array`.

    Returns:
        A ``uint64`` array, one hash per row.
    """
    with np.errstate(over="ignore"):
        if pa.types.is_integer(array.type):
            return _mix(_integer_hashes(array))
        return _mix(_bytes_hashes(array))


def validation_mask(hashes: np.ndarray, validation_split: float) -> np.ndarray:
    """True for the rows whose key hashes below ``validation_split * 2**64`` (validation).

    Args:
        hashes: Hashes from :func:`key_hashes`.
        validation_split: The fraction in (0, 1) of the keys (not rows) set apart.
    """
    threshold = np.uint64(min(int(validation_split * 2.0**64), 2**64 - 1))
    return hashes < threshold


def count_split(hashes: np.ndarray, mask: np.ndarray) -> SplitCounts:
    """Rows and distinct keys of each side of a grouped split.

    Args:
        hashes: The rows' key hashes (distinct keys are counted by hash).
        mask: True for validation rows.
    """
    validation = int(mask.sum())
    return SplitCounts(
        len(mask) - validation,
        validation,
        len(np.unique(hashes[~mask])),
        len(np.unique(hashes[mask])),
    )


def empty_side_error(
    counts: SplitCounts, validation_split: float, where: str, caller: str
) -> DataMismatchError:
    """The error of a grouped split that left one side without rows."""
    keys = (counts.train_keys or 0) + (counts.validation_keys or 0)
    side = "training" if counts.validation_rows == 0 else "validation"
    return DataMismatchError(
        message(
            caller,
            f"cannot split {counts.train_rows + counts.validation_rows} rows of {keys} key(s) "
            f"by {where} with `validation_split={validation_split}`: every key fell on the "
            f"{side} side",
            "A grouped split sends each key to one side by a hash of the key, so its "
            "fraction is approximate and both sides need at least one key",
            "Provide more keys, or another `validation_split`",
            validation_split=validation_split,
        )
    )


def missing_key_column(
    column: str, names: list[str], source: str, caller: str = "fit"
) -> DataMismatchError:
    """The error for a ``split_by`` column that the data lacks, with the closest match."""
    guess = closest_column(column, names)
    hint = f" (did you mean {guess!r}?)" if guess is not None else ""
    return DataMismatchError(
        message(
            caller,
            f"cannot find the `split_by` column {column!r} in {source}{hint}",
            f"`split_by` names a column of the data holding each row's key; the data has "
            f"columns {column_listing(names)}",
            "Fix the name, or pass the keys themselves as an array with one key per row",
            split_by=column,
        )
    )
