"""The kit reads an epoch up to a bound: a source that does not end fails at once, worded.

``fitpipe.testing.epoch_batches`` (and so every check of the conformance kit) reads at most
``num_batches`` batches of an epoch, else ``EPOCH_BATCH_LIMIT``; a pipeline that says it never
ends and counts nothing is refused unread. Before, the kit read such a source for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import fitpipe
import fitpipe.testing
from fitpipe.adapters import BatchSource
from fitpipe.errors import DataMismatchError
from fitpipe.testing import AdapterConformanceTests, epoch_batches


class Reader:
    """Rows a batch source reads, repeated for ever; ``count`` and ``finite`` as it says."""

    def __init__(self, parts: tuple[Any, ...], batch_size: int, count: str, finite: bool):
        self.parts, self.batch_size, self.count, self.finite = parts, batch_size, count, finite


class EndlessAdapter:
    name = "test-endless"
    accepts = "a test Reader"
    supports = frozenset({"steps"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Reader)

    def adapt(self, request: Any) -> BatchSource:
        reader = request.x
        dataset = tf.data.Dataset.from_tensor_slices(reader.parts).batch(reader.batch_size)
        batches = -(-len(reader.parts[0]) // reader.batch_size)
        return BatchSource(
            make_dataset=lambda: dataset.repeat(),
            count_batches=lambda: batches if reader.count == "known" else None,
            finite=reader.finite,
        )


def suite(count: str, finite: bool) -> AdapterConformanceTests:
    class _Suite(AdapterConformanceTests):
        adapter_name = EndlessAdapter.name
        max_examples = 2

        def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
            parts = tuple(p for p in (x, y, sample_weight) if p is not None)
            return Reader(parts, batch_size, count, finite)

    return _Suite()


@pytest.fixture
def register(clean_registry: Callable[[str], None]) -> None:
    fitpipe.register_adapter(EndlessAdapter(), priority=1000)


CASES = [
    ("known", False, r"it gave more than \d+ batches \(its `num_batches`\) and says it never ends"),
    ("unknown", False, r"it says it never ends \(its source's `finite` is False\)"),
    ("known", True, r"it gave more than \d+ batches \(its `num_batches`\)\. An epoch ends"),
    ("unknown", True, r"it gave more than 40 batches \(EPOCH_BATCH_LIMIT\)\. An epoch ends"),
]


@pytest.mark.usefixtures("register")
@pytest.mark.parametrize(("count", "finite", "problem"), CASES)
@pytest.mark.parametrize("check", ["test_two_pipelines_open_at_once", "test_num_batches"])
def test_the_kit_fails_a_source_that_does_not_end_at_once(
    count: str, finite: bool, problem: str, check: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fitpipe.testing, "EPOCH_BATCH_LIMIT", 40)
    expected = (
        r"did not end: `epoch_batches` cannot read one epoch of the pipeline of the adapter "
        rf"'test-endless': {problem}.*`fit` refuses an input that never ends without "
        r"`steps_per_epoch`.*no `\.repeat\(\)`"
    )
    with pytest.raises(AssertionError, match=expected):
        getattr(suite(count, finite), check)()


@pytest.mark.usefixtures("register")
def test_epoch_batches_reads_up_to_the_bound_asked() -> None:
    reader = Reader((np.arange(6, dtype="float32"),), 2, "unknown", False)
    with fitpipe.adapt(reader) as pipeline:
        with pytest.raises(DataMismatchError, match=r"gave more than 4 batches \(`max_batches`"):
            epoch_batches(pipeline, max_batches=4)
    with fitpipe.adapt(reader, steps=3) as pipeline:  # adapt's steps end each epoch
        assert len(epoch_batches(pipeline)) == 3
