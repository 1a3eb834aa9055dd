"""Checks the data's structure and shapes against a built model's inputs before training.

Keras finds a mismatch only inside the traced step; fitpipe checks first and names the input,
the shape the model expects and the shape it got.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import keras
import tensorflow as tf

from fitpipe.adapters import (
    ArraySource,
    check_numeric_targets,
    check_numeric_weights,
    complex_error,
    nesting,
)
from fitpipe.errors import DataMismatchError, FitpipeError, FitpipeTypeError, message, raw
from fitpipe.pipeline import Pipeline
from fitpipe.schemas import Mode
from fitpipe.training.absent_inputs import optional_inputs, restore_absent
from fitpipe.training.absent_targets import check_absent_targets, restored_targets, target_layout
from fitpipe.training.check_rules import losses_by_output
from fitpipe.training.input_fixes import count_fix, unknown_fix
from fitpipe.training.nested_inputs import nested_structure, nests_deeper, structured_pairs
from fitpipe.training.ragged_inputs import check_ragged, known_rows
from fitpipe.training.spec_dtypes import check_complex_targets, check_spec_dtypes
from fitpipe.training.weight_shapes import check_weight_shapes, weighted_outputs

__all__ = [
    "check_fit_specs",
    "check_model_inputs",
    "check_model_targets",
    "given_as_x",
    "given_x",
    "input_label",
    "input_pairs",
]


def _model_inputs(model: keras.Model) -> list[Any]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return []
    return list(inputs or [])


def _shape(spec: Any) -> tuple[int | None, ...] | None:
    shape = getattr(spec, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return tuple(tf.TensorShape(shape).as_list())


def _compatible(expected: tuple[int | None, ...], found: tuple[int | None, ...]) -> bool:
    if len(expected) == len(found) + 1 and expected[-1] == 1:
        expected = expected[:-1]
    elif len(found) == len(expected) + 1 and found[-1] == 1:
        found = found[:-1]
    if len(expected) != len(found):
        return False
    return all(
        e is None or f is None or e == f for e, f in zip(expected[1:], found[1:], strict=True)
    )


def _mismatch(
    caller: str,
    what: str,
    expected: str,
    fix: str,
    found: str,
    name: str = "x",
    kind: type[FitpipeError] = DataMismatchError,
) -> FitpipeError:
    return kind(message(caller, what, expected, fix, **{name: raw(found)}))


def _check_names(
    names: list[str], x: Mapping[str, Any], caller: str, optional: frozenset[str], fix: str
) -> None:
    missing = [n for n in names if n not in x and n not in optional]
    unknown = [k for k in x if k not in names]
    if missing or unknown:
        raise _mismatch(
            caller,
            f"got input names that do not match the model (missing {missing}, unknown {unknown})",
            f"The model's inputs are named {names}",
            "Key the dict by the model's input names" + (fix if unknown else ""),
            f"dict with keys {sorted(map(str, x))}",
        )


def given_as_x(pipeline: Pipeline) -> bool:
    """Whether the pipeline's ``x`` is the caller's argument itself (rows, not batches)."""
    return isinstance(pipeline.source, ArraySource)


def given_x(pipeline: Pipeline) -> Any:
    """The values of the pipeline's ``x`` when it is the caller's argument itself; else None."""
    return pipeline.source.x if isinstance(pipeline.source, ArraySource) else None


def check_model_inputs(
    model: keras.Model,
    element_spec: Any,
    caller: str,
    x_given: bool = False,
    x_values: Any = None,
    source: str = "",
) -> None:
    """Raises ``DataMismatchError`` when the batches' ``x`` cannot feed the built model.

    Models that are not built yet (subclassed models before their first call) are not
    checked: their inputs are defined by the data.

    Args:
        model: The model.
        element_spec: The pipeline's element spec ``(x, ...)``.
        caller: The public method being run.
        x_given: Whether ``x`` is the caller's argument (arrays, not a generator's batches).
        x_values: The values of the batches' ``x`` where known (the caller's tensors, see
            :func:`given_x`): ragged ones whose rows have one length are checked as dense.
        source: The adapter that made the batches (``Pipeline.adapter``), for the fixes.

    """
    check_spec_dtypes(element_spec, caller)  # every part: float8 and int4 are no input
    x = known_rows(element_spec[0], x_values)
    pairs = input_pairs(model, element_spec, caller, x_given, x, source)
    _check_pairs(pairs, caller, x_values is not None, not x_given)


def input_pairs(
    model: keras.Model,
    element_spec: Any,
    caller: str,
    x_given: bool = False,
    x: Any = None,
    source: str = "",
) -> list[tuple[Any, Any]]:
    """Each input of the built model with the spec of the batches' ``x`` that feeds it.

    Args:
        model: The model (not built: no pairs).
        element_spec: The pipeline's element spec ``(x, ...)``.
        caller: The public method being run.
        x_given: Whether ``x`` is the caller's argument (for the fixes worded).
        x: The ``x`` spec to pair; ``element_spec[0]`` when None.
        source: The adapter that made the batches, for the fixes.

    Raises:
        DataMismatchError: When ``x``'s names, nesting or count do not match the inputs.
    """
    inputs = _model_inputs(model)
    if not inputs:
        return []
    found = optional_inputs(model)
    keys = list(found.names or {}) or [t.name for t in inputs]  # as a dict `x` names them
    # absent optional inputs back, as None, where `x` nests as the model's inputs
    x = restore_absent(found, element_spec[0] if x is None else x, by_names=False)
    structure = nested_structure(model)
    if structure is not None and nests_deeper(x):
        return structured_pairs(structure, x, caller, unknown_fix(x_given, keys, x, source))
    if isinstance(x, Mapping):
        fix = unknown_fix(x_given, keys, x, source)
        _check_names(keys, x, caller, found.optional_names, fix)
        return [(t, x[key]) for t, key in zip(inputs, keys, strict=True) if key in x]
    flat = tf.nest.flatten(x)
    if len(flat) != len(inputs):
        raise _mismatch(
            caller,
            f"got {len(flat)} input array(s) for a model with {len(inputs)} input(s)",
            f"The model's inputs are {keys}",
            "Pass one array per model input, as a list in that order or a dict by name"
            + count_fix(element_spec, caller, x_given),
            f"{len(flat)} array(s)",
        )
    return list(zip(inputs, flat, strict=True))


def _shape_fix(expected: tuple[Any, ...], found: tuple[Any, ...], batches: bool) -> str:
    """Reshape; or, for an input's own batches one axis short, batch them (unbatched)."""
    if batches and len(found) == len(expected) - 1 and _compatible(expected[1:], found):
        return (
            "The input's elements are single samples, not batches: batch it (e.g. "
            "`dataset.batch(32)`, or the `batch_size` of the utility that made it, as "
            "`keras.utils.image_dataset_from_directory`'s)"
        )
    return "Reshape the data, or rebuild the model's `keras.Input` to match it"


