"""``compile``'s checks of per-output arguments against the model's outputs, where Keras is silent.

Keras matches ``loss``, ``loss_weights`` and ``metrics`` given per output to the model's
outputs only when the first step builds them, and takes some that match nothing without a
word: ``loss_weights={"nope": 10.0}`` on a one-output model weighs its only loss by 10, a
list of two losses for one output sums both, a metrics dict by unknown name measures the
only output anyway. fitpipe refuses those at ``compile``, and only those (the mismatches
Keras refuses at the first step are left to it), for models whose outputs are known and
flat: a functional model whose output is one tensor, a list or tuple of them or a dict of
them, and a built ``Sequential``. Subclassed models, nested outputs and models that compute
their loss or steps themselves are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from fitpipe.errors import FitpipeValueError, message

__all__ = ["check_per_output_arguments"]

#: The methods a model overrides to take ``y_pred`` apart in its own way (Keras' own tests
#: split one output in two in ``compute_loss`` and give it a list of two losses).
_OWN_LOSS_METHODS = ("compute_loss", "train_step", "test_step")


def flat_output_names(model: keras.Model) -> list[str] | None:
    """The names a per-output argument may use, one per output; None when not known.

    A dict output's keys (Keras matches per-output arguments to them), else the output
    layers' names (``output_names``; the last layer's for a ``Sequential``).
    """
    if any(getattr(type(model), m) is not getattr(keras.Model, m) for m in _OWN_LOSS_METHODS):
        return None
    if isinstance(model, keras.Sequential):
        if not model.built or not model.layers or len(_outputs(model)) != 1:
            return None
        return [model.layers[-1].name]
    names = getattr(model, "output_names", None)
    outputs = _outputs(model)
    if not names or len(names) != len(outputs):
        return None
    structure = model.output
    parts = structure.values() if isinstance(structure, Mapping) else structure
    if isinstance(parts, (list, tuple, type({}.values()))) and any(
        isinstance(part, (list, tuple, Mapping)) for part in parts
    ):
        return None  # nested: left to Keras
    if isinstance(structure, Mapping):
        return [str(key) for key in structure]
    return [str(name) for name in names]


def _outputs(model: keras.Model) -> list[Any]:
    try:
        return list(model.outputs or [])
    except (AttributeError, ValueError):
        return []


def check_per_output_arguments(
    model: keras.Model, loss: Any, loss_weights: Any, metrics: Any, weighted_metrics: Any
) -> None:
    """Refuses per-output arguments that match no output and that Keras would take silently.

    ``loss`` and ``loss_weights`` as a list or tuple need one entry per output;
    ``loss_weights`` as a dict, keys among the output names; ``metrics`` and
    ``weighted_metrics`` as a dict, on a one-output model, keys among the output names
    (on several outputs Keras refuses unknown keys at the first step).
    """
    names = flat_output_names(model)
    if names is None:
        return
    _check_length(names, "loss", loss)
    _check_length(names, "loss_weights", loss_weights)
    _check_keys(names, "loss_weights", loss_weights)
    if len(names) == 1:
        _check_keys(names, "metrics", metrics)
        _check_keys(names, "weighted_metrics", weighted_metrics)


def _check_length(names: list[str], name: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(value) == len(names):
        return
    several = len(names) != 1
    raise FitpipeValueError(
        message(
            "compile",
            f"got a `{name}` {type(value).__name__} of {len(value)} entries for a model of "
            f"{len(names)} output{'s' if several else ''}",
            f"A list of `{name}` has one entry per model output, in order: {names}",
            f"Pass {len(names)} entr{'ies' if several else 'y'}, or a dict by output name"
            + ("" if several else ", or the one value alone"),
            **{name: value},
        )
    )


def _check_keys(names: list[str], name: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        return
    unknown = [key for key in value if key not in names]
    if not unknown:
        return
    raise FitpipeValueError(
        message(
            "compile",
            f"got `{name}` for outputs the model does not have: {unknown}",
            f"A dict of `{name}` is keyed by the model's output names: {names}",
            "Use the output names (the output layers' names, or the keys of a dict output)",
            **{name: value},
        )
    )
