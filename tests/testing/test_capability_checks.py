"""The kit checks every capability a source declares: a sound source passes, a broken one fails.

An adapter of this module makes a batch source with all eight capabilities; each can be
broken on purpose. The kit's capability checks are run by hand on it (the suites' names lack
``Test``, so pytest does not collect them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from hypothesis import Phase, settings

import fitpipe
from fitpipe.adapters import AdaptRequest, BatchSourceBase, class_counts
from fitpipe.testing import AdapterConformanceTests

CAPABILITIES = {
    "split": "test_splittable_parts_hold_every_row_once",
    "seek": "test_seekable_seek_reads_a_pass_again",
    "shard": "test_shardable_shards_hold_every_row_once",
    "restore_state": "test_resumable_restored_pass_continues",
    "expect": "test_paced_source_loses_nothing",
    "chunks": "test_chunked_chunks_hold_every_row_in_order",
    "count_classes": "test_class_countable_counts_the_targets",
    "check_batches": "test_checkable_checks_each_batch_before_delivering_it",
}


@dataclasses.dataclass
class Rows:
    """The input of this module's adapter: rows, and the capability to break (if any)."""

    x: np.ndarray
    y: np.ndarray | None
    sample_weight: np.ndarray | None
    batch_size: int
    broken: str | None = None
    one_shot: bool = False


