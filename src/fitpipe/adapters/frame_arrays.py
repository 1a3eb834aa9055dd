"""pandas objects and masked arrays read as one NumPy array (the array family's intake).

A DataFrame without a schema is one 2-D input: its columns must all hold numbers (or all
text). Columns of numbers whose ``to_numpy()`` is an object array (pandas' nullable and
Arrow-backed numbers, booleans beside floats) are converted to their common NumPy dtype. A
``numpy.ma.MaskedArray`` is taken as its data only when nothing is masked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured

from fitpipe.adapters.numbers import is_number_dtype
from fitpipe.errors import FitpipeTypeError, FitpipeValueError, message, raw
from fitpipe.schemas import column_listing

__all__ = ["check_frame", "frame_fix", "pandas_array", "unmasked"]


def frame_fix(path: str, dropped: list[str], caller: str, takes_schema: bool = True) -> str:
    """How to read a frame that is not one array: drop ``dropped`` columns, or a schema.

    ``takes_schema``: False for a caller taking no schema (the ``*_on_batch`` methods),
    whose fix says so instead of offering one.
    """
    drop = f"`{path}.drop(columns={dropped!r})`" if dropped else f"`{path}[[...feature columns]]`"
    if not takes_schema:
        return (
            f"Select the feature columns, e.g. {drop} (`{caller}` takes no schema: it reads "
            "a DataFrame as one 2-D input of all its columns)"
        )
    return (
        f"Select the feature columns, e.g. {drop}, or pass `schema=` to read the frame's "
        "columns by role, e.g. `schema={'features': [...], 'targets': 'label', "
        "'passthrough': ['id']}` (globs such as 'px*' select many columns)"
    )


def check_frame(value: Any, caller: str, path: str, takes_schema: bool = True) -> None:
    """Refuses a DataFrame that mixes numeric and non-numeric columns, naming the latter.

    ``takes_schema``: whether the caller takes a ``schema`` (offered as a fix).
    """
    dtypes = getattr(value, "dtypes", None)
    if getattr(value, "ndim", 1) != 2 or dtypes is None:
        return
    names = [str(c) for c in dtypes.index]
    other = [c for c, dt in zip(names, dtypes, strict=True) if not _holds_numbers(dt)]
    if not other or len(other) == len(names):
        return  # all numbers, or all text (a text input): one array
    shown = other[:8] + ([f"... and {len(other) - 8} more"] if len(other) > 8 else [])
    raise FitpipeTypeError(
        message(
            caller,
            f"cannot read `{path}`, a pandas DataFrame with non-numeric columns {shown}, "
            "as one array",
            "Without a schema a DataFrame is one 2-D input, so its columns must all be "
            "numbers (or all strings)",
            frame_fix(path, other if len(other) <= 8 else [], caller, takes_schema),
            **{path: raw(f"DataFrame of shape {value.shape} with columns {column_listing(names)}")},
        )
    )


def _holds_numbers(dtype: Any) -> bool:
    return _number_dtype(dtype) is not None or getattr(dtype, "kind", "O") in "biuf"


def _number_dtype(dtype: Any) -> np.dtype | None:
    """The NumPy dtype a pandas column of ``dtype`` converts to when it holds numbers.

    NumPy numbers and booleans, pandas' nullable and Arrow-backed numbers (``Int64``,
    ``Float64``, ``boolean``, ``float64[pyarrow]``) and categoricals of numbers (whose
    values ``to_numpy()`` gives, as Keras reads them); None for anything else.
    """
    if isinstance(dtype, np.dtype):
        return dtype if is_number_dtype(dtype) else None
    categories = getattr(dtype, "categories", None)
    found = getattr(categories, "dtype", None) if categories is not None else None
    found = getattr(dtype, "numpy_dtype", None) if found is None else found
    if isinstance(found, np.dtype) and is_number_dtype(found):
        return found
    return None


def pandas_array(value: Any, caller: str, path: str, takes_schema: bool = True) -> Any:
    """A DataFrame or Series as one array; columns of numbers as their common NumPy dtype.

    Columns of one NumPy dtype are read by ``to_numpy()`` (a view where pandas keeps one
    block). Numbers whose ``to_numpy()`` is an object array (nullable or Arrow-backed
    numbers, booleans beside floats) are converted to ``np.result_type`` of their NumPy
    dtypes, once no value is missing (``takes_schema``: whether the caller takes a
    ``schema``, whose ``fill=`` the refusal of a missing value offers).
    """
    dtypes = list(value.dtypes) if value.ndim == 2 else [value.dtype]
    plain = all(isinstance(dt, np.dtype) for dt in dtypes)
    if plain and (len(set(dtypes)) == 1 or all(dt.kind != "b" for dt in dtypes)):
        return value.to_numpy()  # one dtype, or numbers pandas finds the common type of
    numbers = [_number_dtype(dt) for dt in dtypes]
    if any(n is None for n in numbers):
        return value.to_numpy()  # text, or mixed: refused in words by the caller
    columns = [value] if value.ndim == 1 else [value.iloc[:, i] for i in range(len(dtypes))]
    for column, dtype in zip(columns, dtypes, strict=True):
        if not isinstance(dtype, np.dtype) and column.hasnans:
            raise _missing_error(value, column, caller, path, takes_schema)
    return value.to_numpy(dtype=np.result_type(*numbers))


def _missing_error(
    value: Any, column: Any, caller: str, path: str, takes_schema: bool
) -> FitpipeValueError:
    where = "it holds" if value.ndim == 1 else f"its column {str(column.name)!r} holds"
    fix = f"Fill them, e.g. `{path}.to_numpy(dtype='float32', na_value=0)`"
    if takes_schema:
        fix += ", or pass a DataFrame with `schema=` and fill the column there (`fill=`)"
    else:
        fix += f" (`{caller}` takes no schema: it reads the batch as it is)"
    return FitpipeValueError(
        message(
            caller,
            f"cannot read `{path}` as one array of numbers: {where} missing values (NA)",
            "Without a schema a pandas object is one array, which has no missing values",
            fix,
            **{path: raw(f"{type(value).__name__} of shape {value.shape}")},
        )
    )


def unmasked(value: np.ma.MaskedArray, caller: str, path: str) -> np.ndarray:
    """A masked array's data (a view), when no value is masked: else refused in words.

    NumPy (and Keras) read a masked array as its data, masked values included: those are
    placeholders (often sentinels), never to be trained on.
    """
    mask: Any = np.ma.getmask(value)
    if mask is not np.ma.nomask and mask.dtype.names:  # a record array's: a flag per field
        mask = structured_to_unstructured(mask)
    if mask is np.ma.nomask or not mask.any():
        return np.asarray(value.data)
    count = int(mask.sum())
    flags = f"np.ma.getmaskarray({path})"
    if value.dtype.names:  # a record array's mask has a flag per field
        flags = f"structured_to_unstructured({flags})"
    raise FitpipeValueError(
        message(
            caller,
            f"cannot use `{path}`, a masked array with {count} masked value(s)",
            "A masked array's masked values are placeholders, not data; fitpipe drops "
            "nothing silently",
            f"Fill them, e.g. `{path}.filled(0)`, or drop the rows that hold them, e.g. "
            f"`keep = ~{flags}.reshape(len({path}), -1).any(axis=1)` and index every "
            "argument with `[keep]`"
            + (
                " (`from numpy.lib.recfunctions import structured_to_unstructured`)"
                if value.dtype.names
                else ""
            ),
            **{path: raw(f"masked array of shape {value.shape} and dtype {value.dtype}")},
        )
    )
