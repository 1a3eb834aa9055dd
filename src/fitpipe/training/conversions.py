"""What happens to each batch between the pipeline and the model's step, as in Keras.

Keras hands the model's ``train_step``/``test_step``/``predict_step`` batches in which

* optional inputs (``keras.Input(..., optional=True)``) given as ``None`` are ``None``
  (Keras' generator adapter carries them as empty ``tf.experimental.Optional`` values and its
  trainer turns those back into ``None`` before the step);
* a batch without targets is ``x`` itself (not ``(x,)``) when ``x`` is not a tuple or list
  (``keras.utils.pack_x_y_sample_weight``), so custom steps may call ``self(data)``;
* floating-point arrays are in ``keras.config.floatx()`` (its array adapter casts NumPy,
  tensors and pandas data up front, a whole-array copy; generators, ``tf.data`` and
  ``PyDataset`` pass through unchanged).

fitpipe does the same per batch, inside the compiled step: :func:`prepared_step` wraps the
model's step. Inputs whose optional entries are ``None`` (in a dict, a list or nested) are
stripped of them before adaptation and the entries are put back, as ``None``, in the step
(:mod:`fitpipe.training.absent_inputs`); so are the None targets of outputs that need none
(:mod:`fitpipe.training.absent_targets`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

from fitpipe.errors import FitpipeValueError, message
from fitpipe.pipeline import ResidentRows
from fitpipe.training.absent_inputs import dict_input_names, optional_inputs, restore_absent
from fitpipe.training.absent_targets import restored_targets, target_layout, weights_for_keras

__all__ = [
    "absent_as_none",
    "build_optimizer",
    "cast_for",
    "casts_floats",
    "check_extra",
    "composite_spec",
    "input_key",
    "needs_floatx_cast",
    "prepared_step",
    "present_with_spec",
    "same_spec",
    "without_extra_inputs",
]


def check_extra(extra: Any, caller: str) -> str:
    """Checks ``extra``: ``"error"`` (unknown dict entries are an error) or ``"ignore"``.

    Raises:
        FitpipeValueError: For anything else.
    """
    if isinstance(extra, str) and extra in ("error", "ignore"):
        return extra
    raise FitpipeValueError(
        message(
            caller,
            "got an invalid `extra`",
            '`extra` is "error" (a dict entry that names no model input is an error) or '
            '"ignore" (such entries, e.g. ids or timestamps, are left out)',
            'Pass `extra="ignore"` or leave it out',
            extra=extra,
        )
    )


def without_extra_inputs(model: keras.Model, x: Any, extra: str, keep: Any = None) -> Any:
    """``x`` without the dict entries that name no model input, with ``extra="ignore"``.

    Nothing is left out when ``extra="error"``, when ``x`` is not a dict, or when the model
    is not built (its inputs are defined by the data).

    Args:
        model: The model.
        x: The input.
        extra: ``"error"`` or ``"ignore"``.
        keep: An entry kept whatever its name (the column ``split_by`` names).
    """
    if extra != "ignore" or not isinstance(x, Mapping):
        return x
    names = set(dict_input_names(model) or [])
    if not names:
        return x
    structure = getattr(model, "input", None)
    if isinstance(structure, Mapping):  # nested inputs are kept by the dict's own keys
        names |= {str(key) for key in structure}
    return {key: value for key, value in x.items() if key in names or key == keep}


def absent_as_none(structure: Any) -> Any:
    """``structure`` with empty ``tf.experimental.Optional`` leaves (or their specs) as None.

    Keras' trainer does this before the step; fitpipe does it before its compiled step is
    called, so the step (and XLA) never sees the ``variant`` tensors of Optionals.
    """
    absent = (tf.experimental.Optional, tf.OptionalSpec)
    return tf.nest.map_structure(lambda v: None if isinstance(v, absent) else v, structure)


def present_with_spec(data: Any) -> tuple[Any, Any]:
    """``absent_as_none(data)`` and its ``tf.TypeSpec`` structure, from one pass over the leaves.

    What each ``*_on_batch`` call reads before its step, so the batch is flattened once
    and packed again only when a leaf was absent. Through ``keras.tree`` (optree), whose
    pack took 2 us where ``tf.nest``'s took 17 (its check of TensorFlow's
    ``CustomNestProtocol`` is a ``typing`` protocol ``isinstance`` for every container);
    an eager dense tensor's spec made directly (1.3 us, against ``type_spec_from_value``'s 8).
    """
    flat = keras.tree.flatten(data)
    absent = (tf.experimental.Optional, tf.OptionalSpec)
    if any(isinstance(v, absent) for v in flat):
        flat = [None if isinstance(v, absent) else v for v in flat]
        data = keras.tree.pack_sequence_as(data, flat)
    specs = [_spec(v) for v in flat]
    return data, keras.tree.pack_sequence_as(data, specs)


def _spec(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, tf.Tensor) and tf.executing_eagerly():  # a batch's dense leaf
        return tf.TensorSpec(value.shape, value.dtype)
    return tf.type_spec_from_value(value)


def casts_floats(pipeline: Any) -> bool:
    """Whether Keras would cast this input's floats to floatx: arrays, frames and tables."""
    source = getattr(pipeline, "source", None)
    return getattr(pipeline, "batch_size", None) is not None or bool(
        getattr(source, "converted", False)
    )


