"""Shared machinery of the adapters whose inputs yield batches from Python code.

Generators and ``PyDataset`` run user Python inside ``tf.data.Dataset.from_generator``. This
module unpacks each yielded element by the documented rule, checks it against the spec taken
from the first batches (:mod:`fitpipe.adapters.batch_checks`), and keeps the user's original
exception so the trainer can re-raise it (with its traceback) instead of TensorFlow's wrapped
copy: ``KeyboardInterrupt`` and ``SystemExit`` included.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.adapters.arrays import is_tf_value
from fitpipe.adapters.batch_checks import BatchSpec, signature_of
from fitpipe.adapters.sparse import is_sparse_array, to_sparse_tensor
from fitpipe.errors import DataMismatchError, FitpipeValueError, message
from fitpipe.schemas import pack_roles, reject_namedtuple, split_roles

#: Marks graph code that needs no autograph (tf.data would transpile it from source): the one
#: home of this alias, used by the adapters and the pipeline (``fitpipe.adapters.no_autograph``).
no_autograph = tf.autograph.experimental.do_not_convert

__all__ = [
    "GROUP",
    "BatchSpec",
    "Check",
    "ErrorBox",
    "crossing",
    "keeping_errors",
    "no_autograph",
    "normalize_batch",
    "peek_batches",
    "read_when_asked",
    "reporting",
    "same_shapes",
    "signature_of",
    "stack",
    "stackable",
    "tuplify",
]

#: Batches a generator's source reads first, for their signature (:func:`peek_batches`).
PEEK = 2

#: The trainer's value check of one batch: ``check(index, batch)`` (see ``Checkable``).
Check = Callable[[int, tuple[Any, ...]], None]


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


@contextlib.contextmanager
def keeping_errors(errors: ErrorBox) -> Iterator[None]:
    """Keeps any exception the user's code raises in the block for the trainer to re-raise.

    ``tf.data`` reports an exception from Python code as its own error; the trainer then
    raises the kept original. Exceptions that are not an ``Exception`` (``KeyboardInterrupt``,
    ``SystemExit``) cross as a ``RuntimeError``, so that ``tf.data`` ends the iteration as
    for any error, and reach the caller as themselves. ``GeneratorExit`` (a dropped
    iterator) passes.
    """
    try:
        yield
    except GeneratorExit:
        raise
    except Exception as err:
        errors.put(err)
        raise
    except BaseException as err:
        errors.put(err)
        raise RuntimeError(f"{type(err).__name__} raised while producing a batch") from None


def reporting(items: Iterator[Any], errors: ErrorBox) -> Iterator[Any]:
    """``items``, keeping any error they raise in ``errors`` (re-raised as it is).

    For items read on a thread the trainer takes them from (blocks): the trainer re-raises
    the kept original, not an error of its own about the failed step.
    """
    try:
        yield from items
    except Exception as err:
        errors.put(err)
        raise


def tuplify(value: Any) -> Any:
    """Lists become tuples, recursively (``tf.data`` stacks lists but keeps tuples)."""
    if isinstance(value, dict):
        return {k: tuplify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(tuplify(v) for v in value)
    return value


def _to_array(value: Any, caller: str, role: str) -> Any:
    if value is None or is_tf_value(value):
        return value
    if is_sparse_array(value):  # SciPy sparse, JAX BCOO: a tf.SparseTensor, never densified
        return to_sparse_tensor(value, caller, role)
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
    parts = [
        tf.nest.map_structure(lambda leaf, role=role: _to_array(leaf, caller, role), tuplify(p))
        for role, p in zip(("x", "y", "sample_weight"), (x, y, sample_weight), strict=True)
    ]
    return pack_roles(*parts)


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
    They are split by ``from_tensor_slices``, not ``unbatch``: TensorFlow's ``unbatch``
    crashes the process (SIGSEGV) on an element holding no values, such as a batch of 0 rows.
    """
    if not grouped:
        if any(isinstance(s, tf.OptionalSpec) for s in tf.nest.flatten(signature)):
            generate = _with_absent(generate)
        return tf.data.Dataset.from_generator(generate, output_signature=signature)
    spec = tf.nest.map_structure(lambda s: tf.TensorSpec([None, *s.shape], s.dtype), signature)
    groups = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return groups.flat_map(no_autograph(lambda *group: tf.data.Dataset.from_tensor_slices(group)))


def read_when_asked(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with ``tf.data``'s own read-ahead off, for inputs read once.

    ``tf.data`` may inject a prefetch and run a plain ``map`` (class weights) in parallel:
    both take batches before they are asked for, which a generator's dropped iterator loses.
    """
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    options.experimental_optimization.map_parallelization = False
    return dataset.with_options(options)


def _with_absent(generate: Callable[[], Iterator[Any]]) -> Callable[[], Iterator[Any]]:
    """``generate`` with ``None`` leaves (absent optional inputs) as empty Optionals."""

    def absent(leaf: Any) -> Any:
        return tf.experimental.Optional.empty(None) if leaf is None else leaf

    return lambda: (tf.nest.map_structure(absent, batch) for batch in generate())


def peek_batches(
    iterator: Iterator[Any], x: Any, caller: str, source: str, steps: int | None
) -> list[tuple[Any, ...]]:
    """Reads the first batches (up to ``PEEK``, never more than ``steps``), normalized.

    Args:
        iterator: Yields batches in any documented form.
        x: The user's input, for messages.
        caller: The public method being run.
        source: What yields the batches, in words.
        steps: Batches per epoch the caller asked for, if any.

    Returns:
        The batches read, at least one.

    Raises:
        DataMismatchError: When the iterator yields nothing.
    """
    peeked = []
    for _ in range(min(PEEK, steps or PEEK)):
        try:
            peeked.append(normalize_batch(next(iterator), caller, source))
        except StopIteration:
            break
    if not peeked:
        raise DataMismatchError(
            message(
                caller,
                f"got a {source} that yields nothing",
                f"A {source} input yields at least one batch",
                "Check that it was not already consumed",
                x=x,
            )
        )
    return peeked