def _check_pairs(
    pairs: list[tuple[Any, Any]], caller: str, known: bool, batches: bool = False
) -> None:
    """Checks each model input against the data paired with it (``batches``: an input's)."""
    for position, (tensor, spec) in enumerate(pairs):
        check_ragged(tensor, spec, input_label(tensor, position), caller, known)
        _check_dtype(tensor, spec, input_label(tensor, position), caller)
        expected, found = tuple(tensor.shape), _shape(spec)
        if found is not None and not _compatible(expected, found):
            name = input_label(tensor, position)
            raise _mismatch(
                caller,
                f"got data of shape {found} for {name}, which does not fit the model",
                f"The model expected shape {expected} for {name} (None: any size)",
                _shape_fix(expected, found, batches),
                f"data of shape {found} received for {name}",
            )


def _check_dtype(tensor: Any, spec: Any, name: str, caller: str) -> None:
    expected = str(getattr(tensor, "dtype", ""))
    dtype = getattr(spec, "dtype", None)
    if dtype is not None and dtype.is_complex and "complex" not in expected:
        # once, on the batches' spec: every form refused, as NumPy arrays are
        got = raw(f"data of dtype {dtype.name} for {name}, which takes {expected or 'reals'}")
        raise complex_error(caller, "x", dtype.name, got)
    if getattr(spec, "dtype", None) == tf.string and expected and expected != "string":
        raise _mismatch(
            caller,
            f"got strings for {name}, which takes numbers",
            f"The model expected {expected} values for {name}",
            "Convert the strings to numbers first, or put a `keras.layers.StringLookup` in "
            "the model",
            f"data of dtype string for {name}",
            kind=FitpipeTypeError,
        )


def _default_step(model: keras.Model, name: str) -> bool:
    return getattr(type(model), name, None) is getattr(keras.Model, name, None)


def _outputs(model: keras.Model) -> list[Any]:
    try:
        return list(model.outputs or [])
    except (AttributeError, ValueError):
        return []


def _target_counts(loss: Any, outputs: int) -> tuple[int, ...]:
    """How many target arrays the compiled loss takes: one per output, or one per loss.

    Keras pairs targets with outputs, or, when ``loss`` is a list or dict with ``None`` for
    some outputs, with the outputs that have a loss.
    """
    if not isinstance(loss, (list, tuple, Mapping)):
        return (outputs,)
    given = sum(1 for one in tf.nest.flatten(loss) if one is not None)
    return (outputs, given) if given != outputs else (outputs,)