def _is_other_float(spec: Any) -> bool:
    dtype = getattr(spec, "dtype", None)
    return (
        isinstance(spec, (tf.TensorSpec, tf.RaggedTensorSpec, tf.SparseTensorSpec))
        and dtype is not None
        and dtype.is_floating
        and dtype.name != keras.config.floatx()
    )


def needs_floatx_cast(element_spec: Any) -> bool:
    """Whether any floating leaf of a batch's spec is not in ``keras.config.floatx()``."""
    return any(_is_other_float(spec) for spec in tf.nest.flatten(element_spec))


def _to_floatx(value: Any) -> Any:
    dtype = getattr(value, "dtype", None)
    if dtype is None or not dtype.is_floating or dtype.name == keras.config.floatx():
        return value
    if isinstance(value, tf.SparseTensor):
        return tf.SparseTensor(
            value.indices, tf.cast(value.values, keras.config.floatx()), value.dense_shape
        )
    return tf.cast(value, keras.config.floatx())


def prepared_step(
    step: Callable[[Any], Any], model: keras.Model, cast_floats: bool
) -> Callable[[Any], Any]:
    """``step`` preceded by Keras' conversions of the batch (see the module docstring).

    Args:
        step: The model's ``train_step``, ``test_step`` or ``predict_step``.
        model: The model (for its optional inputs).
        cast_floats: Cast floating leaves to ``keras.config.floatx()``.

    Returns:
        A function of one batch.
    """
    found, layout = optional_inputs(model), target_layout(model)

    def run(data: Any) -> Any:
        data = absent_as_none(data)
        if cast_floats:
            data = tf.nest.map_structure(_to_floatx, data)
        if not isinstance(data, tuple) or not data:
            return step(data)
        x = restore_absent(found, data[0])  # absent optional inputs back, as None
        if len(data) == 1 and not isinstance(x, (tuple, list)):
            return step(x)  # Keras hands a lone `x` to the step unwrapped
        if len(data) > 1:  # targets (and weights) left out before adaptation back, as None
            data = (x, *weights_for_keras(layout, restored_targets(layout, data[1:])))
        return step((x, *data[1:]))

    run.__wrapped__ = step  # type: ignore[attr-defined]  # (the model's step, for messages)
    return run


def cast_for(batches: Any) -> bool:
    """Whether the step casts floats to floatx: for arrays and tables, as Keras does.

    Keras casts in its array adapter, which only ``fit``, ``evaluate`` and ``predict`` use:
    its ``*_on_batch`` hand the step the batch as given (float64, float16 or bfloat16 rows
    stay so), and so do fitpipe's.

    Args:
        batches: A pipeline, or the spec of one batch given to ``*_on_batch`` (never cast).
    """
    if batches is None or not hasattr(batches, "element_spec"):
        return False
    return casts_floats(batches) and needs_floatx_cast(batches.element_spec)


def ranks_of(batches: Any) -> tuple[int | None, ...] | None:
    """The rank of each leaf of a batch (a pipeline's, or a spec); None without batches."""
    if batches is None:
        return None
    flat = tf.nest.flatten(_batch_spec(batches))
    return tuple(getattr(getattr(s, "shape", None), "rank", None) for s in flat)


def _batch_spec(batches: Any) -> Any:
    """The spec of one batch: a pipeline's ``element_spec``, or ``batches`` (a spec)."""
    return batches.element_spec if hasattr(batches, "element_spec") else batches


def build_optimizer(model: keras.Model) -> None:
    """Builds the optimizer of a built model before its step is traced.

    Variables made while tracing make TensorFlow trace the step a second time; Keras, too,
    builds the optimizer before its first step.

    Not before every layer is built: ``model.build(shape)`` of a subclassed model without a
    ``build`` of its own marks the model built and leaves its layers unbuilt (their
    variables are made when the step is traced, which then builds the optimizer too, as
    Keras' ``fit`` builds such a model before its optimizer). Built before, the optimizer
    knew none of them ("Unknown variable ... can only be called for the variables it was
    originally built with").
    """
    optimizer = getattr(model, "optimizer", None)
    if not isinstance(optimizer, keras.optimizers.Optimizer) or optimizer.built:
        return
    if _all_built(model):
        optimizer.build(model.trainable_variables)


def _all_built(model: keras.Model) -> bool:
    """Whether the model and every layer it holds (models' layers, recursively) are built."""
    seen: set[int] = set()
    stack: list[Any] = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if not getattr(layer, "built", False):
            return False
        stack.extend(getattr(layer, "layers", None) or [])
    return True


def composite_spec(element_spec: Any) -> bool:
    """Whether a batch has sparse or ragged parts (XLA compiles few ops on them)."""
    composite = (tf.SparseTensorSpec, tf.RaggedTensorSpec)
    return any(isinstance(s, composite) for s in tf.nest.flatten(element_spec))


def same_spec(spec: Any, other: Any) -> bool:
    """Whether two batch specs are one (``*_on_batch``: a new, equal spec at every call)."""
    return spec is other or bool(spec == other)


def input_key(element_spec: Any) -> str:
    """The key of a batch's model inputs, whatever the batch size and the targets.

    ``jit_compile="auto"`` decides once per model and key: ``fit``'s batches
    ``(x, y, sample_weight)`` and ``predict``'s ``(x,)`` share the key of their ``x``.
    """
    features = element_spec
    if isinstance(element_spec, tuple) and 1 <= len(element_spec) <= 3:
        features = element_spec[0]
    return repr(ResidentRows.batch_spec(features))
