"""Which ``sample_weight`` shapes the compiled loss takes: Keras' rule, checked before a step.

Keras weighs the values a loss function returns (``(batch,)`` for a mean squared error over
``(batch, 1)`` targets, ``(batch, steps)`` over sequences) by the weights
(``keras.src.losses.loss.reduce_weighted_values``): where their ranks differ by one and the
longer shape ends in 1, that 1 is squeezed (or, when the shorter is 1-D, a 1 is added to it),
then the two are multiplied, broadcasting. So weights ``(samples, 1)`` over per-sample values,
and ``(samples, steps, 1)`` or ``(samples, 1)`` over per-step values, train as in Keras.
Any other shape either makes Keras fail in the step ("Dimensions must be equal") or
broadcasts silently along the wrong axes: ``(samples, 1, 1)`` over per-sample values makes a
``(samples, 1, samples)`` product, and ``(samples,)`` over ``(samples, steps)`` values
weighs the steps when ``steps`` equals the batch size. fitpipe refuses both before the first
step, as Keras' docs give the shapes: ``(samples,)``, or ``(samples, sequence_length)`` for
temporal data (README, departures). Sparse weights, which Keras' loss fails on whatever
the loss, are refused too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from fitpipe.errors import DataMismatchError, message, raw
from fitpipe.training.check_rules import losses_by_output, target_leaves

__all__ = ["check_weight_shapes", "loss_values_shape", "weighted_outputs", "weights_fit"]

Shape = tuple[int | None, ...]


def weights_fit(weights: Shape, values: Shape) -> bool:
    """Whether Keras weighs loss values of shape ``values`` one to one by ``weights``.

    Keras' ``squeeze_or_expand_to_same_rank(values, weights)``, then a broadcast that leaves
    the values' shape as it is: every weight dimension is 1 or the values' own (unknown
    dimensions pass).

    Args:
        weights: The weights' shape (a batch's, or with ``None`` for unknown sizes).
        values: The shape of the values the loss function returns.

    Returns:
        True where Keras multiplies each loss value by its own weight.
    """
    w, v = list(weights), list(values)
    if len(v) == len(w) + 1 and v[-1] == 1:
        if len(w) == 1:
            w.append(1)
        else:
            v.pop()
    elif len(w) == len(v) + 1 and w[-1] == 1:
        if len(v) == 1:
            v.append(1)
        else:
            w.pop()
    if len(w) != len(v):
        return False
    return all(a is None or b is None or a in (1, b) for a, b in zip(w, v, strict=True))


def loss_values_shape(loss: Any, target: Shape, output: Shape, dtype: str) -> Shape | None:
    """The shape of the values ``loss`` returns for targets and predictions of these shapes.

    Traced once per loss and shapes (a trace costs 3-20 ms, which every ``fit`` with
    weights would pay again): later calls are answered from a small cache.

    Args:
        loss: A loss as ``compile`` takes it (a name, a ``keras.losses.Loss`` or a function).
        target: The targets' shape.
        output: The model output's shape.
        dtype: The model output's dtype (Keras casts targets to the loss' dtype too).

    Returns:
        The shape, or None where it is unknown (the loss cannot be traced on its own, or
        returns a scalar).
    """
    try:
        return _traced_shape(loss, target, output, dtype)
    except TypeError:  # an unhashable loss: traced every time
        return _traced_shape.__wrapped__(loss, target, output, dtype)


@functools.lru_cache(maxsize=64)
def _traced_shape(loss: Any, target: Shape, output: Shape, dtype: str) -> Shape | None:
    try:
        found = keras.losses.get(loss) if isinstance(loss, str) else loss
        call: Callable[..., Any] = found.call if isinstance(found, keras.losses.Loss) else found
        traced = tf.function(call, autograph=False).get_concrete_function(
            tf.TensorSpec(target, dtype), tf.TensorSpec(output, dtype)
        )
        shape = traced.structured_outputs.shape
    except Exception:  # a loss fitpipe cannot trace alone: the step decides
        return None
    if shape.rank is None or shape.rank == 0:
        return None
    return tuple(shape.as_list())


def _rows(shape: list[int | None]) -> Shape:
    """``shape`` with its first (batch) dimension unknown."""
    return (None, *shape[1:]) if shape else ()


def weighted_outputs(model: keras.Model, y_spec: Any, w_spec: Any) -> list[tuple[Any, ...]]:
    """``(loss, target spec, model output, weight spec)`` for each target leaf with weights.

    One weight leaf for several targets is each target's (Keras replicates it); none where
    the model's outputs, losses, targets or weights do not line up (other checks say so).
    """
    losses, owners = losses_by_output(model), target_leaves(y_spec, model)
    if w_spec is None or losses is None or owners is None:
        return []
    targets, weights = tf.nest.flatten(y_spec), tf.nest.flatten(w_spec)
    if len(weights) == 1:
        weights = weights * len(targets)
    if len(weights) != len(targets):
        return []
    return [
        (losses[owner], target, model.outputs[owner], weight)
        for owner, target, weight in zip(owners, targets, weights, strict=True)
    ]


def check_weight_shapes(
    pairs: list[tuple[Any, Any, Any, Any]], caller: str, class_weight: Any = None
) -> None:
    """Raises ``DataMismatchError`` for weights Keras' loss cannot weigh one to one.

    Args:
        pairs: ``(loss, target spec, model output, weight spec)`` for each weighted output.
        caller: The public method being run.
        class_weight: The ``class_weight`` the weights were made from (with any
            ``sample_weight`` multiplied in), or None: the message is then about it.
    """
    for loss, target, output, weight in pairs:
        if loss is not None and isinstance(weight, tf.SparseTensorSpec):
            raise _sparse_weights(caller, weight)
        found = [getattr(spec, "shape", None) for spec in (target, output, weight)]
        if loss is None or any(s is None for s in found):
            continue
        shapes = [tf.TensorShape(s) for s in found]
        if any(s.rank is None for s in shapes):
            continue
        # per row: a batch's size (``*_on_batch``) is any batch's, as in a pipeline's spec
        target_shape, output_shape, weight_shape = (_rows(s.as_list()) for s in shapes)
        dtype = getattr(output, "dtype", "float32")
        values = loss_values_shape(loss, target_shape, output_shape, str(dtype))
        if values is None or weights_fit(weight_shape, values):
            continue
        y = raw(f"targets of shape {target_shape}, model output of shape {output_shape}")
        if class_weight is not None:
            raise _class_weight_mismatch(caller, class_weight, weight_shape, values, y)
        raise DataMismatchError(
            message(
                caller,
                f"got `sample_weight` of shape {weight_shape} for loss values of shape {values}",
                "The loss weighs each of its values by one weight: weights are "
                "`(samples,)` (or `(samples, 1)`) for a value per sample, and `(samples, "
                "sequence_length)` (or with a trailing 1) for a value per time step; Keras "
                "fails on other shapes or broadcasts them along the wrong axes",
                "Reshape the weights to one per loss value",
                sample_weight=raw(f"weights of shape {weight_shape}"),
                y=y,
            )
        )


def _sparse_weights(caller: str, weight: tf.SparseTensorSpec) -> DataMismatchError:
    """The error for sparse weights of an output with a loss: Keras' loss fails on any.

    (Its ``reduce_weighted_values`` multiplies them into the loss values, and a sparse
    product cannot be converted back: "Failed to convert elements of SparseTensor".)
    """
    shape = tuple(tf.TensorShape(weight.shape).as_list())
    return DataMismatchError(
        message(
            caller,
            "got sparse `sample_weight` (a SciPy sparse matrix or `tf.SparseTensor`)",
            "The loss weighs its values by dense weights, one per value; Keras' loss fails "
            "on sparse ones",
            "Pass the weights dense: `sample_weight.toarray()` (SciPy), "
            "`tf.sparse.to_dense(sample_weight)` (TensorFlow)",
            sample_weight=raw(f"sparse weights of shape {shape}"),
        )
    )


def _class_weight_mismatch(
    caller: str, class_weight: Any, weights: Shape, values: Shape, y: Any
) -> DataMismatchError:
    """The error for class weights (one per sample) the loss's values cannot take."""
    return DataMismatchError(
        message(
            caller,
            f"cannot weigh the loss values of shape {values} by `class_weight`, which gives "
            f"weights of shape {weights}",
            "`class_weight` weighs each sample by the class of its one label (sparse labels "
            "of shape `(samples,)` or `(samples, 1)`, or one-hot rows), so it cannot weigh "
            "per-token (temporal) labels, which make a loss value per time step",
            "Drop `class_weight` and pass per-token weights as `sample_weight` of shape "
            "`(samples, sequence_length)` instead, e.g. each label's class weight: "
            "`sample_weight=np.take(weights_by_class, y)`",
            class_weight=class_weight,
            y=y,
        )
    )
