"""What a failure of the model's step on the input's batches becomes: fitpipe's words or itself.

Shapes, dtypes or structures of the data that do not fit the model surface from Keras or
TensorFlow while the step is traced (``ValueError``, ``TypeError``) or run (TensorFlow's
``InvalidArgumentError``, ``UnimplementedError`` of the model's ops): :func:`step_error`
words them as a data mismatch, naming the call and the batches. Every other TensorFlow error
is no mismatch and comes back as the error Keras raises, of its own type: the input's own
failures (a missing or corrupt file, an assertion or a Python error in a ``tf.data`` map, any
error the iterator raised), a Python function's error in the step, and TensorFlow's other
error types (``NotFoundError``, ``DataLossError``, ``UnknownError``, ``ResourceExhaustedError``
with a note of what to lower, ...).
"""

from __future__ import annotations

import os
import re
import sysconfig
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitpipe.errors import DataMismatchError, FitpipeTypeError, message, raw

__all__ = ["SPARSE_TARGETS", "spec_text", "step_error", "trace_note"]

#: TensorFlow's errors of a model's op given data that does not fit it (a shape, a dtype).
_MISMATCHES = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)
#: Where an error was raised by the input's iterator (its ``tf.data`` functions included), by
#: a Python function (``tf.py_function``), an assertion or a numerics check (in a graph's
#: node or an eager op): never the data against the model.
_NOT_THE_MODEL = re.compile(
    r"\[\[(?:\{\{node )?(?:MultiDevice)?Iterator\w*(?:\}\})?\]\]"
    r"|__wrapped__(?:MultiDevice)?Iterator\w*"
    r"|Detected at node '?(?:MultiDevice)?Iterator\w*"
    r"|(?:\{\{node (?:[^}]*/)?|\[Op:)"
    r"(?:Assert|CheckNumerics(?:V2)?|EagerPyFunc|PyFunc\w*)(?:\}\}|\])"
)
#: Where the libraries live whose errors may say the data does not fit the model; a Python
#: error raised from code elsewhere (the user's layer, loss or metric) is the user's own.
_LIBRARIES = tuple(
    os.path.join(folder, "")  # (a separator last: keras/ is not keras_cv/)
    for folder in (
        *(os.path.dirname(os.path.abspath(m.__file__ or "")) for m in (tf, keras, np)),
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # fitpipe
        sysconfig.get_paths()["stdlib"],
    )
)


def _mismatch(err: BaseException) -> bool:
    """Whether ``err`` says the data does not fit the model (see the module docstring)."""
    if not isinstance(err, tf.errors.OpError):
        return isinstance(err, (ValueError, TypeError)) and not _users_own(err)
    if not isinstance(err, _MISMATCHES):
        return False
    return _NOT_THE_MODEL.search(str(getattr(err, "message", None) or err)) is None


def _users_own(err: BaseException) -> bool:
    """Whether user code raised ``err``: a class of its own, or raised from its own code.

    A model that validates its data (``raise MyDataError(...)`` in a layer run eagerly) gets
    its error back, as Keras gives it, where ``except MyDataError`` catches it.
    """
    module = type(err).__module__.split(".", 1)[0]
    if module not in ("builtins", "keras", "tensorflow", "numpy", "fitpipe"):
        return True
    frame, tb = None, err.__traceback__
    while tb is not None:  # the innermost frame: where it was raised
        frame, tb = tb.tb_frame, tb.tb_next
    if frame is None:
        return False
    path = os.path.abspath(frame.f_code.co_filename)
    return not path.startswith(_LIBRARIES) and not path.startswith("<")


def _leaf_text(spec: Any) -> str:
    dtype, shape = getattr(spec, "dtype", None), getattr(spec, "shape", None)
    if dtype is None or shape is None or shape.rank is None:
        return "None" if spec is None else type(spec).__name__
    kind = {tf.SparseTensorSpec: "sparse ", tf.RaggedTensorSpec: "ragged "}.get(type(spec), "")
    return f"{kind}{dtype.name}{tuple(shape)}"


def spec_text(element_spec: Any) -> str:
    """A batch's spec in words: ``x=float32(None, 4), y=...``."""
    if not isinstance(element_spec, tuple):
        return str(tf.nest.map_structure(_leaf_text, element_spec))
    names = ("x", "y", "sample_weight")
    parts = []
    for name, part in zip(names, element_spec, strict=False):
        parts.append(f"{name}={tf.nest.map_structure(_leaf_text, part)}")
    return ", ".join(parts)


#: The fix noted on an error of a step traced for sparse targets. Not refused: Keras' `Huber`
#: and `MeanSquaredLogarithmicError` take them (Keras 3.15), as may a loss of the user's.
SPARSE_TARGETS = (
    "The targets `y` are sparse: of Keras' losses only `Huber` and "
    "`MeanSquaredLogarithmicError` take them (a loss of your own may). For another, pass "
    "them dense: `y.toarray()` (SciPy), `tf.sparse.to_dense(y)` (TensorFlow)."
)