class RowsSource(BatchSourceBase):
    """Batches of :class:`Rows` in an order of each pass; every capability, some broken."""

    def __init__(self, rows: Rows, start: int = 0, stop: int | None = None) -> None:
        self.data = rows
        self.start, self.stop = start, len(rows.x) if stop is None else stop
        self.rows = self.stop - self.start
        self.next_pass = 0
        self.position = 0  # batches of the pass read (one-shot inputs go on from here)
        self.pending: tuple[int, int, Any] | None = None
        self.wanted = math.inf  # batches the trainer takes from this iteration (Paced)
        self.check: Callable[[int, Any], None] | None = None  # Checkable
        self.error: BaseException | None = None

    def _parts(self, order: np.ndarray) -> tuple[np.ndarray, ...]:
        data = self.data
        return tuple(p[order] for p in (data.x, data.y, data.sample_weight) if p is not None)

    def _order(self, pass_index: int) -> np.ndarray:
        """Rows of the pass: rotated by the pass, so each pass has its own order."""
        indices = np.arange(self.start, self.stop)
        return indices if self.data.one_shot else np.roll(indices, pass_index)

    def _epoch(self) -> Iterator[tuple[np.ndarray, ...]]:
        pass_index, self.next_pass = self.next_pass, self.next_pass + 1
        first = 0
        if self.pending is not None and self.pending[0] == pass_index:
            first, state = self.pending[1], self.pending[2]
            pass_index = state if self.data.broken != "restore_state" else pass_index
            self.pending = None
        order = self._order(pass_index)
        size = self.data.batch_size
        if not self.data.one_shot:
            self.position = 0
        for _ in range(first):  # placeholders of the batches the trainer skips
            yield tuple(np.zeros_like(p) for p in self._parts(order[:size]))
        self.position, handed = max(self.position, first), 0
        while self.position * size < len(order) and handed < self.wanted:
            batch = self._parts(order[self.position * size : (self.position + 1) * size])
            if not self._checked(self.position, batch):
                return
            self.position, handed = self.position + 1, handed + 1
            yield batch

    def _checked(self, index: int, batch: tuple[np.ndarray, ...]) -> bool:
        """Runs the check (broken: not on the last batch); False when it raised."""
        last = (index + 1) * self.data.batch_size >= self.rows
        if self.check is None or (self.data.broken == "check_batches" and last):
            return True
        try:
            self.check(index, batch)
        except Exception as err:
            self.error = err
            return False
        return True

    def check_batches(self, check: Callable[[int, Any], None] | None) -> None:
        self.check = check

    def take_error(self) -> BaseException | None:
        error, self.error = self.error, None
        return error

    def make_dataset(self) -> tf.data.Dataset:
        first = self._parts(np.arange(1))
        signature = tuple(tf.TensorSpec((None, *p.shape[1:]), p.dtype) for p in first)
        return tf.data.Dataset.from_generator(self._epoch, output_signature=signature)

    def count_batches(self) -> int | None:
        return -(-self.rows // self.data.batch_size)

    def split(self, at: int, validation_batch_size: int | None) -> tuple[Any, Any]:
        overlap = 1 if self.data.broken == "split" else 0
        return RowsSource(self.data, 0, at), RowsSource(self.data, at - overlap)

    def seek(self, pass_index: int) -> None:
        if self.data.broken != "seek":
            self.next_pass = pass_index

    def shard(self, index: int, count: int, replicas: int) -> tuple[tf.data.Dataset, int]:
        every = self.data.broken == "shard"
        mine = np.arange(self.rows) if every else np.arange(index, self.rows, count)
        parts = self._parts(mine)
        weights = np.ones(len(mine), np.float32) if len(parts) < 3 else parts[2]
        dataset = tf.data.Dataset.from_tensor_slices((*parts[:2], weights))
        batches = -(-len(mine) // self.data.batch_size)
        return dataset.batch(self.data.batch_size), batches

    def input_state(self, pass_index: int, seen: int) -> Any:
        return pass_index  # the pass whose order the restored pass continues

    def restore_state(self, pass_index: int, seen: int, state: Any) -> None:
        self.pending = (pass_index, seen, state)

    def expect(self, batches: int | None) -> None:
        """Hands over no more than ``batches``; broken, it loses a batch it read ahead."""
        self.wanted = math.inf if batches is None else batches
        if batches is None and self.data.broken == "expect":
            self.position += 1

    def chunks(self) -> Iterator[tuple[Any, Any]]:
        stop = self.rows - 1 if self.data.broken == "chunks" else self.rows
        for begin in range(0, stop, 3):
            end = min(begin + 3, stop)
            yield self.data.x[begin:end], pa.table({"id": np.arange(begin, end)})

    def count_classes(self) -> dict[Any, dict[int, int]]:
        assert self.data.y is not None
        counts = class_counts(self.data.y)
        if self.data.broken == "count_classes":
            counts = {c: n + 1 for c, n in counts.items()}
        return {None: counts}


class RowsAdapter:
    """Takes :class:`Rows`."""

    name = "rows-capabilities"
    accepts = "Rows"
    supports = frozenset({"batch_size"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Rows)

    def adapt(self, request: AdaptRequest) -> RowsSource:
        rows = request.x
        return RowsSource(dataclasses.replace(rows, batch_size=request.batch_size or 32))


def suite(broken: str | None, one_shot: bool = False) -> AdapterConformanceTests:
    class _Suite(AdapterConformanceTests):
        adapter_name = RowsAdapter.name
        max_examples = 8

        def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
            return Rows(x, y, sample_weight, batch_size, broken, one_shot)

    _Suite.one_shot = one_shot
    return _Suite()


@pytest.fixture
def registered(clean_registry: Callable[[str], None]) -> None:
    fitpipe.register_adapter(RowsAdapter(), priority=1000)
    clean_registry(RowsAdapter.name)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("one_shot", [False, True])
@pytest.mark.parametrize("capability", sorted(CAPABILITIES))
def test_a_sound_source_passes_each_capability_check(capability: str, one_shot: bool) -> None:
    if one_shot and capability != "expect":
        pytest.skip("only pacing depends on an input read once")
    getattr(suite(None, one_shot), CAPABILITIES[capability])()


@pytest.fixture
def no_shrinking() -> Iterator[None]:
    """Failing checks stop at their first failing example (these tests expect failures)."""
    before = settings._current_profile  # restored so other tests keep the suite's profile
    settings.register_profile(
        "fitpipe-capabilities-no-shrink",
        settings(),
        phases=(Phase.explicit, Phase.generate),
        derandomize=True,
    )
    settings.load_profile("fitpipe-capabilities-no-shrink")
    try:
        yield
    finally:
        settings.load_profile(before or "default")


@pytest.mark.usefixtures("registered", "no_shrinking")
@pytest.mark.parametrize("capability", sorted(CAPABILITIES))
def test_a_broken_capability_fails_its_check(capability: str) -> None:
    with pytest.raises(AssertionError):
        getattr(suite(capability, one_shot=capability == "expect"), CAPABILITIES[capability])()
