"""Conformance checks of each capability a source declares (see ``fitpipe.adapters``).

:class:`fitpipe.testing.AdapterConformanceTests` inherits these checks from
:class:`CapabilityChecks`. Each one asks the adapter for sources the ways fitpipe does (as
``fit`` builds them, streamed with ``hold_in_memory=False``, and chunked for
``predict(output=...)``) and, for the first source that declares the capability (by
``isinstance`` with its protocol in :mod:`fitpipe.adapters.capabilities`), checks that the
capability keeps its contract on generated data:

* :class:`~fitpipe.adapters.Splittable`: ``split(at, None)`` gives the rows before ``at``
  and the rows from ``at`` on, each row in exactly one part;
* :class:`~fitpipe.adapters.Seekable`: ``seek(n)`` then reading gives pass ``n`` again, and
  reading on gives pass ``n + 1``;
* :class:`~fitpipe.adapters.Shardable`: the shards' real rows (sample weight not 0) are
  every row once, and each shard yields the steps it announces;
* :class:`~fitpipe.adapters.Resumable`: a pass restored from ``input_state(0, seen)``
  continues after batch ``seen`` as pass 0 did;
* :class:`~fitpipe.adapters.Paced`: taking one batch after ``expect(1)`` loses nothing:
  after ``expect(None)`` the next iteration goes on with the other rows (an input read
  once) or reads every row again;
* :class:`~fitpipe.adapters.Chunked`: the chunks hold every row once, in order;
* :class:`~fitpipe.adapters.ClassCountable`: ``count_classes()`` equals counting the
  targets' classes;
* :class:`~fitpipe.adapters.Checkable`: ``check_batches(check)`` runs the check on every
  batch of a pass, numbered from 0, before it is delivered; a check that raises at batch
  ``k`` stops the pass after the ``k`` batches before it, and ``take_error()`` returns the
  exception.

A check whose capability no source of the adapter declares is skipped.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import tensorflow as tf
from hypothesis import assume

from fitpipe.adapters import (
    DEFAULT_BATCH_SIZE,
    Adapter,
    AdaptRequest,
    ArraySource,
    BatchSourceBase,
    Checkable,
    Chunked,
    ClassCountable,
    Mode,
    Paced,
    Resumable,
    Seekable,
    Shardable,
    Splittable,
    class_counts,
)
from fitpipe.pipeline import adapt_source
from fitpipe.schemas import as_schema
from fitpipe.testing import EPOCH_BATCH_LIMIT, flat_rows, to_numpy
from fitpipe.testing.fixtures import weight_of_rows
from fitpipe.testing.strategies import Example

__all__ = [
    "FIXED",
    "CapabilityChecks",
    "describe_order_difference",
    "describe_row_difference",
    "row_key",
]

#: The fixed data of the checks that need no Hypothesis (and of finding the capabilities).
FIXED = Example(
    x=np.arange(30, dtype=np.float32).reshape(10, 3),
    y=np.array([0, 1, 0, 1, 1, 0, 1, 0, 0, 1], dtype=np.int64),
    sample_weight=weight_of_rows(np.arange(30, dtype=np.float32).reshape(10, 3)),
    batch_size=4,
)

#: The requests a source is asked for, beside the kit's arguments: as ``fit`` asks, streamed
#: (sources that would read small data whole keep it streamed), chunked as
#: ``predict(output=...)`` asks.
_TRAIN: tuple[dict[str, Any], ...] = ({}, {"hold_in_memory": False})
_CHUNKS: tuple[dict[str, Any], ...] = ({"chunks": True, "mode": Mode.PREDICT},)


class _CheckStop(Exception):
    """Raised by the Checkable check's own check to stop a pass."""


def row_key(row: np.ndarray) -> tuple[float, ...]:
    """A hashable key of one row (``-0.0`` and ``0.0`` are one key)."""
    return tuple(float(v) + 0.0 for v in row)


def describe_row_difference(expected: np.ndarray, got: np.ndarray, what: str) -> str:
    """Says which rows are missing and which are extra (or repeated), as multisets."""
    want = collections.Counter(row_key(r) for r in expected)
    have = collections.Counter(row_key(r) for r in got)
    missing = list((want - have).elements())
    extra = list((have - want).elements())
    lines = [f"{what}: delivered {len(got)} rows, expected {len(expected)}"]
    if missing:
        lines.append(f"  {len(missing)} row(s) never delivered, e.g. {missing[:3]}")
    if extra:
        lines.append(f"  {len(extra)} row(s) delivered too often or never given, e.g. {extra[:3]}")
    return "\n".join(lines)


