"""Shared machinery of the adapters whose inputs yield batches from Python code.

Generators and ``PyDataset`` run user Python inside ``tf.data.Dataset.from_generator``. This
module unpacks each yielded element by the documented rule, checks it against the signature
inferred from the first batches, and keeps the user's original exception so the trainer can
re-raise it (with its traceback) instead of TensorFlow's wrapped copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters.arrays import is_tf_value
from fitpipe.errors import DataMismatchError, FitpipeTypeError, FitpipeValueError, message
from fitpipe.schemas import pack_roles, reject_namedtuple, split_roles

__all__ = [
    "GROUP",
    "ErrorBox",
    "crossing",
    "normalize_batch",
    "python_batch_dataset",
    "same_shapes",
    "signature_of",
    "stack",
    "stackable",
    "tuplify",
]


class ErrorBox:
    """Holds the first exception raised by user code inside a ``tf.data`` pipeline."""

    def __init__(self) -> None:
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def put(self, error: BaseException) -> None:
        """Keeps ``error`` unless one is already kept."""
        with self._lock:
            if self._error is None:
                self._error = error

    def take(self) -> BaseException | None:
        """Returns and forgets the kept exception."""
        with self._lock:
            error, self._error = self._error, None
            return error


def tuplify(value: Any) -> Any:
    """Lists become tuples, recursively (``tf.data`` stacks lists but keeps tuples)."""
    if isinstance(value, dict):
        return {k: tuplify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(tuplify(v) for v in value)
    return value


def _to_array(value: Any) -> Any:
    if value is None or is_tf_value(value):
        return value
    array = np.asarray(value)
    if array.dtype.kind == "O" and array.size and all(isinstance(v, str) for v in array.ravel()):
        array = array.astype(str)
    return array


def normalize_batch(element: Any, caller: str, source: str) -> tuple[Any, ...]:
    """Unpacks one yielded element into the Keras batch tuple, leaves as arrays or tensors.

    Args:
        element: What the input yielded.
        caller: The public method being run.
        source: What yielded it, for error messages.

    Returns:
        ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.

    """
    reject_namedtuple(element, caller, source)
    x, y, sample_weight = split_roles(element)
    if x is None:
        raise FitpipeValueError(
            message(
                caller,
                f"got a batch without inputs from the {source}",
                "The first element of each batch is `x`",
                "Yield `(x,)`, `(x, y)` or `(x, y, sample_weight)`",
                element=element,
            )
        )
    parts = [tf.nest.map_structure(_to_array, tuplify(p)) for p in (x, y, sample_weight)]
    return pack_roles(*parts)


def _leaf_spec(leaves: list[Any], caller: str) -> tf.TypeSpec:
    first = leaves[0]
    if first is None and all(leaf is None for leaf in leaves):
        return tf.OptionalSpec(None)  # an absent optional input (as Keras' generator adapter)
    if isinstance(first, tf.RaggedTensor):
        spec = tf.RaggedTensorSpec.from_value(first)
        return tf.RaggedTensorSpec(
            [None, *spec.shape[1:]], spec.dtype, spec.ragged_rank, spec.row_splits_dtype
        )
    if isinstance(first, tf.SparseTensor):
        return tf.SparseTensorSpec([None, *first.shape[1:]], first.dtype)
    shapes = [tuple(np.shape(leaf)) for leaf in leaves]
    if any(len(s) != len(shapes[0]) for s in shapes) or not shapes[0]:
        raise FitpipeValueError(
            message(
                caller,
                "got batches whose arrays have different ranks or no batch dimension",
                "Every batch has the same structure, with arrays of rank >= 1",
                "Yield arrays with a first (sample) dimension in every batch",
                shapes=shapes,
            )
        )
    dims = [None] + [
        d if all(s[i] == d for s in shapes) else None for i, d in enumerate(shapes[0]) if i > 0
    ]
    dtype = tf.as_dtype(first.dtype) if is_tf_value(first) else _np_dtype(first, caller)
    return tf.TensorSpec(dims, dtype)


def _np_dtype(array: np.ndarray, caller: str) -> tf.DType:
    if array.dtype.kind in "US":
        return tf.string
    try:
        return tf.as_dtype(array.dtype)
    except TypeError as err:
        raise FitpipeTypeError(
            message(
                caller,
                f"got a batch array of unusable dtype {array.dtype}",
                "Batch arrays hold numbers, booleans or strings",
                "Convert the arrays before yielding them",
                array=array,
            )
        ) from err


def signature_of(batches: list[tuple[Any, ...]], caller: str, source: str) -> Any:
    """Infers the ``tf.data`` element signature from peeked batches.

    The batch dimension is always unknown; other dimensions are kept where all peeked
    batches agree.

    Args:
        batches: One or more normalized batches.
        caller: The public method being run.
        source: What yielded them.

    Returns:
        A structure of ``tf.TypeSpec`` matching the batches.

    """
    first = batches[0]
    for other in batches[1:]:
        try:
            tf.nest.assert_same_structure(first, other)
        except (ValueError, TypeError) as err:
            raise DataMismatchError(
                message(
                    caller,
                    f"got batches of different structures from the {source}",
                    "Every batch has the same nesting of tuples, lists and dicts",
                    "Yield the same structure every time",
                    first=first,
                    later=other,
                )
            ) from err
    flat = [tf.nest.flatten(b) for b in batches]
    specs = [_leaf_spec([f[i] for f in flat], caller) for i in range(len(flat[0]))]
    return tf.nest.pack_sequence_as(first, specs)


def check_batch(batch: Any, signature: Any, index: int, caller: str, source: str) -> None:
    """Raises a clear error when a batch does not fit the inferred signature.

    Args:
        batch: A normalized batch.
        signature: The signature from :func:`signature_of`.
        index: The batch's position in the epoch, for the message.
        caller: The public method being run.
        source: What yielded it.

    """
    try:
        tf.nest.assert_same_structure(signature, batch)
        mismatched = [
            (spec, leaf)
            for spec, leaf in zip(tf.nest.flatten(signature), tf.nest.flatten(batch), strict=True)
            if isinstance(spec, tf.TensorSpec) and not spec.shape.is_compatible_with(np.shape(leaf))
        ]
    except (ValueError, TypeError):
        mismatched = [(signature, batch)]
    if mismatched:
        spec, leaf = mismatched[0]
        expected = spec.shape if isinstance(spec, tf.TensorSpec) else spec
        found = np.shape(leaf) if isinstance(spec, tf.TensorSpec) else leaf
        raise DataMismatchError(
            message(
                caller,
                f"got batch {index} from the {source} with a shape unlike the first batches",
                f"Every batch matches the first ones: expected shape {expected}",
                "Yield arrays of the same shape (only the batch dimension may change), or pad "
                "variable-length data",
                received_shape=found,
            )
        )


#: Most batches handed from Python to ``tf.data`` in one crossing (see :func:`crossing`).
GROUP = 16


def stackable(signature: Any) -> bool:
    """Whether batches of ``signature`` can be stacked into groups (dense tensors only)."""
    return all(isinstance(spec, tf.TensorSpec) for spec in tf.nest.flatten(signature))


def same_shapes(a: Any, b: Any) -> bool:
    """Whether two batches of one structure have the same shape in every leaf."""
    return all(
        np.shape(x) == np.shape(y)
        for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True)
    )


def stack(group: list[Any]) -> Any:
    """Batches of equal shapes stacked into one element with a leading group axis."""
    return tf.nest.map_structure(lambda *leaves: np.stack(leaves), *group)


def crossing(generate: Callable[[], Iterator[Any]], signature: Any, grouped: bool) -> Any:
    """The ``tf.data.Dataset`` of batches that ``generate`` yields from Python.

    Crossing from Python into ``tf.data`` costs about as much for a group of batches as for
    one, so with ``grouped`` ``generate`` yields :func:`stack`-ed groups, split again here.
    """
    if not grouped:
        if any(isinstance(s, tf.OptionalSpec) for s in tf.nest.flatten(signature)):
            generate = _with_absent(generate)
        return tf.data.Dataset.from_generator(generate, output_signature=signature)
    spec = tf.nest.map_structure(lambda s: tf.TensorSpec([None, *s.shape], s.dtype), signature)
    return tf.data.Dataset.from_generator(generate, output_signature=spec).unbatch()


def _with_absent(generate: Callable[[], Iterator[Any]]) -> Callable[[], Iterator[Any]]:
    """``generate`` with ``None`` leaves (absent optional inputs) as empty Optionals."""

    def absent(leaf: Any) -> Any:
        return tf.experimental.Optional.empty(None) if leaf is None else leaf

    return lambda: (tf.nest.map_structure(absent, batch) for batch in generate())


def python_batch_dataset(
    epoch: Callable[[], Iterable[Any]],
    signature: Any,
    errors: ErrorBox,
    caller: str,
    source: str,
) -> tf.data.Dataset:
    """Builds a dataset whose every iteration runs ``epoch()`` and yields its batches.

    Batches cross one at a time: inputs read by index (``PyDataset``) measured slower with
    groups (their workers already overlap with the crossing).

    Args:
        epoch: Returns an iterable of raw elements for one pass.
        signature: The element signature.
        errors: Receives any exception the user code raises.
        caller: The public method being run.
        source: What yields the batches.

    Returns:
        The dataset.

    """

    def generate() -> Iterator[Any]:
        try:
            for index, element in enumerate(epoch()):
                batch = normalize_batch(element, caller, source)
                check_batch(batch, signature, index, caller, source)
                yield batch
        except Exception as err:
            errors.put(err)
            raise

    return crossing(generate, signature, grouped=False)
