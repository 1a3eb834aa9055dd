"""Absent optional inputs of a model whose inputs are a list, or nest deeper than one dict.

Keras feeds ``None`` to an input declared with ``keras.Input(..., optional=True)`` wherever
it sits in the model's input structure (``keras.Model({"g": [a, b], "c": c}, ...)`` takes
``x={"g": [a_rows, None], "c": c_rows}``, ``keras.Model([a, b], ...)`` takes
``x=[a_rows, None]``, in ``fit`` and ``train_on_batch`` alike). fitpipe's
adapters take arrays, not ``None``: :func:`strip_absent` leaves such entries out before the
data is adapted (a dict's entry is dropped; a list or tuple with an absent entry becomes a
dict of its present entries by position, so the position survives), and
:func:`restore_absent` puts them back as ``None``, by the model's structure, in the step and
for the checks against the model's inputs. Flat dicts by input name keep their own handling
(``fitpipe.training.conversions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from fitpipe.errors import FitpipeValueError, message
from fitpipe.training.nested_inputs import nests_deeper

__all__ = [
    "follows_structure",
    "not_optional",
    "optional_inputs",
    "restore_absent",
    "strip_absent",
]


def optional_inputs(model: keras.Model) -> tuple[Any, frozenset[int]] | None:
    """The model's input structure and the ids of its optional inputs' tensors.

    None where the model's inputs are not a dict, list or tuple (or it is not built), or
    none of them is optional.
    """
    try:
        structure = model.input
    except (AttributeError, ValueError):
        return None
    if not isinstance(structure, (Mapping, list, tuple)):
        return None
    optional = frozenset(
        id(layer.output)
        for layer in model.layers
        if isinstance(layer, keras.layers.InputLayer) and getattr(layer, "optional", False)
    )
    return (structure, optional) if optional else None


def follows_structure(structure: Any, x: Any) -> bool:
    """Whether ``x`` nests as the model's inputs, or as :func:`strip_absent` left them.

    Not a flat dict keyed by input names (which a model of a list takes too): ``x`` nests
    deeper, is a list or tuple, a dict by positions of a list, or keyed by the model's own
    dict's keys.
    """
    if nests_deeper(x) or isinstance(x, (list, tuple)):
        return True
    if not isinstance(x, Mapping) or not x:
        return False
    if isinstance(structure, (list, tuple)):
        return all(isinstance(key, int) for key in x)
    return isinstance(structure, Mapping) and set(x) <= set(structure)


def _absent(structure: Any, value: Any, optional: frozenset[int], caller: str) -> bool:
    """Whether ``value`` is None for an optional input (refused for one that is not).

    A dict or list left empty by :func:`_strip` (its inputs all absent) is absent itself.
    """
    if isinstance(value, (Mapping, list, tuple)):
        return not value and isinstance(structure, (Mapping, list, tuple)) and bool(structure)
    if value is not None or isinstance(structure, (Mapping, list, tuple)):
        return False
    if id(structure) not in optional:
        raise not_optional(getattr(structure, "name", str(structure)), caller, None)
    return True


def not_optional(name: str, caller: str, x: Any) -> FitpipeValueError:
    """The error for ``None`` given as the model input ``name``, which is not optional."""
    return FitpipeValueError(
        message(
            caller,
            f"got None for the model input {name!r}, which is not optional",
            "Only inputs declared with `keras.Input(..., optional=True)` may be None",
            f"Pass data for {name!r}, or declare the input optional",
            x=x,
        )
    )


def strip_absent(model: keras.Model, x: Any, caller: str) -> Any:
    """``x`` without the ``None`` leaves of the model's optional inputs.

    Args:
        model: The model.
        x: The inputs given to ``caller``.
        caller: The public method being run.

    Returns:
        ``x`` as it is, or without those leaves (see the module docstring).

    Raises:
        FitpipeValueError: For ``None`` given for an input that is not optional.
    """
    found = optional_inputs(model)
    if found is None or not isinstance(x, (Mapping, list, tuple)):
        return x
    return _strip(found[0], x, found[1], caller)


def _strip(structure: Any, x: Any, optional: frozenset[int], caller: str) -> Any:
    if isinstance(structure, Mapping) and isinstance(x, Mapping):
        parts = {
            key: _strip(structure[key], value, optional, caller) if key in structure else value
            for key, value in x.items()
        }
        return {
            key: value
            for key, value in parts.items()
            if key not in structure or not _absent(structure[key], value, optional, caller)
        }
    if isinstance(structure, (list, tuple)) and isinstance(x, (list, tuple)):
        if len(structure) != len(x):
            return x  # nested unlike the model: the checks say so
        items = [_strip(s, v, optional, caller) for s, v in zip(structure, x, strict=True)]
        absent = [_absent(s, v, optional, caller) for s, v in zip(structure, items, strict=True)]
        if not any(absent):
            return type(x)(items) if isinstance(x, tuple) else items
        return {
            i: item for i, (item, gone) in enumerate(zip(items, absent, strict=True)) if not gone
        }
    return x


def restore_absent(structure: Any, optional: frozenset[int], x: Any) -> Any:
    """``x`` with the inputs :func:`strip_absent` left out back as ``None``.

    Args:
        structure: The model's input structure (:func:`optional_inputs`).
        optional: The ids of its optional inputs' tensors.
        x: The inputs (tensors or their specs), maybe stripped.

    Returns:
        ``x`` nested as the model's inputs, ``None`` where an optional input is absent.
    """
    if isinstance(structure, Mapping) and isinstance(x, Mapping):
        absent = {
            key: _nones(s)
            for key, s in structure.items()
            if key not in x and all(id(t) in optional for t in keras.tree.flatten(s))
        }
        return {
            **{
                key: restore_absent(structure[key], optional, value) if key in structure else value
                for key, value in x.items()
            },
            **absent,
        }
    if isinstance(structure, (list, tuple)) and isinstance(x, Mapping):
        if not x or not all(isinstance(key, int) for key in x):
            return x
        parts = [
            restore_absent(s, optional, x[i]) if i in x else _nones(s)
            for i, s in enumerate(structure)
        ]
        return tuple(parts) if isinstance(structure, tuple) else parts
    if isinstance(structure, (list, tuple)) and isinstance(x, (list, tuple)):
        if len(structure) != len(x):
            return x
        parts = [restore_absent(s, optional, v) for s, v in zip(structure, x, strict=True)]
        return type(x)(parts) if isinstance(x, tuple) else parts
    return x


def _nones(structure: Any) -> Any:
    """``structure`` (inputs all absent) with None for each input."""
    return keras.tree.map_structure(lambda _: None, structure)