def describe_order_difference(expected: np.ndarray, got: np.ndarray, what: str) -> str:
    """Says how ``got`` differs from ``expected`` in order: the row counts, else the positions."""
    if sorted(map(row_key, got)) != sorted(map(row_key, expected)):
        return describe_row_difference(expected, got, what)
    pairs = zip(map(row_key, expected), map(row_key, got), strict=True)
    moved = [index for index, (want, have) in enumerate(pairs) if want != have]
    return (
        f"{what}: every row delivered once, but {len(moved)} of {len(expected)} out of order; "
        f"first at position {moved[0]}: expected {expected[moved[0]].tolist()}, got "
        f"{got[moved[0]].tolist()}"
    )


def _same_rows(expected: np.ndarray, got: np.ndarray, what: str) -> None:
    """Asserts that ``got`` holds the rows of ``expected``, each as often, in any order."""
    same = sorted(map(row_key, got)) == sorted(map(row_key, expected))
    assert same, describe_row_difference(expected, got, what)


def _x_rows(batches: list[Any], width: int) -> np.ndarray:
    """The feature rows of batches ``(x, ...)``."""
    if not batches:
        return np.zeros((0, width))
    return np.concatenate([flat_rows(batch[0]) for batch in batches])


def _batches(dataset: Any, most: int | None = None) -> list[Any]:
    """The batches of one iteration of ``dataset`` (the first ``most`` of them), as NumPy."""
    found: list[Any] = []
    if most == 0:
        return found
    for batch in bounded(dataset):
        found.append(to_numpy(batch))
        if len(found) == most:
            break
    return found


def bounded(dataset: Any) -> Iterator[Any]:
    """The batches of one iteration of ``dataset``, failing past :data:`EPOCH_BATCH_LIMIT`."""
    for index, batch in enumerate(dataset):
        assert index < EPOCH_BATCH_LIMIT, (
            f"a pass of a source's dataset gave more than EPOCH_BATCH_LIMIT "
            f"({EPOCH_BATCH_LIMIT}) batches of the kit's few rows: it does not end (a "
            "`.repeat()` left on it?); a pass of a source ends after its rows"
        )
        yield batch


def _pass(source: BatchSourceBase, dataset: tf.data.Dataset) -> list[Any]:
    """One pass of a batch source, ended as the trainer ends an epoch."""
    batches = _batches(dataset)
    source.on_epoch_end()
    return batches


def _close(*sources: Any) -> None:
    for source in sources:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _source_rows(source: Any, width: int) -> np.ndarray:
    """The feature rows of one pass of a part returned by ``split``."""
    if isinstance(source, ArraySource):
        return flat_rows(to_numpy(source.x))
    assert isinstance(source, BatchSourceBase), f"split returned {type(source).__name__}"
    return _x_rows(_batches(source.make_dataset()), width)


