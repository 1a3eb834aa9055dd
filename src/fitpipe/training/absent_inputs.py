"""Absent optional inputs: ``None`` given for a model input declared optional, as Keras takes it.

Keras feeds ``None`` to an input declared with ``keras.Input(..., optional=True)`` wherever
it sits in the model's input structure (``keras.Model({"g": [a, b], "c": c}, ...)`` takes
``x={"g": [a_rows, None], "c": c_rows}``, ``keras.Model([a, b], ...)`` takes
``x=[a_rows, None]``, a dict ``x`` by the inputs' names takes ``{"a": a_rows, "b": None}``,
in ``fit`` and ``train_on_batch`` alike). fitpipe's adapters take arrays, not ``None``:
:func:`strip_absent` leaves such entries out before the data is adapted (a dict's entry is
dropped; a list or tuple with an absent entry becomes a dict of its present entries by
position, so the position survives), and :func:`restore_absent` puts them back as ``None``
in the step and for the checks against the model's inputs.

Both walk a structure of the model's inputs, read with its optional ones in one scan of its
layers (:func:`optional_inputs`): the model's own (``model.input``) for a list, a tuple or
inputs nested deeper, and the flat dict of the keys by which a dict ``x`` names the inputs
(:func:`dict_input_names`) for a flat dict ``x``, which a model built on a list takes too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras

from fitpipe.errors import FitpipeValueError, message
from fitpipe.training.nested_inputs import nests_deeper

__all__ = [
    "OptionalInputs",
    "dict_input_names",
    "follows_structure",
    "not_optional",
    "optional_inputs",
    "restore_absent",
    "strip_absent",
]

#: Refuses ``None`` given for a model input that is not optional (given its tensor).
Refuse = Callable[[Any], FitpipeValueError]


def dict_input_names(model: keras.Model) -> list[str] | None:
    """The keys by which a dict ``x`` names the model's inputs, in ``model.inputs``' order.

    The inputs' names; for a model built on a dict of inputs, that dict's keys (Keras feeds
    a dict ``x`` to the inputs by the keys, whatever the tensors are named: with
    ``keras.Model({"query": keras.Input((2,)), ...}, ...)`` they are ``"query"``, ...).
    None when the model is not built (its inputs are defined by the data).
    """
    named = _named_inputs(model)
    return None if named is None else [name for name, _ in named]


def _named_inputs(model: keras.Model) -> list[tuple[str, Any]] | None:
    """``(key, tensor)`` of each model input, keyed as :func:`dict_input_names` says."""
    try:
        inputs, structure = list(model.inputs or []), model.input
    except (AttributeError, ValueError):
        return None
    if isinstance(structure, Mapping):
        keys = {id(tensor): str(key) for key, tensor in structure.items()}
        if all(id(tensor) in keys for tensor in inputs):
            return [(keys[id(tensor)], tensor) for tensor in inputs]
    return [(tensor.name, tensor) for tensor in inputs]


@dataclass(frozen=True)
class OptionalInputs:
    """The structures by which ``x`` may give a model's inputs, and which are optional.

    Attributes:
        structure: ``model.input`` where it is a dict, list or tuple, else None.
        names: The flat dict of the keys by which a dict ``x`` names the inputs
            (:func:`dict_input_names`, in ``model.inputs``' order) to the input tensors;
            None when the model is not built.
        optional: The ids of the optional inputs' tensors.
        optional_names: The optional inputs' keys in ``names`` (an input layer's own name
            where it has none there).
    """

    structure: Any
    names: dict[str, Any] | None
    optional: frozenset[int]
    optional_names: frozenset[str]


def optional_inputs(model: keras.Model) -> OptionalInputs:
    """The model's input structures and its optional inputs, from one scan of its layers."""
    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = None
    try:
        layers = list(model.layers)
    except (AttributeError, ValueError):
        layers = []
    optional = [
        layer
        for layer in layers
        if isinstance(layer, keras.layers.InputLayer) and getattr(layer, "optional", False)
    ]
    named = _named_inputs(model)
    keys = {id(tensor): name for name, tensor in named or []}
    return OptionalInputs(
        structure=structure if isinstance(structure, (Mapping, list, tuple)) else None,
        names=None if named is None else dict(named),
        optional=frozenset(id(layer.output) for layer in optional),
        optional_names=frozenset(keys.get(id(layer.output), layer.name) for layer in optional),
    )


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
    """``x`` without the ``None`` entries of the model's optional inputs.

    A list, tuple or deeper nesting by the model's input structure, then a dict's entries by
    the inputs' names (see the module docstring). The step puts them back as ``None``
    (:func:`restore_absent`).

    Args:
        model: The model.
        x: The inputs given to ``caller``.
        caller: The public method being run.

    Returns:
        ``x`` as it is, or without those entries.

    Raises:
        FitpipeValueError: For ``None`` given for an input that is not optional (as Keras'
            functional model refuses it).
    """
    found = None  # the model is scanned only for `x` that may hold absent inputs
    if isinstance(x, (list, tuple)) or nests_deeper(x):
        found = optional_inputs(model)
        if found.structure is not None and found.optional:
            refuse = _refuse(caller, None, lambda tensor: getattr(tensor, "name", str(tensor)))
            x = _strip(found.structure, x, found.optional, refuse)
    if not isinstance(x, (Mapping, list, tuple)) or all(
        value is not None for value in (x.values() if isinstance(x, Mapping) else x)
    ):
        return x
    return _strip_named(found or optional_inputs(model), x, caller)