def trace_note(caller: str, element_spec: Any) -> str:
    """The note on an error the model's step raised while traced for ``element_spec``.

    Where it was raised, and for sparse targets, how to make them dense (:data:`SPARSE_TARGETS`).
    """
    where = f"`{caller}` traced it for batches {spec_text(element_spec)}"
    note = f"(raised by the model's step while fitpipe's {where})"
    targets = element_spec[1] if isinstance(element_spec, tuple) and len(element_spec) > 1 else None
    if any(isinstance(s, tf.SparseTensorSpec) for s in tf.nest.flatten(targets)):
        note += f" {SPARSE_TARGETS}"
    return note


_NOISE = (
    "File ",
    "[[",
    "Detected at node",
    "Graph execution error",
    "in user code",
    "The op is created at",
    "Stack trace",
    "*",
    "return ",
    "raise ",
)


def _reason(err: BaseException) -> str:
    """The line of a Keras/TensorFlow error that says what was wrong (not where)."""
    lines = [ln.strip() for ln in str(getattr(err, "message", None) or err).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    text = useful[-1] if useful else " ".join(lines)
    return text if len(text) <= 400 else text[:397] + "..."


def step_error(
    err: BaseException, caller: str, element_spec: Any, device_bytes: int = 0, step: Any = None
) -> BaseException:
    """Words a failure of the model's step on the input's batches as a fitpipe error.

    Shapes, dtypes or structures that do not fit the model's inputs, outputs or loss surface
    from Keras or TensorFlow while the step is traced or run; this says which call failed,
    what the batches were and what they must match, and keeps the original as the cause.
    Other errors (the input's, TensorFlow's of other types: the module docstring) are no
    mismatch: they come back themselves, as Keras raises them. Running out of memory is one:
    TensorFlow's ``ResourceExhaustedError`` comes back with a note (Python 3.11+) of what to
    lower.

    Args:
        err: What Keras or TensorFlow raised.
        caller: The public method being run.
        element_spec: The batches' spec.
        device_bytes: Bytes of the input's rows copied to the step's accelerator for the
            call (``fitpipe.pipeline.device_rows``), named in that note.
        step: The model's step method (``model.train_step``, or a function wrapping it as
            ``__wrapped__``): a model whose inputs take
            batches of a fixed size (``keras.Input(batch_shape=...)``, a stateful RNN's)
            gets that size named in the fix.

    Returns:
        A ``FitpipeTypeError`` (for a ``TypeError``), a ``DataMismatchError``, or ``err``
        (no mismatch; out of memory noted).
    """
    if isinstance(err, tf.errors.ResourceExhaustedError):
        return _out_of_memory(err, caller, device_bytes)
    if not _mismatch(err):
        return err
    text = _reason(err)
    kind = FitpipeTypeError if isinstance(err, TypeError) else DataMismatchError
    failure = kind(
        message(
            caller,
            f"could not run the model on the input's batches ({type(err).__name__}: {text})",
            "Each batch's inputs, targets and weights must fit the model's inputs, outputs "
            "and loss in structure, shape and dtype",
            _fixed_batch_fix(getattr(getattr(step, "__wrapped__", step), "__self__", None))
            or "Compare the batches with `model.summary()` and the loss, and convert or "
            "reshape the data",
            batches=raw(spec_text(element_spec)),
        )
    )
    failure.__cause__ = err
    return failure


def _fixed_batch_fix(model: Any) -> str | None:
    """The fix for a model whose inputs take batches of a fixed size; None for any other."""
    sizes = set()
    for tensor in getattr(model, "inputs", None) or []:
        shape = getattr(tensor, "shape", None)
        sizes.add(shape[0] if shape else None)
    if len(sizes) != 1 or None in sizes:
        return None
    size = sizes.pop()
    return (
        f"The model takes batches of exactly {size} rows (its inputs' batch size, as "
        f"`keras.Input(batch_shape=({size}, ...))` or a stateful layer sets it): pass "
        f"`batch_size={size}`, with a number of rows divisible by {size} (or `steps` that "
        "stop before a shorter last batch)"
    )


def _out_of_memory(err: BaseException, caller: str, device_bytes: int) -> BaseException:
    """TensorFlow's out-of-memory error, with a note of what fitpipe put on the device."""
    fix = "Lower `batch_size`, or the model's size"
    if device_bytes:
        fix = (
            f"fitpipe copied {device_bytes / 2**30:.2f} GiB of the input's rows to the device "
            "for this call: set `fitpipe.limits.DEVICE_ROWS_BYTES` below that (0 keeps rows "
            f"on the host), or {fix[0].lower()}{fix[1:]}"
        )
    if hasattr(err, "add_note"):  # Python 3.11+
        err.add_note(f"`{caller}` ran out of memory while running the model's step. {fix}.")
    return err
