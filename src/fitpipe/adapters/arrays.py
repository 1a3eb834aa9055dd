"""Shared machinery of the row-addressed ("array family") adapters.

NumPy arrays, array-likes, tensors, pandas objects, and lists/tuples/dicts of those all become
an :class:`~fitpipe.adapters.base.ArraySource`. The adapters of the family differ only in which
inputs they take (``can_adapt``) and how they describe themselves; the conversion of ``x``,
``y`` and ``sample_weight`` and the checks that their rows agree live here.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np
import tensorflow as tf

from fitpipe.adapters.arrow_leaves import check_arrow_nulls
from fitpipe.adapters.base import AdaptRequest, ArraySource, Mode
from fitpipe.adapters.capabilities import SourceBase
from fitpipe.adapters.frame_arrays import check_frame, frame_fix, pandas_array, unmasked
from fitpipe.adapters.kinds import ByType, of_library
from fitpipe.adapters.nested import map_leaves
from fitpipe.adapters.numbers import complex_error, dtype_refusal, tensor_dtype_refusal
from fitpipe.adapters.sparse import is_sparse_array, to_sparse_tensor
from fitpipe.adapters.torch_tensors import is_torch_tensor, torch_to_numpy
from fitpipe.errors import DataMismatchError, FitpipeTypeError, FitpipeValueError, message, raw
from fitpipe.schemas import find_namedtuple

__all__ = [
    "ARRAY_FAMILY_SUPPORTS",
    "ArrayFamilyAdapter",
    "convert_structure",
    "is_array_like",
    "is_scalar_sequence",
    "is_tf_value",
    "num_rows",
]

ARRAY_FAMILY_SUPPORTS = frozenset(
    {
        "y",
        "sample_weight",
        "batch_size",
        "shuffle",
        "class_weight",
        "steps",
        "validation_split",
        "split_by",
    }
)

_SCALARS = (numbers.Number, np.generic, str, bytes, bool)
_TEXT_KINDS = frozenset("US")


_TF_VALUES = (tf.Tensor, tf.RaggedTensor, tf.SparseTensor, tf.Variable)


_tf_type = ByType(lambda kind: issubclass(kind, _TF_VALUES))
_pandas_type = of_library(("pandas",))


def is_tf_value(value: Any) -> bool:
    """Tells whether ``value`` is a dense, ragged or sparse TensorFlow tensor or variable."""
    return _tf_type(value)


def is_pandas(value: Any) -> bool:
    """Tells, without importing pandas, whether ``value`` is a pandas DataFrame or Series."""
    return _pandas_type(value) and hasattr(value, "to_numpy")


def is_scalar_sequence(value: Any) -> bool:
    """Tells whether ``value`` is a non-empty (nested) list/tuple holding only Python scalars."""
    if not isinstance(value, (list, tuple)) or hasattr(type(value), "_fields") or not value:
        return False
    return all(isinstance(v, _SCALARS) or is_scalar_sequence(v) for v in value)


def is_array_like(value: Any) -> bool:
    """Tells whether ``value`` is one array: ndarray, tensor, pandas, sparse, or array-like."""
    if is_sparse_array(value):  # before the Mapping test: a SciPy DOK matrix is a dict
        return True
    if isinstance(value, (str, bytes, Mapping)):
        return False
    return (
        isinstance(value, np.ndarray)
        or is_tf_value(value)
        or is_pandas(value)
        or (hasattr(value, "__array__") and not isinstance(value, type))
        or is_scalar_sequence(value)
    )


def num_rows(leaf: Any) -> int:
    """Returns the first dimension of a converted leaf."""
    if isinstance(leaf, tf.RaggedTensor):
        return int(leaf.nrows())
    if isinstance(leaf, tf.SparseTensor):
        return int(leaf.dense_shape[0])
    return int(leaf.shape[0])


def _to_numpy(value: Any, caller: str, path: str, takes_schema: bool) -> Any:
    """``value`` as a NumPy array (a string tensor for arrays of Python strings).

    ``takes_schema``: whether the caller takes a ``schema``, which refusals of a pandas
    object offer.
    """
    if is_pandas(value):
        check_frame(value, caller, path, takes_schema)
        array = pandas_array(value, caller, path, takes_schema)
    else:
        if isinstance(value, np.ma.MaskedArray):  # an isinstance check: ndarrays pass as they are
            value = unmasked(value, caller, path)
        elif not isinstance(value, np.ndarray):
            check_arrow_nulls(value, caller, path)  # NumPy would make them NaN
        array = _torch_array(value, caller, path) if is_torch_tensor(value) else None
        try:
            array = np.asarray(value) if array is None else array
        except (ValueError, TypeError) as err:
            raise FitpipeValueError(
                message(
                    caller,
                    f"cannot convert `{path}` to an array ({err})",
                    "Each input must be an array-like of equal-length rows",
                    "Pass a NumPy array, e.g. `np.stack(rows)`, or pad ragged rows",
                    **{path: value},
                )
            ) from err
    if array.dtype.kind in _TEXT_KINDS and not isinstance(value, np.ndarray):
        array = np.asarray(value, dtype=object)  # Python strings, kept whole (see below)
    if array.dtype.kind in "OT":  # objects, or NumPy 2's variable-width StringDType
        objects = array.astype(object, copy=False)
        return _object_to_text(objects, caller, path, value, takes_schema)
    refusal = dtype_refusal(path, array.dtype)
    if refusal is not None:
        raise FitpipeTypeError(message(caller, *refusal, **{path: value}))
    return array


def _torch_array(tensor: Any, caller: str, path: str) -> np.ndarray:
    """A torch tensor's values, as Keras reads them (see :mod:`fitpipe.adapters.torch_tensors`).

    ``bfloat16`` becomes ``float32`` exactly: Keras casts floats to floatx anyway.
    """
    array = torch_to_numpy(tensor, caller, f"`{path}`", "before passing it")
    return array.astype("float32") if array.dtype == tf.bfloat16.as_numpy_dtype else array


def _object_to_text(
    array: np.ndarray, caller: str, path: str, original: Any, takes_schema: bool
) -> Any:
    """An object array of ``str`` and ``bytes`` values as a string tensor, values exact.

    Through TensorFlow's conversion, as Keras converts such arrays: NumPy's fixed-width
    ``str`` and ``bytes`` dtypes drop trailing NUL characters, so ``"a"`` and ``"a"``
    followed by a NUL became one string. ``str`` and ``bytes`` may mix (``str`` is encoded
    as UTF-8).
    """
    flat = array.ravel()
    if flat.size and all(isinstance(v, (str, bytes)) for v in flat):
        return tf.constant(array, tf.string)
    if not flat.size:
        raise FitpipeTypeError(
            message(
                caller,
                f"cannot tell the dtype of `{path}`, an empty object-dtype array",
                "Inputs must be arrays of numbers, booleans or strings of one dtype",
                "Give the empty array a dtype, e.g. `np.zeros((0, n), dtype='float32')` or "
                "`dtype=str`",
                **{path: original},
            )
        )
    kinds = sorted({type(v).__name__ for v in flat[:1000]})
    fix = (
        f"Convert it, e.g. `np.asarray({path}, dtype='float32')` for numbers or `dtype=str` "
        "for text, or replace None/NaN objects"
    )
    if all(isinstance(v, (np.ndarray, list, tuple)) for v in flat[:1000]):
        fix = (
            f"Stack its rows into one array, e.g. `np.stack({path})` (rows of unequal "
            "lengths: pad them first)"
        )
    if is_pandas(original) and getattr(original, "ndim", 1) == 2:
        fix = frame_fix(path, [], caller, takes_schema)
    raise FitpipeTypeError(
        message(
            caller,
            f"cannot use `{path}`: it is an object-dtype array holding {', '.join(kinds)}",
            "Inputs must be arrays of numbers, booleans or strings of one dtype",
            fix,
            **{path: original},
        )
    )


def _scalar_fix(path: str, value: Any) -> str:
    """How to give a scalar ``value`` once per sample (``np.full`` of its value)."""
    number = value.item() if hasattr(value, "item") else value
    full = f"np.full(len(x), {number!r})"
    if path.startswith("x"):
        return "Pass an array with one entry per sample, e.g. `np.full((n,), value)`"
    if path.isidentifier():
        return f"Repeat it once per sample, e.g. `{path}={full}`"
    return f"Repeat it once per sample, e.g. `{full}` in its place"


def _scalar_leaf(value: Any, caller: str, path: str) -> str:
    """A number where an array is expected: the fix repeats it once per sample."""
    return message(
        caller,
        f"cannot use the scalar `{path}` as an array",
        f"`{path}` has one entry per sample (its first dimension), as `x` has rows",
        _scalar_fix(path, value),
        **{path: value},
    )


def _convert_leaf(value: Any, caller: str, path: str, takes_schema: bool) -> Any:
    if isinstance(value, tf.Variable):
        value = tf.convert_to_tensor(value)
    if is_sparse_array(value):
        value = to_sparse_tensor(value, caller, path)
    if not is_tf_value(value):
        if not is_array_like(value):
            if isinstance(value, numbers.Number) and not path.startswith("x"):
                raise FitpipeTypeError(_scalar_leaf(value, caller, path))
            raise FitpipeTypeError(
                message(
                    caller,
                    f"cannot use `{path}` as an array",
                    "Each leaf of `x`, `y` and `sample_weight` must be a NumPy array, tensor, "
                    "pandas object, SciPy or JAX sparse array, or array-like",
                    "Convert it with `np.asarray`, or pass an input form fitpipe adapts",
                    **{path: value},
                )
            )
        value = _to_numpy(value, caller, path, takes_schema)
    else:
        sparse = isinstance(value, tf.SparseTensor)
        refusal = tensor_dtype_refusal(path, value.dtype, sparse)
        if refusal is not None:  # as NumPy arrays of the dtype are (`_to_numpy`)
            raise FitpipeTypeError(message(caller, *refusal, **{path: value}))
    rank = value.shape.rank if is_tf_value(value) else value.ndim
    if rank == 0:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot batch the scalar `{path}`",
                "Arrays need a first (sample) dimension",
                _scalar_fix(path, value),
                **{path: value},
            )
        )
    return value


def convert_structure(value: Any, caller: str, path: str, *, takes_schema: bool = True) -> Any:
    """Converts a nested structure of array-likes to NumPy arrays and tensors, leaf by leaf.

    Lists become tuples (the form ``tf.data`` keeps as a structure); dicts keep their keys.

    Args:
        value: The structure, or None.
        caller: The public method being run.
        path: The argument name (``"x"``, ``"y"``, ``"sample_weight"``), extended per level.
        takes_schema: Whether the caller takes a ``schema`` (the fixes of pandas objects
            that are not one array offer it); False for the ``*_on_batch`` methods.

    Returns:
        The converted structure.

    Raises:
        FitpipeValueError: For namedtuples, scalars and ragged nested lists.
        FitpipeTypeError: For leaves that are not array-like or have an unusable dtype.

    """
    if value is None:
        return None
    where = find_namedtuple(value)
    if where is not None:
        raise FitpipeValueError(
            message(
                caller,
                f"cannot use a namedtuple in `{path}` (found at {where})",
                "Structures of arrays are plain tuples, lists or dicts; a namedtuple is both "
                "ordered and named, so fitpipe will not guess which it means",
                "Pass `tuple(value)` or `value._asdict()`",
                **{path: value},
            )
        )

    def leaf(value: Any, path: str) -> Any:
        return _convert_leaf(value, caller, path, takes_schema)

    def empty(value: Any, path: str) -> FitpipeValueError:
        return _empty_structure(caller, path, value)

    return map_leaves(value, path, leaf, is_leaf=is_array_like, empty=empty)


def _empty_structure(caller: str, path: str, value: Any) -> FitpipeValueError:
    return FitpipeValueError(
        message(
            caller,
            f"got an empty structure for `{path}`",
            "A list, tuple or dict of arrays needs at least one array",
            "Pass the arrays, or leave the argument out",
            **{path: value},
        )
    )


def _leaves(structure: Any) -> list[Any]:
    return [leaf for leaf in tf.nest.flatten(structure) if leaf is not None]


def check_rows(source_parts: dict[str, Any], caller: str, empty: bool = False) -> int:
    """Checks that every leaf of x, y and sample_weight has the same number of rows.

    Args:
        source_parts: ``{"x": ..., "y": ..., "sample_weight": ...}`` (converted).
        caller: The public method being run.
        empty: No rows is allowed (one batch to predict: none are predicted).

    Returns:
        The shared number of rows.

    Raises:
        DataMismatchError: When the counts differ, or are zero without ``empty``, naming
            every size.

    """
    sizes = {
        name: [num_rows(leaf) for leaf in _leaves(part)] for name, part in source_parts.items()
    }
    distinct = {n for counts in sizes.values() for n in counts}
    if len(distinct) > 1 or (not distinct - {0} and not empty):  # worded only to refuse
        _refuse_rows(sizes, distinct, caller)
    return distinct.pop() if distinct else 0


def _refuse_rows(sizes: dict[str, list[int]], distinct: set[int], caller: str) -> NoReturn:
    listing = "; ".join(
        f"{name} sizes: {', '.join(map(str, counts))}" for name, counts in sizes.items() if counts
    )
    if len(distinct) > 1:
        raise DataMismatchError(
            message(
                caller,
                "got inputs with different numbers of samples",
                "`x`, `y` and `sample_weight` must all have the same first dimension",
                "Make every array hold one row per sample",
                sizes=raw(listing),
            )
        )
    raise DataMismatchError(
        message(
            caller,
            "got an empty input (0 samples)",
            "Training and inference need at least one sample",
            "Check the data loading step that produced the arrays",
            sizes=raw(listing),
        )
    )


def check_sample_weight(sample_weight: Any, y: Any, caller: str) -> None:
    """Checks that sample weights are numeric arrays, one nested as the targets are.

    Which shapes fit the loss is the model's to say (``fitpipe.training.weight_shapes``).

    Args:
        sample_weight: Converted weights, or None.
        y: Converted targets, or None.
        caller: The public method being run.

    Raises:
        FitpipeValueError: For weights without targets, or several for one target.
        FitpipeTypeError: For non-numeric weights.

    """
    if sample_weight is None:
        return
    if y is None:
        raise FitpipeValueError(
            message(
                caller,
                "got `sample_weight` without `y`",
                "Sample weights weight the loss against targets",
                "Pass `y` too, or drop `sample_weight`",
                sample_weight=sample_weight,
            )
        )
    _check_weight_structure(sample_weight, y, caller)
    for leaf in _leaves(sample_weight):
        dtype = tf.as_dtype(leaf.dtype)
        if dtype.is_complex:  # as NumPy weights are (`_to_numpy`): the loss drops imaginary parts
            raise complex_error(caller, "sample_weight", dtype.name, leaf)
        if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            raise FitpipeTypeError(
                message(
                    caller,
                    "got non-numeric `sample_weight`",
                    "Weights are numbers, one per sample (or per sample and time step)",
                    "Pass a float array",
                    sample_weight=leaf,
                )
            )


def _check_weight_structure(sample_weight: Any, y: Any, caller: str) -> None:
    nested = isinstance(sample_weight, (Mapping, tuple, list))
    single_y = not isinstance(y, (Mapping, tuple, list))
    if nested and single_y:
        raise FitpipeValueError(
            message(
                caller,
                "got several `sample_weight` arrays for one target",
                "`sample_weight` is one array, or one per model output when `y` has "
                "several outputs",
                "Pass a single weights array",
                sample_weight=sample_weight,
            )
        )


class ArrayFamilyAdapter:
    """Base of the adapters whose inputs are addressed by row.

    Subclasses set ``name``, ``accepts`` and ``can_adapt``; conversion is shared.
    """

    name = "arrays"
    accepts = "arrays"
    supports = ARRAY_FAMILY_SUPPORTS

    def can_adapt(self, x: Any) -> bool:  # pragma: no cover - overridden
        """Overridden by each adapter of the family."""
        raise NotImplementedError

    def adapt(self, request: AdaptRequest) -> ArraySource | SourceBase:
        """Converts x, y and sample_weight and checks that their rows agree.

        Args:
            request: The request.

        Returns:
            The array source.

        """
        from fitpipe.adapters.split_keys import check_key_rows, row_keys  # (imports this)

        x, keys = row_keys(request)
        given = {"x": x, "y": request.y, "sample_weight": request.sample_weight}
        parts = {
            name: convert_structure(value, request.caller, name, takes_schema=not request.one_batch)
            for name, value in given.items()
        }
        check_sample_weight(parts["sample_weight"], parts["y"], request.caller)
        empty = request.one_batch and request.mode is Mode.PREDICT  # none to predict
        count = check_rows(parts, request.caller, empty)
        check_key_rows(keys, count, request.caller)
        return ArraySource(parts["x"], parts["y"], parts["sample_weight"], count, keys=keys)