def _paired_outputs(
    model: keras.Model, outputs: list[Any], leaves: list[Any]
) -> list[tuple[int, Any]]:
    """The outputs the targets belong to, by position (those with a loss, if fewer targets)."""
    loss = getattr(model, "loss", None)
    if len(leaves) == len(outputs):
        return list(enumerate(outputs))
    if isinstance(loss, (list, tuple)) and len(loss) == len(outputs):
        return [(i, out) for i, (out, one) in enumerate(zip(outputs, loss, strict=True)) if one]
    return []


def check_model_targets(
    model: keras.Model, element_spec: Any, caller: str, mode: Mode, class_weight: Any = None
) -> None:
    """Raises ``DataMismatchError`` when the targets cannot feed the model's compiled loss.

    Only models that use Keras' own train/test step and ``compute_loss`` and have a compiled
    loss are checked (a custom step or loss decides for itself what targets it needs).

    Args:
        model: The model.
        element_spec: The pipeline's element spec ``(x, y, ...)``.
        caller: The public method being run, for messages.
        mode: Training (the model's ``train_step``) or evaluation (its ``test_step``).
        class_weight: The ``class_weight`` the batches' weights were made from, or None.
    """
    step = mode.step
    if not (_default_step(model, step) and _default_step(model, "compute_loss")):
        return
    if getattr(model, "loss", None) is None:
        return
    y = element_spec[1] if len(element_spec) > 1 else None
    if y is None:
        raise DataMismatchError(
            message(
                caller,
                "got no targets `y` for a model compiled with a loss",
                "The loss compares the model's outputs with target values",
                "Pass `y`, or yield `(x, y)` batches",
                y=None,
            )
        )
    y, weights = (*element_spec[1:], None)[:2]
    if isinstance(y, Mapping) or isinstance(weights, Mapping):
        # the targets (and weights) left out before adaptation back, as None, as the step has
        y, weights = restored_targets(target_layout(model), (y, weights))
    _check_target_names(model, y, caller)
    check_absent_targets(model, y, caller)
    leaves = tf.nest.flatten(y)
    check_numeric_targets(y, caller)
    check_numeric_weights(weights, caller)
    check_complex_targets(element_spec, caller)
    _check_weights(y, weights, caller)
    check_weight_shapes(weighted_outputs(model, y, weights), caller, class_weight)
    outputs = _outputs(model)
    if not outputs or isinstance(y, Mapping):
        return
    counts = _target_counts(model.loss, len(outputs))
    if len(leaves) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise _mismatch(
            caller,
            f"got {len(leaves)} target array(s) for a model with {len(outputs)} outputs",
            f"One target array per output, or per output with a loss: {expected}",
            "Pass `y` as a list (or dict by output name) with one array per output",
            f"{len(leaves)} target array(s)",
            "y",
        )
    _check_widths(_paired_outputs(model, outputs, leaves), leaves, caller)


def _check_target_names(model: keras.Model, y: Any, caller: str) -> None:
    """Refuses a flat dict ``y`` with keys that name no model output.

    Keras reads a dict ``y`` by the outputs' names (or the keys of a model's dict of outputs);
    other keys reach its loss as the targets themselves ("Expected float32, but got ... of
    type 'str'").
    """
    names = list(getattr(model, "output_names", None) or [])
    if not isinstance(y, Mapping) or not names:
        return
    if any(isinstance(value, (Mapping, list, tuple)) for value in y.values()):
        return  # nested deeper: the model's own structure decides
    structure = getattr(model, "output", None)
    known = [*names, *(list(structure) if isinstance(structure, Mapping) else [])]
    unknown = [key for key in y if key not in known]
    if len(names) == 1 and not isinstance(structure, Mapping) and not unknown:
        raise _mismatch(
            caller,
            f"got targets `y` as a dict for a model of one output ({names[0]!r})",
            "A model whose output is one tensor (not a dict of outputs) takes its targets as "
            'one array (Keras fails on a dict in the loss: "Expected float32, but got '
            f"{names[0]} of type 'str'\")",
            f"Pass the array itself, `y[{names[0]!r}]`",
            f"dict with keys {sorted(map(str, y))} (of type {type(y).__name__})",
            "y",
        )
    if unknown:
        raise _mismatch(
            caller,
            f"got targets `y` keyed by names of no model output ({sorted(map(str, unknown))})",
            f"A dict `y` is keyed by the model's output names: {names}",
            "Key `y` by the output names, or pass it as a list in the order of the outputs",
            f"dict with keys {sorted(map(str, y))} (of type {type(y).__name__})",
            "y",
        )
    _check_missing_names(model, y, names, caller)


