"""The host-side check of every batch that Python code yields, before it reaches ``tf.data``.

The spec of an input is taken from its first batches: the structure, the kind of each leaf
(dense, ragged, sparse), its dtype and rank, and the dimensions after the first where the first
batches agree. Every later batch must fit that spec, and the leaves of one batch must hold the
same number of rows. A batch that does not is a fitpipe error naming the batch and the leaf:
never a cast (``tf.data`` casts 1.5 to 1 for an integer spec), never a malformed batch handed
to a compiled step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.errors import DataMismatchError, FitpipeTypeError, message, raw

__all__ = [
    "BatchSpec",
    "check_numeric_targets",
    "check_numeric_weights",
    "leaf_names",
    "nesting",
    "outline",
    "signature_of",
    "string_targets_error",
]

_ROLES = ("x", "y", "sample_weight")


def _is_text(leaf: Any) -> bool:
    """Whether an array, tensor or spec holds strings (``tf.string``, NumPy ``U``/``S``)."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        return False
    if isinstance(dtype, tf.DType):
        return dtype == tf.string
    try:
        return np.dtype(dtype).kind in "US"
    except TypeError:
        return False


def check_numeric_targets(y: Any, caller: str) -> None:
    """Refuses string targets: a loss, or ``class_weight``, reads targets as numbers.

    One error for every path that meets them (the model's loss, a ``class_weight`` map or
    ``"balanced"``, in ``fit``, ``adapt`` and ``train_on_batch``).

    Args:
        y: Targets: arrays, tensors or their specs, nested or not (None passes).
        caller: The public method being run.

    Raises:
        FitpipeTypeError: When a target leaf holds strings.
    """
    if any(_is_text(leaf) for leaf in tf.nest.flatten(y)):
        raise string_targets_error(caller)


def check_numeric_weights(weights: Any, caller: str) -> None:
    """Refuses string sample weights (a weight column of strings read by a schema, say).

    Arrays given as ``sample_weight`` are refused as they are taken in; this check is the
    one of the batches' spec, which every input reaches, whatever made its weights.

    Raises:
        FitpipeTypeError: When a weight leaf holds strings.
    """
    if any(_is_text(leaf) for leaf in tf.nest.flatten(weights)):
        raise FitpipeTypeError(
            message(
                caller,
                "got string sample weights",
                "Weights are numbers, one per sample (or per sample and time step)",
                "Convert them to floats: for a table read by a `fitpipe.Schema`, cast its "
                'weight column, e.g. `table.set_column(i, "w", table["w"].cast("float32"))` '
                "or `frame.astype({'w': 'float32'})`",
                sample_weight=raw("data of dtype string"),
            )
        )


def string_targets_error(caller: str) -> FitpipeTypeError:
    """The error for string targets (:func:`check_numeric_targets`'s, and ``"balanced"``'s)."""
    return FitpipeTypeError(
        message(
            caller,
            "got string targets `y`",
            "The loss, and `class_weight`'s class indices, read targets as numbers: "
            "float or integer values",
            "Encode the targets as numbers (class indices or one-hot)",
            y=raw("data of dtype string"),
        )
    )


def _paths(value: Any, path: str) -> list[str]:
    """Leaf paths of ``value`` in the order of ``tf.nest.flatten`` (dict keys sorted)."""
    if isinstance(value, Mapping):
        return [p for key in sorted(value) for p in _paths(value[key], f"{path}[{key!r}]")]
    if isinstance(value, (tuple, list)):
        return [p for i, item in enumerate(value) for p in _paths(item, f"{path}[{i}]")]
    return [path]


def leaf_names(batch: Any) -> list[str]:
    """Names of the leaves of a batch ``(x, y, sample_weight)``: ``x``, ``x['a']``, ``y``..."""
    return [p for role, part in zip(_ROLES, batch, strict=False) for p in _paths(part, role)]


def _kind(leaf: Any) -> str:
    if leaf is None or isinstance(leaf, tf.OptionalSpec):
        return "None"
    if isinstance(leaf, (tf.TypeSpec, tf.RaggedTensor, tf.SparseTensor)):
        name = type(leaf).__name__
        return {"TensorSpec": "array", "RaggedTensorSpec": "RaggedTensor"}.get(
            name, name.removesuffix("Spec")
        )
    return "array" if hasattr(leaf, "shape") and hasattr(leaf, "dtype") else type(leaf).__name__


def nesting(value: Any) -> str:
    """How a structure nests, with its leaves' kinds: ``{'a': array, 'b': (array, None)}``."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {nesting(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(nesting(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _kind(value)


def outline(batch: Any) -> str:
    """The nesting of a batch with its leaves' kinds, e.g. ``(x: array, y: {'a': array})``."""
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        parts = zip(_ROLES, batch, strict=False)
        return "(" + ", ".join(f"{role}: {nesting(part)}" for role, part in parts) + ")"
    return nesting(batch)


def _shape(leaf: Any) -> tuple[int | None, ...]:
    if leaf is None:
        return ()
    if isinstance(leaf, tf.SparseTensor):
        return tuple(int(d) for d in leaf.dense_shape.numpy())
    return tuple(leaf.shape)