class CapabilityChecks:
    """The checks of the capabilities a source declares; a base of the conformance kit."""

    if TYPE_CHECKING:  # what the kit's suites provide (fitpipe.testing.conformance)
        adapter_name: ClassVar[str]

        def _adapter(self) -> Adapter: ...
        def _supports(self, data: Example) -> frozenset[str]: ...
        def _input(self, data: Example) -> Any: ...
        def _adapt_kwargs(
            self, data: Example, supports: frozenset[str], shuffle: bool = False
        ) -> dict[str, Any]: ...
        def _for_all(self, check: Callable[[Example], None], **kwargs: Any) -> None: ...
        def _is_one_shot(self, obj: Any) -> bool: ...
        def expected_x(self, x: np.ndarray) -> Any:
            """The ``x`` part of the batches (the suite's hook)."""

        def expected_y(self, y: np.ndarray) -> Any:
            """The ``y`` part of the batches (the suite's hook)."""

    def _request_source(
        self,
        data: Example,
        variant: dict[str, Any],
        shuffle: bool = False,
    ) -> Any:
        """The source the adapter makes of ``data``'s input, asked as ``variant`` says."""
        kwargs = self._adapt_kwargs(data, self._supports(data), shuffle)
        request = AdaptRequest(x=self._input(data), caller="fit", **kwargs, **variant)
        if not request.chunks:
            return adapt_source(request, warn_ignored=False)[1]
        if request.schema is not None:  # as `predict(output=...)` asks: the adapter itself
            request = dataclasses.replace(request, schema=as_schema(request.schema, "predict"))
        return self._adapter().adapt(request)

    def _declaring(
        self,
        capability: type,
        variants: tuple[dict[str, Any], ...],
        shuffle: bool = False,
    ) -> dict[str, Any]:
        """The first way of asking whose source declares ``capability``; else skips."""
        for variant in variants:
            source = self._request_source(FIXED, variant, shuffle)
            _close(source)
            if isinstance(source, capability):
                return variant
        import pytest  # the checks run under pytest; the module imports without it

        pytest.skip(f"no source of the adapter is {capability.__name__}")

    def _width(self, data: Example) -> int:
        return int(flat_rows(self.expected_x(data.x)).shape[1])

    def test_splittable_parts_hold_every_row_once(self) -> None:
        """``split(at, None)``: the rows before ``at``, and the rest."""
        variant = self._declaring(Splittable, _TRAIN)

        def check(data: Example) -> None:
            assume(data.rows >= 2)
            expected, at = flat_rows(self.expected_x(data.x)), max(1, data.rows * 3 // 4)
            source = self._request_source(data, variant)
            assert isinstance(source, Splittable)
            train, val = source.split(at, None)
            try:
                width = expected.shape[1]
                _same_rows(expected[:at], _source_rows(train, width), f"split({at}): training")
                _same_rows(expected[at:], _source_rows(val, width), f"split({at}): validation")
            finally:
                _close(train, val, source)

        self._for_all(check)

    def test_seekable_seek_reads_a_pass_again(self) -> None:
        """``seek(1)`` after three passes: pass 1 again, then pass 2."""
        variant = self._declaring(Seekable, _TRAIN, shuffle=True)

        def check(data: Example) -> None:
            source = self._request_source(data, variant, shuffle=True)
            assert isinstance(source, BatchSourceBase) and isinstance(source, Seekable)
            try:
                dataset, width = source.make_dataset(), self._width(data)
                passes = [_x_rows(_pass(source, dataset), width) for _ in range(3)]
                source.seek(1)
                again = [_x_rows(_pass(source, dataset), width) for _ in range(2)]
            finally:
                _close(source)
            for index, (want, got) in enumerate(zip(passes[1:], again, strict=True), 1):
                assert np.array_equal(want, got), (
                    f"after seek(1), pass {index} differs from the pass {index} read before:\n"
                    f"  before: {want.tolist()}\n  after:  {got.tolist()}"
                )

        self._for_all(check)

    def test_shardable_shards_hold_every_row_once(self) -> None:
        """Over ``count`` shards the real rows are every row once; shards run their steps."""
        variant = self._declaring(Shardable, _TRAIN)

        def check(data: Example) -> None:
            supports = self._supports(data)
            size = data.batch_size if "batch_size" in supports else DEFAULT_BATCH_SIZE
            counts = [count for count in (2, 3) if size % count == 0] or [1]
            expected = flat_rows(self.expected_x(data.x))
            source = self._request_source(data, variant)
            assert isinstance(source, Shardable)
            try:
                for count in counts:
                    width = expected.shape[1]
                    got = [self._shard_rows(source, i, count, width) for i in range(count)]
                    _same_rows(expected, np.concatenate(got), f"{count} shards together")
            finally:
                _close(source)

        self._for_all(check)

    @staticmethod
    def _shard_rows(source: Shardable, index: int, count: int, width: int) -> np.ndarray:
        """The real rows (sample weight not 0) of one shard, checking its steps."""
        dataset, steps = source.shard(index, count, 1)
        batches = _batches(dataset)
        assert len(batches) == steps, (
            f"shard {index} of {count} yielded {len(batches)} batches, announced {steps} steps"
        )
        assert all(len(batch) >= 2 for batch in batches), "shards yield weighted batches"
        rows = [flat_rows(b[0])[flat_rows(b[-1])[:, 0] != 0] for b in batches]
        return np.concatenate(rows) if rows else np.zeros((0, width))

    def test_resumable_restored_pass_continues(self) -> None:
        """Pass 0's state after ``seen`` batches, restored into the next pass, continues it."""
        variant = self._declaring(Resumable, _TRAIN)

        def check(data: Example) -> None:
            source = self._request_source(data, variant)
            assert isinstance(source, BatchSourceBase) and isinstance(source, Resumable)
            try:
                dataset = source.make_dataset()
                first = _pass(source, dataset)
                assume(len(first) >= 2)
                seen = len(first) // 2
                state = source.input_state(0, seen)
                assert state is not None, f"input_state(0, {seen}) after pass 0 is None"
                if isinstance(source, Seekable):
                    source.seek(1)
                source.restore_state(1, seen, state)
                again = _pass(source, dataset)
            finally:
                _close(source)
            width = self._width(data)
            want, got = _x_rows(first[seen:], width), _x_rows(again[seen:], width)
            assert len(again) == len(first) and np.array_equal(want, got), (
                f"restored after {seen} batches, the pass goes on with {got.tolist()}, "
                f"expected {want.tolist()} ({len(again)} batches, expected {len(first)})"
            )

        self._for_all(check)

    def test_paced_source_loses_nothing(self) -> None:
        """``expect(1)``, one batch taken, then ``expect(None)``: nothing read ahead is lost."""
        variant = self._declaring(Paced, _TRAIN)

        def check(data: Example) -> None:
            one_shot = self._is_one_shot(self._input(data))
            source = self._request_source(data, variant)
            assert isinstance(source, BatchSourceBase) and isinstance(source, Paced)
            try:
                dataset, width = source.make_dataset(), self._width(data)
                source.expect(1)
                first = _x_rows(_batches(dataset, most=1), width)
                source.expect(None)
                rest = _x_rows(_batches(dataset), width)
            finally:
                _close(source)
            expected = flat_rows(self.expected_x(data.x))
            got = np.concatenate([first, rest]) if one_shot else rest
            what = "one batch after expect(1), then the rest" if one_shot else "a pass after"
            _same_rows(expected, got, f"{what} (expect(None))")

        self._for_all(check)

    def test_chunked_chunks_hold_every_row_in_order(self) -> None:
        """``chunks()`` yields every row once, in order, with passthrough rows to match."""
        variant = self._declaring(Chunked, _TRAIN + _CHUNKS)

        def check(data: Example) -> None:
            source = self._request_source(data, variant)
            assert isinstance(source, Chunked)
            try:
                parts = list(self._chunk_rows(source.chunks()))
            finally:
                _close(source)
            expected = flat_rows(self.expected_x(data.x))
            got = np.concatenate(parts) if parts else np.zeros((0, expected.shape[1]))
            assert got.shape == expected.shape and np.array_equal(got, expected), (
                describe_order_difference(expected, got, "the chunks")
            )

        self._for_all(check, targets_given=False)

    @staticmethod
    def _chunk_rows(chunks: Iterator[tuple[Any, Any]]) -> Iterator[np.ndarray]:
        for features, passthrough in chunks:
            rows = flat_rows(to_numpy(features))
            if passthrough is not None:
                assert passthrough.num_rows == len(rows), (
                    f"a chunk of {len(rows)} rows has {passthrough.num_rows} passthrough rows"
                )
            yield rows

    def test_checkable_checks_each_batch_before_delivering_it(self) -> None:
        """Every delivered batch was checked first, in order; a raising check stops the pass."""
        variant = self._declaring(Checkable, _TRAIN)

        def check(data: Example) -> None:
            width = self._width(data)
            seen: list[tuple[int, Any]] = []  # copied as given: converted on this thread

            def recording(index: int, batch: Any) -> None:
                seen.append((index, tf.nest.map_structure(np.copy, to_numpy(batch))))

            delivered = self._checked_pass(data, variant, recording)
            assert [index for index, _ in seen] == list(range(len(delivered))), (
                f"checked batches {[index for index, _ in seen]}, delivered {len(delivered)}"
            )
            for (index, checked), batch in zip(seen, delivered, strict=True):
                rows, got = _x_rows([checked], width), _x_rows([batch], width)
                assert np.array_equal(rows, got), (
                    f"batch {index} checked {rows.tolist()}, delivered {got.tolist()}"
                )
            stop = len(delivered) // 2

            def failing(index: int, batch: Any) -> None:
                if index == stop:
                    raise _CheckStop(index)

            before = self._checked_pass(data, variant, failing, expect_stop=True)
            assert len(before) == stop, (
                f"a check raising at batch {stop} let {len(before)} batches through"
            )

        self._for_all(check)

    def _checked_pass(
        self,
        data: Example,
        variant: dict[str, Any],
        check: Callable[[int, Any], None],
        expect_stop: bool = False,
    ) -> list[Any]:
        """One pass of a fresh source with ``check`` installed; the batches delivered."""
        source = self._request_source(data, variant)
        assert isinstance(source, BatchSourceBase) and isinstance(source, Checkable)
        delivered: list[Any] = []
        try:
            source.check_batches(check)
            try:
                for batch in bounded(source.make_dataset()):
                    delivered.append(to_numpy(batch))
            except tf.errors.OpError:
                pass  # the pass stopped by the check's exception (kept for take_error)
            error = source.take_error()
        finally:
            _close(source)
        if expect_stop:
            assert isinstance(error, _CheckStop), f"take_error() returned {error!r}"
        else:
            assert error is None, f"a pass with a check that never raises failed: {error!r}"
        return delivered

    def test_class_countable_counts_the_targets(self) -> None:
        """``count_classes()`` equals the classes counted in the targets."""
        variant = self._declaring(ClassCountable, _TRAIN)

        def check(data: Example) -> None:
            if data.y is not None and data.y.dtype.kind == "f":  # classes: whole numbers
                data = dataclasses.replace(data, y=np.round(data.y))
            source = self._request_source(data, variant)
            assert isinstance(source, ClassCountable)
            try:
                counted = source.count_classes()
            finally:
                _close(source)
            assert data.y is not None
            y = self.expected_y(data.y)
            parts = y.items() if isinstance(y, dict) else [(None, y)]
            want = {key: class_counts(value) for key, value in parts}
            assert counted == want, f"count_classes() is {counted}, the targets hold {want}"

        self._for_all(check, targets_given=True)