def _check_missing_names(
    model: keras.Model, y: Mapping[Any, Any], names: list[str], caller: str
) -> None:
    """Refuses a flat dict ``y`` by output name without the targets of an output with a loss.

    Keras fails in the traced step ("y_true and y_pred have different structures"); an output
    without a loss (None, or left out of a dict ``loss``) needs no target, as in Keras.
    """
    losses = losses_by_output(model)
    if losses is None or len(losses) != len(names) or not set(y) <= set(names):
        return
    missing = [n for n, loss in zip(names, losses, strict=True) if n not in y and loss is not None]
    if missing:
        shown = ", ".join(repr(n) for n in missing)
        raise _mismatch(
            caller,
            f"got targets `y` without the output(s) {shown}, compiled with a loss",
            f"A dict `y` has the targets of every output with a loss: {names}",
            f"Add the targets of {shown} to `y`, or compile {'them' if len(missing) > 1 else 'it'} "
            f"without a loss to leave {'them' if len(missing) > 1 else 'it'} out (e.g. "
            f"`loss={{{', '.join(f'{n!r}: None' for n in missing)}, ...}}`)",
            f"dict with keys {sorted(map(str, y))} (of type {type(y).__name__})",
            "y",
        )


def _same_layout(y: Any, weights: Any) -> bool:
    """Whether ``weights`` nest as ``y`` does (dicts by the same keys, lists by length)."""
    if isinstance(y, Mapping):
        return (
            isinstance(weights, Mapping)
            and set(y) == set(weights)
            and all(_same_layout(y[key], weights[key]) for key in y)
        )
    if isinstance(y, (list, tuple)):
        return (
            isinstance(weights, (list, tuple))
            and len(weights) == len(y)
            and all(map(_same_layout, y, weights))
        )
    return not isinstance(weights, (Mapping, list, tuple))


def _check_weights(y: Any, weights: Any, caller: str) -> None:
    """Weights for several targets: one array per target, as ``y`` nests, or one per sample.

    As Keras checks arrays (it replicates one array of a weight per sample to every output).
    """
    if weights is None or not tf.nest.is_nested(y) or len(tf.nest.flatten(y)) < 2:
        return
    if tf.nest.is_nested(weights):
        if not _same_layout(y, weights):
            raise _mismatch(
                caller,
                "got `sample_weight` nested unlike the targets `y`",
                f"One weight array per target array, nested as y is ({nesting(y)}), or "
                "one array of a weight per sample for every output",
                "Give every target its weights, by the same keys or in the same order as `y`",
                nesting(weights),
                "sample_weight",
            )
        return
    shape = _shape(weights)
    if shape is not None and (len(shape) > 2 or (len(shape) == 2 and shape[1] != 1)):
        raise _mismatch(
            caller,
            f"got one `sample_weight` array of shape {shape} for {len(tf.nest.flatten(y))} targets",
            "One array given for several outputs holds a weight per sample, of shape (samples,)",
            "Pass one weight array per output (nested as `y`) for weights per time step",
            f"sample_weight of shape {shape}",
            "sample_weight",
        )


def check_fit_specs(model: keras.Model, train: Pipeline, val: Pipeline | None) -> None:
    """Checks the batches of ``fit``'s pipelines against the model's inputs and targets."""
    given = given_as_x(train), given_x(train), train.adapter
    check_model_inputs(model, train.element_spec, "fit", *given)
    plan = train.class_weight
    resolved = None if plan is None else plan.resolved
    check_model_targets(model, train.element_spec, "fit", Mode.TRAIN, resolved)
    if val is not None:
        with about_validation_data():
            check_model_inputs(
                model, val.element_spec, "fit", x_values=given_x(val), source=val.adapter
            )
            check_model_targets(model, val.element_spec, "fit", Mode.EVALUATE)


@contextlib.contextmanager
def about_validation_data() -> Iterator[None]:
    """An error raised inside says that its ``x``, ``y`` and sizes are ``validation_data``'s."""
    try:
        yield
    except FitpipeError as err:
        if err.args and isinstance(err.args[0], str):
            err.args = (f"{err.args[0]} (This is about `validation_data`.)", *err.args[1:])
        raise


def _check_widths(outputs: list[tuple[int, Any]], leaves: list[Any], caller: str) -> None:
    for (position, out), leaf in zip(outputs, leaves, strict=False):
        expected, found = tuple(out.shape), _shape(leaf)
        if found is None or len(found) != len(expected) or found[-1] in (None, 1):
            continue
        if expected[-1] is not None and found[-1] != expected[-1]:
            raise _mismatch(
                caller,
                f"got targets `y` of shape {found} for output {position}",
                f"The model's output {position} has shape {expected}, so its "
                "targets have the same last dimension (or 1, for class indices)",
                "Fix the targets' width, or the model's output layer",
                f"targets of shape {found}",
                "y",
            )


def input_label(tensor: Any, position: int) -> str:
    """A model input in words: ``input 'name'``, or ``input 0`` for Keras' own names."""
    name = str(getattr(tensor, "name", ""))
    if not name or name.startswith("keras_tensor"):
        return f"input {position}"
    return f"input {name!r}"
