"""Large arrays fitpipe copies for itself never come from NumPy's allocator.

NumPy advises its large buffers for transparent huge pages; where the kernel compacts memory
to fault those in, each fresh one cost up to a second of system time (``benchmarks/RESULTS.md``,
eighteenth and nineteenth sessions). fitpipe's own copies (held rows, joined rows,
predictions joined over calls) go into mapped memory (``columnar.aligned_empty``), which
NumPy's allocator never sees. NumPy reports its allocations to ``tracemalloc``, so the peak
of traced memory while fitpipe copies an array shows whether a copy went through NumPy.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import keras
import numpy as np
import pytest

import fitpipe
from fitpipe import limits
from fitpipe.adapters import concat_rows
from fitpipe.adapters.row_blocks import take_rows
from fitpipe.columnar import convert, join_rows
from fitpipe.pipeline import arrays

#: Buffers from this size are mapped in these tests (the default is 32 MiB).
MAPPED = 1 << 20
ROWS, WIDTH = 4096, 256  # 4 MiB of float32


@pytest.fixture(autouse=True)
def _small_mapped_buffers() -> Iterator[None]:
    with mock.patch.object(convert, "MAPPED_BYTES", MAPPED):
        yield


def _numpy_peak(work: Callable[[], Any]) -> int:
    """Bytes of traced memory (NumPy's buffers among them) at the peak of ``work``."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak - start


def _rows(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((ROWS, WIDTH), dtype=np.float32)


@pytest.mark.parametrize("layout", ["c", "fortran", "offset"])
def test_holding_a_callers_array_copies_it_outside_numpy(layout: str) -> None:
    x = _rows()
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "offset":
        x = np.random.default_rng(0).standard_normal(ROWS * WIDTH + 1, dtype=np.float32)
        x = x[1:].reshape(ROWS, WIDTH)
    assert _numpy_peak(lambda: arrays._hold(x)) < x.nbytes // 4


def test_joined_rows_and_blocks_are_written_outside_numpy() -> None:
    parts = [_rows(seed) for seed in range(3)]
    assert _numpy_peak(lambda: join_rows(parts)) < parts[0].nbytes // 4
    chunks = [(part, part[:, :1]) for part in parts]
    assert _numpy_peak(lambda: concat_rows(chunks)) < parts[0].nbytes // 4


def test_predictions_joined_over_calls_are_written_outside_numpy() -> None:
    inputs = keras.Input((WIDTH,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Identity()(inputs)))
    trainer.compile("sgd", "mse", steps_per_execution=2)
    x = _rows()
    trainer.predict(x[:256], batch_size=64, verbose=0)  # traced and compiled before measuring
    out = []
    peak = _numpy_peak(lambda: out.append(trainer.predict(x, batch_size=64, verbose=0)))
    np.testing.assert_array_equal(out[0], x)
    assert peak < x.nbytes // 4


def test_rows_gathered_in_blocks_are_written_outside_numpy() -> None:
    # np.take(..., out=) buffers its result in a temporary as large as `out` (mode "raise"):
    # blocks of NumPy rows over the in-memory limit, and a shuffle buffer's reorder of narrow
    # leaves, gathered through it
    x = _rows()
    narrow = x.reshape(-1, 8)  # 32 bytes a row: NumPy's gather, not TensorFlow's
    order = np.random.default_rng(0).permutation(len(narrow))
    assert _numpy_peak(lambda: take_rows((narrow,), order)) < x.nbytes // 4
    y = x[:, :1].copy()
    inputs = keras.Input((WIDTH,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse")
    with mock.patch.object(limits, "RESIDENT_BYTES_LIMIT", MAPPED):
        trainer.fit(x, y, batch_size=64, epochs=1, verbose=0)  # traced before measuring
        peak = _numpy_peak(lambda: trainer.fit(x, y, batch_size=64, epochs=1, verbose=0))
    assert peak < x.nbytes // 4


def test_a_column_major_array_is_fingerprinted_where_it_lies() -> None:
    # A pandas frame's values are column-major; the pre-flight fingerprint copied them
    # row-major (through NumPy) at every `fit`
    x = np.asfortranarray(_rows())
    y = x[:, :1].copy()
    inputs = keras.Input((WIDTH,))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse")
    trainer.fit(x, y, batch_size=64, epochs=1, verbose=0)  # traced before measuring
    assert _numpy_peak(lambda: trainer.fit(x, y, batch_size=64, epochs=1, verbose=0)) < (
        x.nbytes // 4
    )
