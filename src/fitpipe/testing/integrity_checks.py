"""The conformance kit's checks that the input stays as given and every mode reads it whole.

:class:`fitpipe.testing.AdapterConformanceTests` inherits these checks from
:class:`IntegrityChecks`:

* the input is left unchanged: the arrays handed to ``make_input`` (and the arrays the
  input it built holds: in dicts, lists, tuples, pandas objects and the attributes of plain
  objects) are the same after adapting it and reading an epoch in each mode;
* ``evaluate`` and ``predict`` read the rows as ``fit`` does: an epoch of a pipeline built
  as ``evaluate`` asks delivers every row in order (``x``, ``y`` and weights), and one built
  as ``predict`` asks delivers every feature row in order;
* on 128 rows (more than the generated data holds) an epoch without ``shuffle`` delivers
  every row in order, in batches of ``batch_size``, over two epochs.

The kit hands ``make_input`` copies of its data, so a suite may pass views of the arrays it
is given (``x[:, 0]``): an adapter that writes to them fails here, never in another suite.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import tensorflow as tf

from fitpipe.adapters import AdaptRequest, Mode
from fitpipe.pipeline import build_pipeline
from fitpipe.testing import flat_rows
from fitpipe.testing.capability_checks import describe_order_difference
from fitpipe.testing.isolation_checks import MANY
from fitpipe.testing.strategies import Example

if TYPE_CHECKING:
    from fitpipe.pipeline import Pipeline

__all__ = ["IntegrityChecks", "copied"]

#: Libraries whose objects the walk for arrays does not enter (immutable or not NumPy).
_OPAQUE = ("tensorflow", "keras", "pyarrow", "torch", "jax", "numpy", "builtins", "fitpipe")


def copied(data: Example) -> Example:
    """``data`` with its own copies of the arrays (the kit's fixed data is never handed out)."""
    return dataclasses.replace(
        data,
        x=np.array(data.x, copy=True),
        y=None if data.y is None else np.array(data.y, copy=True),
        sample_weight=None if data.sample_weight is None else np.array(data.sample_weight),
    )


def _arrays_in(value: Any, path: str = "input", depth: int = 4) -> Iterator[tuple[str, Any]]:
    """The NumPy arrays ``value`` holds, by path: in containers, pandas objects, attributes."""
    if isinstance(value, np.ndarray):
        yield path, value
    elif depth == 0 or isinstance(value, (str, bytes, int, float, type)):
        return
    elif isinstance(value, Mapping):
        for key, item in list(value.items()):
            yield from _arrays_in(item, f"{path}[{key!r}]", depth - 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _arrays_in(item, f"{path}[{index}]", depth - 1)
    elif type(value).__module__.startswith("pandas"):
        frame = value.to_frame() if hasattr(value, "to_frame") else value
        for column in getattr(frame, "columns", []):
            yield f"{path}[{column!r}]", frame[column].to_numpy()
    elif not type(value).__module__.startswith(_OPAQUE) and hasattr(value, "__dict__"):
        for name, item in list(vars(value).items()):
            yield from _arrays_in(item, f"{path}.{name}", depth - 1)


def _snapshot(value: Any) -> dict[str, np.ndarray]:
    return {path: np.array(array, copy=True) for path, array in _arrays_in(value)}


def _changed(before: dict[str, np.ndarray], value: Any) -> list[str]:
    """The paths of ``before`` whose arrays in ``value`` differ from their snapshot."""
    now = dict(_arrays_in(value))
    problems = []
    for path, old in before.items():
        new = np.asarray(now.get(path))
        same = old.shape == new.shape and old.dtype == new.dtype
        if same:
            try:
                same = bool(np.array_equal(old, new, equal_nan=True))
            except TypeError:  # object arrays
                same = bool(np.array_equal(old, new))
        if not same:
            problems.append(f"{path}: {old.ravel()[:4].tolist()} -> {new.ravel()[:4].tolist()}")
    return problems


class IntegrityChecks:
    """Checks of the input left unchanged and of every mode's rows; a base of the kit."""

    if TYPE_CHECKING:  # what the kit's suites provide (fitpipe.testing.conformance)
        adapter_name: ClassVar[str]

        def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
            """Builds the adapter's input (the suite's hook)."""

        def expected_x(self, x: np.ndarray) -> Any:
            """The ``x`` part of the batches (the suite's hook)."""

        def _supports(self, data: Example) -> frozenset[str]: ...
        def _input(self, data: Example) -> Any: ...
        def _adapt_kwargs(
            self, data: Example, supports: frozenset[str], shuffle: bool = False
        ) -> dict[str, Any]: ...
        def _adapt(
            self, data: Example, supports: frozenset[str], shuffle: bool = False
        ) -> Pipeline: ...
        def _expected_rows(self, data: Example) -> np.ndarray: ...
        def _epoch(self, pipeline: Pipeline, what: str = "an epoch") -> list[Any]: ...
        def _rows_of(self, batches: list[Any], width: int) -> np.ndarray: ...
        def _is_one_shot(self, obj: Any) -> bool: ...
        def _for_all(self, check: Callable[[Example], None], **kwargs: Any) -> None: ...

    def _mode_pipeline(self, obj: Any, kwargs: dict[str, Any], mode: Mode) -> Pipeline:
        """The pipeline ``evaluate`` or ``predict`` builds of ``obj`` (the kit's arguments)."""
        if mode is Mode.PREDICT:
            kwargs = {k: v for k, v in kwargs.items() if k not in ("y", "sample_weight")}
        kwargs.pop("shuffle", None)
        request = AdaptRequest(x=obj, caller=mode.value, mode=mode, **kwargs)
        return build_pipeline(request, warn_ignored=False)

    def test_input_left_unchanged(self) -> None:
        """Adapting the input and reading it (train, evaluate, predict) changes no array."""

        def check(data: Example) -> None:
            given = copied(data)
            arguments = {"x": given.x, "y": given.y, "sample_weight": given.sample_weight}
            before = _snapshot(arguments)
            supports = self._supports(data)
            kwargs = self._adapt_kwargs(given, supports, shuffle=True)
            for name in ("y", "sample_weight"):  # the very arrays, not the kit's copies
                if name in kwargs:
                    kwargs[name] = getattr(given, name)
            obj = self.make_input(given.x, given.y, given.sample_weight, given.batch_size)
            inside = _snapshot(obj)
            pipelines: list[Callable[[Any], Pipeline]] = [
                lambda o: self._mode_pipeline(o, dict(kwargs), Mode.EVALUATE),
                lambda o: self._mode_pipeline(o, dict(kwargs), Mode.PREDICT),
            ]
            with self._adapt_input(obj, kwargs) as pipeline:
                self._epoch(pipeline, "an epoch (train)")
            for make in pipelines if not self._is_one_shot(obj) else []:
                with make(obj) as pipeline:
                    self._epoch(pipeline)
            problems = [f"make_input's {p[len('input') :]}" for p in _changed(before, arguments)]
            problems += _changed(inside, obj)
            assert not problems, (
                f"the adapter {self.adapter_name!r} changed the input it was given (after "
                "adapting it and reading an epoch): users' arrays must stay as they are; "
                "copy before normalising or casting in place:\n  " + "\n  ".join(problems)
            )

        self._for_all(check)

    def _adapt_input(self, obj: Any, kwargs: dict[str, Any]) -> Pipeline:
        import fitpipe

        return fitpipe.adapt(obj, **kwargs)

    def test_evaluate_and_predict_deliver_the_rows(self) -> None:
        """As ``evaluate`` asks, every row comes in order; as ``predict`` asks, every x row."""

        def check(data: Example) -> None:
            supports = self._supports(data)
            kwargs = self._adapt_kwargs(data, supports)
            expected = self._expected_rows(data)
            with self._mode_pipeline(self._input(data), dict(kwargs), Mode.EVALUATE) as p:
                got = self._rows_of(self._epoch(p, "an epoch (evaluate)"), expected.shape[1])
            assert got.shape == expected.shape and np.array_equal(got, expected), (
                describe_order_difference(expected, got, "an epoch as `evaluate` asks")
                + "\n(rows are x | y | sample_weight joined)"
            )
            features = flat_rows(self.expected_x(data.x))
            with self._mode_pipeline(self._input(data), dict(kwargs), Mode.PREDICT) as p:
                batches = self._epoch(p, "an epoch (predict)")
            got = np.concatenate([flat_rows(b[0]) for b in batches]) if batches else features[:0]
            assert got.shape == features.shape and np.array_equal(got, features), (
                describe_order_difference(features, got, "the x rows of an epoch as `predict` asks")
            )

        self._for_all(check)

    def test_every_row_in_order_on_many_rows(self) -> None:
        """On 128 rows, without ``shuffle``, each epoch holds every row in order."""
        supports = self._supports(MANY)
        expected = self._expected_rows(MANY)
        one_shot = self._is_one_shot(self._input(MANY))
        with self._adapt(MANY, supports) as pipeline:
            for epoch in range(1 if one_shot else 2):
                batches = self._epoch(pipeline, f"epoch {epoch} of 128 rows")
                pipeline.on_epoch_end()
                got = self._rows_of(batches, expected.shape[1])
                assert got.shape == expected.shape and np.array_equal(got, expected), (
                    describe_order_difference(expected, got, f"epoch {epoch} of 128 rows")
                    + "\n(rows are x | y | sample_weight joined; shuffle=False)"
                )
                sizes = collections.Counter(len(tf.nest.flatten(b[0])[0]) for b in batches)
                assert sizes == {MANY.batch_size: 16}, f"batch sizes {dict(sizes)}, expected 16x8"