def _rows(leaf: Any) -> int | None:
    shape = _shape(leaf)
    return shape[0] if shape else None  # None for an absent optional input: no rows


class _Context:
    """Who is checking: the caller, the source, the batch index, for every message."""

    def __init__(self, caller: str, source: str, index: int) -> None:
        self.caller = caller
        self.source = source
        self.index = index

    def error(self, kind: type[Exception], what: str, expected: str, fix: str, got: str) -> Any:
        return kind(
            message(
                self.caller,
                f"got batch {self.index} from the {self.source} {what}",
                expected,
                fix,
                batch=raw(f"{self.index} (counted from 0), {got}"),
            )
        )


def _dense_dtype(leaf: Any, name: str, where: _Context) -> tf.DType:
    """The ``tf.DType`` a dense leaf crosses as, or the error naming the batch and the leaf."""
    if isinstance(leaf, (tf.Tensor, tf.Variable)):
        return leaf.dtype
    dtype = leaf.dtype
    if dtype.kind in "US":
        return tf.string
    if dtype.kind == "O" and leaf.size and all(isinstance(v, (str, bytes)) for v in leaf.flat):
        return tf.string  # Arrow's strings as NumPy objects (streamed Parquet text columns)
    if dtype.kind == "O":
        held = "None" if any(v is None for v in leaf.ravel()) else "Python objects"
        raise where.error(
            FitpipeTypeError,
            f"whose `{name}` is an object array holding {held}",
            "Batch arrays hold numbers, booleans or strings",
            "Replace missing values and convert the array before yielding it, e.g. "
            "`np.asarray(a, dtype='float32')`",
            f"`{name}` of shape {leaf.shape} and dtype object",
        )
    try:
        return tf.as_dtype(dtype)
    except TypeError as err:
        raise where.error(
            FitpipeTypeError,
            f"whose `{name}` has the unusable dtype {dtype}",
            "Batch arrays hold numbers, booleans or strings",
            "Convert the array before yielding it",
            f"`{name}` of shape {leaf.shape} and dtype {dtype}",
        ) from err


def _leaf_spec(leaf: Any, name: str, where: _Context) -> tf.TypeSpec:
    """The spec of one leaf of a first batch (batch dimension unknown)."""
    if isinstance(leaf, tf.RaggedTensor):
        spec = tf.RaggedTensorSpec.from_value(leaf)
        return tf.RaggedTensorSpec(
            [None, *spec.shape[1:]], spec.dtype, spec.ragged_rank, spec.row_splits_dtype
        )
    if isinstance(leaf, tf.SparseTensor):
        return tf.SparseTensorSpec([None, *leaf.shape[1:]], leaf.dtype)
    if leaf is None:
        # An absent optional input, as Keras' generator adapter takes it: None in every batch.
        return tf.OptionalSpec(None)
    if not hasattr(leaf, "shape"):
        raise where.error(
            DataMismatchError,
            f"whose `{name}` is {_kind(leaf)}",
            "Every part of a batch is an array (or a structure of arrays) with a first "
            "(sample) dimension",
            "Yield arrays, or leave the part out of every batch",
            f"`{name}`={_kind(leaf)}",
        )
    dtype = _dense_dtype(leaf, name, where)
    if not leaf.shape:
        raise where.error(
            DataMismatchError,
            f"whose `{name}` has no batch dimension (a scalar)",
            "Every array of a batch has a first (sample) dimension",
            "Yield arrays of rank >= 1, e.g. `np.full((rows,), value)`",
            f"`{name}` of shape ()",
        )
    return tf.TensorSpec([None, *leaf.shape[1:]], dtype)


