"""Model inputs nested deeper than one list or dict, matched to the data leaf by leaf.

Keras builds a functional model on any structure of inputs (``keras.Model({"g": [a, b],
"c": c}, ...)``, a list of dicts, tuples of tuples) and feeds it data of the same structure:
dicts by their keys, lists and tuples alike by position. Such inputs are not named by one
flat dict or list, so the checks of the data against the model's inputs pair them by
structure instead (a flat dict or list given to such a model is still matched by the
inputs' names or order, as before).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from fitpipe.adapters import nesting
from fitpipe.errors import DataMismatchError, message, raw

__all__ = ["nested_structure", "nests_deeper", "structured_pairs"]


def nested_structure(model: keras.Model) -> Any:
    """The model's input structure where it nests deeper than one list or dict, else None."""
    try:
        structure = model.input
    except (AttributeError, ValueError):
        return None
    return structure if nests_deeper(structure) else None


def nests_deeper(structure: Any) -> bool:
    """Whether ``structure`` is a dict, list or tuple holding another one."""
    if not isinstance(structure, (Mapping, list, tuple)):
        return False
    parts = structure.values() if isinstance(structure, Mapping) else structure
    return any(tf.nest.is_nested(part) for part in parts)


def _input_name(tensor: Any) -> str:
    return str(getattr(tensor, "name", tensor))


def structured_pairs(
    structure: Any, x: Any, caller: str, unknown_fix: str = ""
) -> list[tuple[Any, Any]]:
    """``(model input, data)`` leaf by leaf, where ``x`` nests as the model's inputs do.

    Args:
        structure: The model's inputs (:func:`nested_structure`).
        x: The data's inputs (arrays or specs), nested.
        caller: The public method being run.
        unknown_fix: Added to the fix where ``x`` has dict keys the model's dict has not.

    Raises:
        DataMismatchError: Where ``x`` nests otherwise (other keys, lengths or depth).
    """
    unknown = isinstance(x, Mapping) and isinstance(structure, Mapping) and set(x) - set(structure)
    try:
        tf.nest.assert_same_structure(structure, x, check_types=False)
    except (ValueError, TypeError):
        names = tf.nest.map_structure(_input_name, structure)
        raise DataMismatchError(
            message(
                caller,
                "got inputs nested unlike the model's inputs",
                f"The model's inputs nest as {names}; Keras feeds them data of the same "
                "structure (dicts by the same keys, lists or tuples of the same length)",
                "Nest `x` as the model's inputs are nested" + (unknown_fix if unknown else ""),
                x=raw(nesting(x)),
            )
        ) from None
    return list(zip(tf.nest.flatten(structure), tf.nest.flatten(x), strict=True))
