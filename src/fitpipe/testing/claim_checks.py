"""The conformance kit's checks that each argument an adapter claims to support works.

:class:`fitpipe.testing.AdapterConformanceTests` inherits these checks from
:class:`ClaimChecks`. For each of ``validation_split``, ``split_by``, ``steps`` and
``class_weight`` in the adapter's ``supports``, the argument is exercised the way ``fit``
uses it, on fixed data; an argument the adapter does not claim is skipped (that it is
rejected is :mod:`fitpipe.testing.argument_checks`'s check):

* ``validation_split``: the source (as ``fit`` asks for it, held in memory and streamed) is
  rows in memory or :class:`~fitpipe.adapters.Splittable` with its rows known, and
  ``validation_split=0.25`` gives the first 75% of the rows for training and the rest for
  validation;
* ``split_by``: the source reads each row's key (rows in memory with their keys, or a
  :class:`~fitpipe.adapters.GroupSplittable` source), and the grouped split keeps every
  key's rows on one side, each row on exactly one side;
* ``steps``: adapting with ``steps=2`` works and the epoch's first two batches are those
  delivered without it (only those two: ``fitpipe.adapt`` itself ends the epoch there);
* ``schema``: the suite's ``schema_for`` gives a schema, so every check passes it (without
  one a claimed ``schema`` would never be exercised);
* ``class_weight``: each delivered row's weight is its sample weight times its class's weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

import fitpipe
from fitpipe.adapters import AdaptRequest, ArraySource, GroupSplittable, Splittable
from fitpipe.errors import DataMismatchError
from fitpipe.pipeline import PipelineOptions, adapt_source, split_validation
from fitpipe.testing import flat_rows, to_numpy
from fitpipe.testing.capability_checks import FIXED, _close, _source_rows, row_key
from fitpipe.testing.fixtures import weight_of_rows
from fitpipe.testing.strategies import Example

if TYPE_CHECKING:
    from fitpipe.adapters import Adapter, Source

__all__ = ["KEYED", "ClaimChecks"]

#: 40 rows whose first feature is each row's key (two rows per key), for ``split_by``.
KEYED = Example(
    x=np.column_stack([np.arange(40) // 2, np.arange(40), np.arange(40) * 2 + 1]).astype(
        np.float32
    ),
    y=(np.arange(40) % 2).astype(np.int64),
    sample_weight=weight_of_rows(np.arange(120, dtype=np.float32).reshape(40, 3)),
    batch_size=4,
)

#: The ways ``fit`` asks for a source: rows held in memory, and streamed (under a strategy).
_FIT_VARIANTS: tuple[dict[str, Any], ...] = ({}, {"hold_in_memory": False})
_FRACTION = 0.25
_STEPS = 2
_CLASS_WEIGHT = {0: 1.5, 1: 4.0}


def _skip_unless_claimed(adapter: Adapter, supports: frozenset[str], name: str) -> None:
    if name not in supports:
        import pytest  # the checks run under pytest; the module imports without it

        pytest.skip(f"adapter {adapter.name!r} does not claim `{name}`")


class ClaimChecks:
    """The checks of claimed ``fit`` arguments; a base of the conformance kit."""

    if TYPE_CHECKING:  # what the kit's suites provide (fitpipe.testing.conformance)
        adapter_name: ClassVar[str]

        def _adapter(self) -> Adapter: ...
        def _supports(self, data: Example) -> frozenset[str]: ...
        def _input(self, data: Example) -> Any: ...
        def _adapt_kwargs(
            self, data: Example, supports: frozenset[str], shuffle: bool = False
        ) -> dict[str, Any]: ...
        def _expected_rows(self, data: Example) -> np.ndarray: ...
        def _epoch(self, pipeline: Any, what: str = "an epoch") -> list[Any]: ...
        def expected_x(self, x: np.ndarray) -> Any:
            """The ``x`` part of the batches (the suite's hook)."""

        def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> Any:
            """The schema that reads the input (the suite's hook)."""

    def split_by_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> Any:
        """What to pass as ``split_by`` so that each row's key is ``x[:, 0]``; override if needed.

        Used only when the adapter claims ``split_by``, on data whose first feature holds
        whole numbers (two rows per key). The default gives the keys themselves (an int64
        array of one key per row, as rows in memory take); an adapter of columnar data
        returns the name of a column its input holds with ``x[:, 0]`` as integers.

        Args:
            x: The features given to :meth:`make_input`; ``x[:, 0]`` is each row's key.
            y: The targets given to :meth:`make_input`.
            sample_weight: The weights given to :meth:`make_input`.

        Returns:
            The ``split_by`` argument.

        """
        return np.asarray(x[:, 0]).astype(np.int64)

    def _fit_request(self, data: Example, **extra: Any) -> AdaptRequest:
        kwargs = self._adapt_kwargs(data, self._supports(data))
        return AdaptRequest(x=self._input(data), caller="fit", **kwargs, **extra)

    def _split(
        self, data: Example, variant: dict[str, Any], split_by: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The x rows of both sides of ``fit``'s split of ``data`` (grouped with ``split_by``)."""
        request = self._fit_request(data, split_by=split_by, **variant)
        options = PipelineOptions(validation_split=_FRACTION, caller="fit")
        how = f"asked as fit asks{' (streamed)' if variant else ''}"
        try:
            source = adapt_source(request, options, warn_ignored=False)[1]
        except DataMismatchError as err:  # a source that cannot split as claimed, worded
            raise AssertionError(f"{how}: {err}") from None
        try:
            problem = _split_problem(source, grouped=split_by is not None)
            assert problem is None, (
                f"adapter {self.adapter_name!r} claims `"
                f"{'split_by' if split_by is not None else 'validation_split'}` in `supports`"
                f", but its source {how} {problem}"
            )
            train, val, _ = split_validation(source, request, options)
            width = flat_rows(self.expected_x(data.x)).shape[1]
            try:
                return _source_rows(train, width), _source_rows(val, width)
            finally:
                _close(train, val)
        finally:
            _close(source)

    def test_claimed_validation_split_splits(self) -> None:
        """``validation_split=0.25``: the first 75% of the rows train, the rest validate."""
        _skip_unless_claimed(self._adapter(), self._supports(FIXED), "validation_split")
        expected = flat_rows(self.expected_x(FIXED.x))
        at = int(np.floor(len(expected) * (1 - _FRACTION)))
        for variant in _FIT_VARIANTS:
            train, val = self._split(FIXED, variant)
            sides = (("training", expected[:at], train), ("validation", expected[at:], val))
            for what, want, got in sides:
                assert sorted(map(row_key, got)) == sorted(map(row_key, want)), (
                    f"validation_split={_FRACTION} of {len(expected)} rows: the {what} part "
                    f"holds {got.tolist()}, expected {want.tolist()}"
                )

    def test_claimed_split_by_keeps_keys_together(self) -> None:
        """``split_by``: each key's rows on one side; every row on exactly one side."""
        _skip_unless_claimed(self._adapter(), self._supports(FIXED), "split_by")
        expected = flat_rows(self.expected_x(KEYED.x))
        key_of = {row_key(row): key for row, key in zip(expected, KEYED.x[:, 0], strict=True)}
        split_by = self.split_by_for(KEYED.x, KEYED.y, KEYED.sample_weight)
        for variant in _FIT_VARIANTS:
            train, val = self._split(KEYED, variant, split_by)
            got = sorted(map(row_key, np.concatenate([train, val])))
            assert got == sorted(key_of), (
                f"split_by: the two sides hold {len(got)} rows, expected each of the "
                f"{len(key_of)} rows once (rows never delivered or delivered twice)"
            )
            sides = [{key_of[row_key(row)] for row in part} for part in (train, val)]
            both = sorted(sides[0] & sides[1])
            assert not both, (
                f"split_by: the rows of keys {both[:5]} are on both sides; a grouped split "
                "keeps each key's rows together (the adapter must read each row's own key)"
            )

    def test_claimed_schema_is_exercised(self) -> None:
        """A claimed ``schema`` is given to every check: the suite's ``schema_for`` names one."""
        adapter = self._adapter()
        if "schema" not in adapter.supports:
            import pytest  # the checks run under pytest; the module imports without it

            pytest.skip(f"adapter {adapter.name!r} does not claim `schema`")
        assert self.schema_for(FIXED.x, FIXED.y, FIXED.sample_weight) is not None, (
            f"adapter {adapter.name!r} claims `schema`, but the suite's `schema_for` returns "
            "None, so the kit never passes a schema and never checks reading by one: override "
            "`schema_for(self, x, y, sample_weight)` to return the Schema that reads the input "
            "of `make_input` (a second suite that reads the input without a schema may skip "
            "this check by overriding it)"
        )

    def test_claimed_steps_are_taken(self) -> None:
        """``steps=2``: adapting works, and its first two batches are those without ``steps``.

        Only the first two batches are compared: ``fitpipe.adapt`` itself ends each epoch
        after ``steps`` batches, whatever the adapter delivers after them.
        """
        adapter = self._adapter()
        _skip_unless_claimed(adapter, self._supports(FIXED), "steps")
        kwargs = self._adapt_kwargs(FIXED, self._supports(FIXED))
        with fitpipe.adapt(self._input(FIXED), **kwargs) as pipeline:
            plain = self._epoch(pipeline)
        try:
            with fitpipe.adapt(self._input(FIXED), steps=_STEPS, **kwargs) as pipeline:
                taken = zip(range(_STEPS), pipeline.dataset, strict=False)
                stepped = [to_numpy(batch) for _, batch in taken]
        except Exception as err:
            raise AssertionError(
                f"adapter {adapter.name!r} claims `steps`, but adapting with steps={_STEPS} "
                f"raised {type(err).__name__}: {err}"
            ) from err
        got, want = _batch_rows(stepped), _batch_rows(plain[:_STEPS])
        assert got.shape == want.shape and np.array_equal(got, want), (
            f"with steps={_STEPS} the first batches hold {got.tolist()}, expected the "
            f"first {_STEPS} batches delivered without `steps`: {want.tolist()}"
        )

    def test_claimed_class_weight_weights_rows(self) -> None:
        """``class_weight``: each row's weight is its sample weight times its class's weight."""
        adapter = self._adapter()
        _skip_unless_claimed(adapter, self._supports(FIXED), "class_weight")
        kwargs = self._adapt_kwargs(FIXED, self._supports(FIXED))
        rows = flat_rows(self.expected_x(FIXED.x))
        assert FIXED.y is not None and FIXED.sample_weight is not None
        want = FIXED.sample_weight * np.array([_CLASS_WEIGHT[int(c)] for c in FIXED.y])
        weight_of = {row_key(row): float(w) for row, w in zip(rows, want, strict=True)}
        try:
            with fitpipe.adapt(self._input(FIXED), class_weight=_CLASS_WEIGHT, **kwargs) as p:
                batches = self._epoch(p)
        except Exception as err:
            raise AssertionError(
                f"adapter {adapter.name!r} claims `class_weight`, but adapting with "
                f"class_weight={_CLASS_WEIGHT} raised {type(err).__name__}: {err}"
            ) from err
        for batch in batches:
            assert len(batch) == 3, f"batches with class_weight have {len(batch)} parts, not 3"
            for row, weight in zip(flat_rows(batch[0]), flat_rows(batch[2])[:, 0], strict=True):
                expected = weight_of.get(row_key(row))
                assert expected is not None and np.isclose(weight, expected, rtol=1e-6), (
                    f"with class_weight={_CLASS_WEIGHT}, row {row.tolist()} weighs {weight}, "
                    f"expected {expected} (its sample weight times its class's weight): the "
                    "targets did not reach the pipeline as the given class indices"
                )


def _batch_rows(batches: list[Any]) -> np.ndarray:
    """All parts of the batches joined into rows (``x | y | sample_weight``)."""
    if not batches:
        return np.zeros((0, 0))
    return np.concatenate(
        [np.concatenate([flat_rows(part) for part in batch], axis=1) for batch in batches]
    )


def _split_problem(source: Source, grouped: bool) -> str | None:
    """Why ``source`` cannot be split as claimed, or None."""
    name = type(source).__name__
    if grouped:
        if isinstance(source, ArraySource):
            return None if source.keys is not None else "holds rows without their keys (`keys`)"
        if isinstance(source, GroupSplittable):
            return None
        return f"({name}) is neither rows in memory with their keys nor GroupSplittable"
    if isinstance(source, ArraySource):
        return None
    if not isinstance(source, Splittable):
        return f"({name}) is neither rows in memory (ArraySource) nor Splittable"
    rows = getattr(source, "rows", None)
    return None if rows else f"({name}) does not know its rows (`rows` is {rows!r})"
