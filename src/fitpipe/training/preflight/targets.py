"""What the compiled model asks of each target: its loss, output width and activation.

The loss of each output and the pairing of target leaves with outputs are the ones the batch
checks use (:mod:`fitpipe.training.batch_checks`); this module only names the kind of loss:

* ``"sparse"``: class indices in ``[0, units)`` (``sparse_categorical_crossentropy``);
* ``"categorical"``: rows of ``units`` class probabilities that sum to 1;
* ``"binary"``: values in ``[0, 1]`` (``binary_crossentropy``, focal too; soft labels and
  label smoothing are legitimate, so only values outside ``[0, 1]`` are wrong);
* ``"regression"``: the mean squared/absolute errors, Huber, log-cosh and their kin.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from fitpipe.training.check_rules import losses_by_output, target_leaves

__all__ = ["OutputRule", "output_rules"]

_KINDS = {
    "sparse_categorical_crossentropy": "sparse",
    "categorical_crossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    "binary_crossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "mean_squared_error": "regression",
    "mean_absolute_error": "regression",
    "mean_absolute_percentage_error": "regression",
    "mean_squared_logarithmic_error": "regression",
    "huber": "regression",
    "log_cosh": "regression",
}

#: Output activations and the values they can reach.
RANGES = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, None)}


@dataclasses.dataclass(frozen=True)
class OutputRule:
    """What one model output asks of its target leaf.

    Attributes:
        leaf: The target leaf's position among the flattened targets.
        output: The output's name.
        kind: ``"sparse"``, ``"categorical"``, ``"binary"``, ``"regression"`` or ``"other"``.
        loss: The loss, in words.
        units: The output's last dimension (classes), when known.
        activation: The output layer's activation name (``"linear"`` when none).
        ignore_class: A sparse loss' ``ignore_class``.
        from_logits: Whether the loss takes logits.
    """

    leaf: int
    output: str
    kind: str
    loss: str
    units: int | None
    activation: str
    ignore_class: int | None = None
    from_logits: bool = False


def _snake(name: str) -> str:
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out.replace("k_l_", "kl_")


def _loss_name(loss: Any) -> str:
    """The snake-case name of a loss given as a string, a function or a ``Loss`` object."""
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except (ValueError, TypeError):
            return loss
    if isinstance(loss, keras.losses.Loss):
        fn = getattr(loss, "fn", None)
        return getattr(fn, "__name__", None) or _snake(type(loss).__name__)
    return str(getattr(loss, "__name__", type(loss).__name__))


def _activation(output: Any) -> str:
    history = getattr(output, "_keras_history", None)
    layer = getattr(history, "operation", None)
    activation = getattr(layer, "activation", None)
    return str(getattr(activation, "__name__", "linear")) if activation else "linear"


def output_rules(model: keras.Model, y: Any) -> list[OutputRule]:
    """A rule for each target leaf of ``y`` (any structure of leaves) that ``model`` trains.

    Args:
        model: A compiled model.
        y: The targets, or any structure shaped like them (leaves are not read).

    Returns:
        The rules, in the order of the flattened leaves; empty when the targets do not pair
        with the outputs or the model is not compiled.
    """
    losses, owners = losses_by_output(model), target_leaves(y, model)
    if losses is None or owners is None:
        return []
    names = list(getattr(model, "output_names", None) or [])
    rules = []
    for leaf, owner in enumerate(owners):
        loss, output = losses[owner], model.outputs[owner]
        name = _loss_name(loss) if loss is not None else ""
        units = output.shape[-1] if output.shape else None
        rules.append(
            OutputRule(
                leaf=leaf,
                output=names[owner] if owner < len(names) else str(owner),
                kind=_KINDS.get(name, "other"),
                loss=name,
                units=int(units) if units else None,
                activation=_activation(output),
                ignore_class=getattr(loss, "ignore_class", None),
                from_logits=bool(getattr(loss, "from_logits", False)),
            )
        )
    return rules