class BatchSpec:
    """What every batch of one input must be: the spec taken from its first batches.

    Args:
        signature: The ``tf.TypeSpec`` structure of one batch.
        caller: The public method being run.
        source: What yields the batches, in words.
    """

    def __init__(self, signature: Any, caller: str, source: str) -> None:
        self.signature = signature
        self.caller = caller
        self.source = source
        self._specs = tf.nest.flatten(signature)
        self._names = leaf_names(signature)
        self._numpy = [
            s.dtype.as_numpy_dtype
            if isinstance(s, tf.TensorSpec) and s.dtype != tf.string
            else None
            for s in self._specs
        ]

    def check(self, batch: Any, index: int, dims: bool = True) -> None:
        """Raises a fitpipe error naming the batch and the leaf when ``batch`` does not fit.

        Args:
            batch: A normalized batch.
            index: The batch's position among those read from the input (from 0).
            dims: Also check the dimensions after the first (False while the first batches
                are still setting them).
        """
        where = _Context(self.caller, self.source, index)
        try:
            tf.nest.assert_same_structure(self.signature, batch)
            leaves = tf.nest.flatten(batch)
        except (ValueError, TypeError):
            raise where.error(
                DataMismatchError,
                "with a structure unlike the first batches",
                f"Every batch has the structure of the first ones: {outline(self.signature)}",
                "Yield those parts, nested and keyed alike, in every batch (a part such as "
                "`sample_weight` is in every batch or in none)",
                outline(batch),
            ) from None
        rows = []
        for position, leaf in enumerate(leaves):
            self._check_leaf(leaf, position, where, dims)
            rows.append(_rows(leaf))
        if len({r for r in rows if r is not None}) > 1:
            self._rows_error(rows, where)

    def _check_leaf(self, leaf: Any, position: int, where: _Context, dims: bool) -> None:
        spec, name = self._specs[position], self._names[position]
        want = self._numpy[position]
        if want is not None and isinstance(leaf, np.ndarray) and leaf.dtype == want:
            dtype = spec.dtype  # the common case, without the slower checks below
        elif leaf is None and isinstance(spec, tf.OptionalSpec):
            return  # absent in every batch, as in the first
        elif _kind(leaf) != _kind(spec):
            raise where.error(
                DataMismatchError,
                f"whose `{name}` is {_kind(leaf)}, unlike the first batches ({_kind(spec)})",
                f"Every batch has the kinds of the first ones: {outline(self.signature)}",
                f"Yield `{name}` as {_kind(spec)} in every batch",
                f"`{name}`={_kind(leaf)}",
            )
        elif isinstance(spec, tf.TensorSpec):
            dtype = _dense_dtype(leaf, name, where)
        else:
            dtype = leaf.dtype
        shape = _shape(leaf)
        if dtype != spec.dtype:
            raise where.error(
                DataMismatchError,
                f"whose `{name}` has dtype {dtype.name}, unlike the first batches "
                f"({spec.dtype.name})",
                "Every batch keeps the dtypes of the first ones: a batch is never cast, as a "
                "cast can change its values (1.5 to 1)",
                f"Yield `{name}` as {spec.dtype.name} in every batch (e.g. "
                f"`.astype('{spec.dtype.name}')`), or as {dtype.name} from the first batch on",
                f"`{name}` of shape {shape} and dtype {dtype.name}",
            )
        _check_shape(spec, shape, name, where, dims)

    def _rows_error(self, rows: list[int | None], where: _Context) -> None:
        counts = ", ".join(f"`{n}`: {r}" for n, r in zip(self._names, rows, strict=True))
        raise where.error(
            DataMismatchError,
            "whose parts hold different numbers of rows",
            "Every array of a batch (x, y and sample_weight) holds one row per sample, so "
            "their first dimensions are equal",
            "Yield x, y and sample_weight of the same length in each batch",
            f"rows {counts}",
        )


def _check_shape(
    spec: tf.TypeSpec, shape: tuple[int | None, ...], name: str, where: _Context, dims: bool
) -> None:
    expected = tuple(spec.shape.as_list())
    if len(shape) != len(expected):
        raise where.error(
            DataMismatchError,
            f"whose `{name}` has rank {len(shape)}, unlike the first batches (rank "
            f"{len(expected)})",
            f"Every batch has the ranks of the first ones: shape {spec.shape} for `{name}` "
            "(None: any size)",
            f"Yield `{name}` with {len(expected)} dimensions in every batch",
            f"`{name}` of shape {shape}",
        )
    if dims and any(e is not None and e != s for e, s in zip(expected, shape, strict=True)):
        raise where.error(
            DataMismatchError,
            f"whose `{name}` has a shape unlike the first batches",
            f"Every batch matches the first ones: expected shape {spec.shape} for `{name}` "
            "(None: any size)",
            "Yield arrays of the same shape (only the batch dimension may change), or pad "
            "variable-length data",
            f"`{name}` of shape {shape}",
        )


def signature_of(batches: list[Any], caller: str, source: str) -> Any:
    """The ``tf.data`` element signature of an input, from its first batches, all checked.

    The structure, kinds, dtypes and ranks are the first batch's; the batch dimension is
    always unknown, the others are kept where all the given batches agree. Each of the given
    batches is checked as any later one is (:meth:`BatchSpec.check`).

    Args:
        batches: One or more normalized batches.
        caller: The public method being run.
        source: What yielded them.

    Returns:
        A structure of ``tf.TypeSpec`` matching the batches.
    """
    first = batches[0]
    names = leaf_names(first)
    where = _Context(caller, source, 0)
    flat = tf.nest.flatten(first)
    specs = [_leaf_spec(leaf, name, where) for leaf, name in zip(flat, names, strict=True)]
    signature = tf.nest.pack_sequence_as(first, specs)
    spec = BatchSpec(signature, caller, source)
    for index, batch in enumerate(batches):
        spec.check(batch, index, dims=False)
    shapes = [[_shape(leaf) for leaf in tf.nest.flatten(b)] for b in batches]
    relaxed = [
        _agreed(s, [found[i] for found in shapes]) if isinstance(s, tf.TensorSpec) else s
        for i, s in enumerate(specs)
    ]
    return tf.nest.pack_sequence_as(first, relaxed)


def _agreed(spec: tf.TensorSpec, shapes: list[tuple[int | None, ...]]) -> tf.TensorSpec:
    dims = [None] + [
        d if all(s[i] == d for s in shapes) else None for i, d in enumerate(shapes[0]) if i > 0
    ]
    return tf.TensorSpec(dims, spec.dtype)
