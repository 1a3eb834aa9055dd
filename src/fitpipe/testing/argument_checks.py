"""The conformance kit's check that an adapter rejects the arguments it does not support.

:class:`ArgumentChecks` is a base of :class:`fitpipe.testing.AdapterConformanceTests` (as
:class:`~fitpipe.testing.capability_checks.CapabilityChecks` is): for every argument of
``fitpipe.adapt`` (and ``fit``'s ``validation_split`` and ``split_by``) outside the adapter's
``supports``, adapting with it must raise ``UnsupportedArgumentError`` with the shared
wording; ``shuffle`` is the documented exception (inputs that fix their own order warn).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

import fitpipe
from fitpipe.adapters import ADAPT_ARGUMENTS, Adapter, AdaptRequest, supported
from fitpipe.errors import FitpipeWarning, UnsupportedArgumentError
from fitpipe.pipeline import PipelineOptions, adapt_source
from fitpipe.testing.capability_checks import FIXED as _FIXED
from fitpipe.testing.strategies import Example

__all__ = ["ArgumentChecks"]

#: What ``fitpipe.adapt`` is given for each argument when the kit checks it is rejected.
_TRIAL_VALUES: dict[str, Callable[[Example], Any]] = {
    "y": lambda data: data.y,
    "sample_weight": lambda data: data.sample_weight,
    "batch_size": lambda data: 2,
    "shuffle": lambda data: True,
    "class_weight": lambda data: {0: 1.0, 1: 2.0},
    "schema": lambda data: {"features": ["x"]},
    "steps": lambda data: 1,
    "validation_split": lambda data: 0.25,
    "split_by": lambda data: np.arange(data.rows),
}


_REQUEST_FIELDS = frozenset(field.name for field in dataclasses.fields(AdaptRequest))


class ArgumentChecks:
    """The check of unsupported arguments; a base of the conformance kit."""

    if TYPE_CHECKING:  # what the kit's suites provide (fitpipe.testing.conformance)

        def _adapter(self) -> Adapter: ...
        def _supports(self, data: Example) -> frozenset[str]: ...
        def _input(self, data: Example) -> Any: ...
        def _schema_kwargs(self, data: Example, supports: frozenset[str]) -> dict[str, Any]: ...

    def test_unsupported_arguments_rejected(self) -> None:
        """Arguments outside ``supports`` raise the shared "does not support" error."""
        adapter = self._adapter()
        extra = self._schema_kwargs(_FIXED, adapter.supports)
        failures = []
        for name in ADAPT_ARGUMENTS:
            value = _TRIAL_VALUES[name](_FIXED)
            if name in self._supported_with(name, value, extra):
                continue
            problem = self._rejection_problem(name, value, extra)
            if problem:
                failures.append(f"`{name}`: {problem}")
        assert not failures, (
            f"adapter {adapter.name!r} (supports {sorted(self._supports(_FIXED))}) does not "
            "reject arguments outside `supports` with the shared wording:\n  "
            + "\n  ".join(failures)
        )

    def _supported_with(self, name: str, value: Any, extra: dict[str, Any]) -> frozenset[str]:
        """What the adapter honours for the kit's input given ``name=value`` (and ``extra``).

        Asked of the request that holds the argument: an argument may change what is
        honoured (a pandas frame given ``schema`` takes its targets from the schema).
        """
        request = {**extra, name: value} if name in _REQUEST_FIELDS else extra
        return supported(self._adapter(), AdaptRequest(x=self._input(_FIXED), **request))

    def _rejection_problem(
        self, name: str, value: Any, extra: dict[str, Any] | None = None
    ) -> str | None:
        """Returns what went wrong when adapting with the unsupported ``name``, or None.

        Args:
            name: The unsupported argument.
            value: The value given for it.
            extra: Supported arguments the input needs anyway (its ``schema``).

        Returns:
            The problem in words, or None when the argument was rejected as it should be.

        """
        obj = self._input(_FIXED)
        extra = extra or {}
        wording = f"does not support `{name}`"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if name == "validation_split":  # a `fit` argument, not one of `adapt`
                    request = AdaptRequest(x=obj, caller="fit", **extra)
                    adapt_source(request, PipelineOptions(validation_split=value, caller="fit"))
                elif name == "split_by":  # `fit`'s, read by the adapter
                    adapt_source(AdaptRequest(x=obj, caller="fit", split_by=value, **extra))
                else:
                    fitpipe.adapt(obj, **{name: value}, **extra).close()
            except UnsupportedArgumentError as err:
                return None if wording in str(err) else f"message lacks {wording!r}: {err}"
            except Exception as err:
                return f"raised {type(err).__name__} instead of UnsupportedArgumentError: {err}"
        if name == "shuffle":  # documented: inputs that fix their own order warn instead
            ignored = [w for w in caught if issubclass(w.category, FitpipeWarning)]
            if any("ignores `shuffle=True`" in str(w.message) for w in ignored):
                return None
            return "accepted without an error or the FitpipeWarning that it is ignored"
        return "accepted silently"