def _strip_named(found: OptionalInputs, x: Any, caller: str) -> Any:
    """A dict ``x`` without its ``None`` entries named as optional inputs (not all of them).

    ``None`` for an input not optional is refused in a dict by name, or in a list or tuple
    of one entry for each input.
    """
    if found.names is None:  # not built: its inputs are defined by the data
        return x
    keys = {id(tensor): name for name, tensor in found.names.items()}
    refuse = _refuse(caller, x, lambda tensor: keys[id(tensor)])
    if isinstance(x, Mapping):
        kept = _strip(found.names, x, found.optional, refuse)
        return kept if 0 < len(kept) < len(x) else x  # all absent: left for the adapters
    if len(x) == len(found.names):
        _strip(found.names, dict(zip(found.names, x, strict=True)), found.optional, refuse)
    return x


def _refuse(caller: str, x: Any, name: Callable[[Any], str]) -> Refuse:
    """Words :func:`not_optional` for an input's tensor, named by ``name``."""
    return lambda tensor: not_optional(name(tensor), caller, x)


def _absent(structure: Any, value: Any, optional: frozenset[int], refuse: Refuse) -> bool:
    """Whether ``value`` is None for an optional input (refused for one that is not).

    A dict or list left empty by :func:`_strip` (its inputs all absent) is absent itself.
    """
    if isinstance(value, (Mapping, list, tuple)):
        return not value and isinstance(structure, (Mapping, list, tuple)) and bool(structure)
    if value is not None or isinstance(structure, (Mapping, list, tuple)):
        return False
    if id(structure) not in optional:
        raise refuse(structure)
    return True


def _strip(structure: Any, x: Any, optional: frozenset[int], refuse: Refuse) -> Any:
    if isinstance(structure, Mapping) and isinstance(x, Mapping):
        parts = {
            key: _strip(structure[key], value, optional, refuse) if key in structure else value
            for key, value in x.items()
        }
        return {
            key: value
            for key, value in parts.items()
            if key not in structure or not _absent(structure[key], value, optional, refuse)
        }
    if isinstance(structure, (list, tuple)) and isinstance(x, (list, tuple)):
        if len(structure) != len(x):
            return x  # nested unlike the model: the checks say so
        items = [_strip(s, v, optional, refuse) for s, v in zip(structure, x, strict=True)]
        absent = [_absent(s, v, optional, refuse) for s, v in zip(structure, items, strict=True)]
        if not any(absent):
            return type(x)(items) if isinstance(x, tuple) else items
        return {
            i: item for i, (item, gone) in enumerate(zip(items, absent, strict=True)) if not gone
        }
    return x


def restore_absent(found: OptionalInputs, x: Any, by_names: bool = True) -> Any:
    """``x`` with the inputs :func:`strip_absent` left out back as ``None``.

    Args:
        found: The model's inputs (:func:`optional_inputs`).
        x: The inputs (tensors or their specs), maybe stripped.
        by_names: Restore a flat dict ``x`` by the inputs' names too (the step's), not
            only ``x`` that nests as the model's inputs (:func:`follows_structure`).

    Returns:
        ``x`` nested as the model's inputs, ``None`` where an optional input is absent.
    """
    if not found.optional:
        return x
    if found.structure is not None and follows_structure(found.structure, x):
        return _restore(found.structure, found.optional, x)
    if not by_names or found.names is None:
        return x
    by_key = dict(sorted(found.names.items(), key=lambda item: item[0]))
    return _restore(by_key, found.optional, x)


def _restore(structure: Any, optional: frozenset[int], x: Any) -> Any:
    if isinstance(structure, Mapping) and isinstance(x, Mapping):
        absent = {
            key: _nones(s)
            for key, s in structure.items()
            if key not in x and all(id(t) in optional for t in keras.tree.flatten(s))
        }
        return {
            **{
                key: _restore(structure[key], optional, value) if key in structure else value
                for key, value in x.items()
            },
            **absent,
        }
    if isinstance(structure, (list, tuple)) and isinstance(x, Mapping):
        if not x or not all(isinstance(key, int) for key in x):
            return x
        parts = [
            _restore(s, optional, x[i]) if i in x else _nones(s) for i, s in enumerate(structure)
        ]
        return tuple(parts) if isinstance(structure, tuple) else parts
    if isinstance(structure, (list, tuple)) and isinstance(x, (list, tuple)):
        if len(structure) != len(x):
            return x
        parts = [_restore(s, optional, v) for s, v in zip(structure, x, strict=True)]
        return type(x)(parts) if isinstance(x, tuple) else parts
    return x


def _nones(structure: Any) -> Any:
    """``structure`` (inputs all absent) with None for each input."""
    return keras.tree.map_structure(lambda _: None, structure)
