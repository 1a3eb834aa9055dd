"""The registry of input forms: the same data presented as every input fitpipe takes.

:func:`equivalent_forms` presents one data set as every registered :class:`Form` (NumPy
arrays, a dict, a list, a tensor, a generator, a ``PyDataset``, ``tf.data``, an Arrow table,
a Parquet file), for properties of the form "every form yields the same rows";
:func:`register_form` adds a form (a third-party adapter may register the one it takes, so
property tests written against :func:`equivalent_forms` cover it too).

Every name is also importable from :mod:`fitpipe.testing.strategies`, whose
``presented_examples`` draws a data set and one of its forms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from fitpipe.schemas import Schema
from fitpipe.testing.fixtures import (
    ArrayPyDataset,
    arrow_table,
    columnar_schema,
    iterate_batches,
    write_parquet,
)

__all__ = [
    "FORM_FACTORIES",
    "Form",
    "FormFactory",
    "equivalent_forms",
    "form_names",
    "register_form",
]


@dataclasses.dataclass(frozen=True)
class Form:
    """One presentation of a data set as input to ``fitpipe.adapt``.

    Attributes:
        name: A short label (``"arrays"``, ``"generator"``, ...).
        build: Returns fresh ``(args, kwargs)`` for ``fitpipe.adapt`` (generators are single
            use, so build every time).
        row_addressed: True for forms the pipeline batches and may shuffle itself.
        adapter: The registered adapter expected to take the input.
        schema: The declared schema that reads a columnar form (Arrow, Parquet), or None;
            ``build`` already passes it as the ``schema`` keyword argument.

    """

    name: str
    build: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
    row_addressed: bool
    adapter: str
    schema: Schema | None = None


#: Builds one :class:`Form` of ``(x, y, sample_weight, batch_size)``.
FormFactory = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", int], Form]

#: The registered form factories, in the order :func:`equivalent_forms` presents them.
#: Extend it with :func:`register_form` (the Arrow table and Parquet file forms register
#: here, next to the forms below).
FORM_FACTORIES: dict[str, FormFactory] = {}


def register_form(name: str, factory: FormFactory, *, replace: bool = False) -> FormFactory:
    """Adds an input form to :func:`equivalent_forms` and :func:`presented_examples`.

    This is the extension point for new input forms (the Arrow table and Parquet file forms
    are added here); a third-party adapter may register the form it takes, so property
    tests written against :func:`equivalent_forms` cover it too.

    Args:
        name: The form's label (unique).
        factory: Builds the :class:`Form` for ``(x, y, sample_weight, batch_size)``; its
            ``build`` must return a fresh input every call.
        replace: Replace a form registered under the same name.

    Returns:
        ``factory``, so the function can be used as a decorator's target.

    Raises:
        ValueError: When ``name`` is taken and ``replace`` is False.

    """
    if name in FORM_FACTORIES and not replace:
        raise ValueError(f"an input form named {name!r} is already registered")
    FORM_FACTORIES[name] = factory
    return factory


def _row_form(name: str, adapter: str, convert: Callable[[Any], Any]) -> FormFactory:
    """A factory for a row-addressed form: ``x`` converted, the rest passed as arguments."""

    def factory(
        x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
    ) -> Form:
        def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
            kwargs: dict[str, Any] = {"batch_size": batch_size}
            as_target = tf.constant if name == "tensor" else (lambda value: value)
            if y is not None:
                kwargs["y"] = as_target(y)
            if sample_weight is not None:
                kwargs["sample_weight"] = as_target(sample_weight)
            return (convert(x),), kwargs

        return Form(name, build, True, adapter)

    return factory


def _generator_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (iterate_batches(x, y, sample_weight, batch_size),), {}

    return Form("generator", build, False, "generator")


def _pydataset_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (ArrayPyDataset(x, y, sample_weight, batch_size),), {}

    return Form("pydataset", build, False, "pydataset")


def _tf_data_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        parts = tuple(p for p in (x, y, sample_weight) if p is not None)
        return (tf.data.Dataset.from_tensor_slices(parts).batch(batch_size),), {}

    return Form("tf.data", build, False, "tf.data")


def _arrow_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    schema = columnar_schema(x, y, sample_weight)

    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (arrow_table(x, y, sample_weight),), {"batch_size": batch_size, "schema": schema}

    return Form("arrow", build, True, "arrow", schema)


def _parquet_form(
    x: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None, batch_size: int
) -> Form:
    schema = columnar_schema(x, y, sample_weight)

    def build() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = write_parquet(x, y, sample_weight)
        return (path,), {"batch_size": batch_size, "schema": schema}

    return Form("parquet", build, False, "parquet", schema)


register_form("arrays", _row_form("arrays", "numpy", lambda a: a))
register_form("dict", _row_form("dict", "mapping", lambda a: {"a": a}))
register_form("list", _row_form("list", "sequence", lambda a: [a]))
register_form("tensor", _row_form("tensor", "tensor", tf.constant))
register_form("generator", _generator_form)
register_form("pydataset", _pydataset_form)
register_form("tf.data", _tf_data_form)
register_form("arrow", _arrow_form)
register_form("parquet", _parquet_form)


def equivalent_forms(
    x: np.ndarray,
    y: np.ndarray | None,
    sample_weight: np.ndarray | None,
    batch_size: int,
    *,
    names: tuple[str, ...] | None = None,
) -> list[Form]:
    """Present the same data as every input form, each yielding the same rows in order.

    Forms: NumPy arrays, a dict ``{"a": x}`` (one named input), a list ``[x]``, ``tf.Tensor``,
    a generator of batches, a ``PyDataset``, a batched ``tf.data.Dataset``, a
    ``pyarrow.Table`` and a Parquet file (a new file in a temporary directory at every
    ``build``), plus any form added with :func:`register_form`. Row-addressed forms get
    ``batch_size`` as an argument; batch forms are batched by ``batch_size`` themselves,
    except the Parquet file, which gets it as an argument too. The columnar forms carry
    their :class:`fitpipe.Schema` (:attr:`Form.schema`), and their ``build`` passes it as
    ``schema=``, so ``fitpipe.adapt(*args, **kwargs)`` works for every form.

    Args:
        x: Features, 2-D.
        y: Targets, or None.
        sample_weight: Weights, or None (requires ``y``).
        batch_size: Rows per batch.
        names: Only these forms (by label), in this order; all registered forms when None.

    Returns:
        The forms, each able to build a fresh input any number of times.

    Raises:
        KeyError: For a name no form is registered under.

    """
    chosen = tuple(FORM_FACTORIES) if names is None else names
    return [FORM_FACTORIES[name](x, y, sample_weight, batch_size) for name in chosen]


def form_names() -> tuple[str, ...]:
    """The labels of the registered forms, in presentation order."""
    return tuple(FORM_FACTORIES)
