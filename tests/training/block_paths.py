"""What the tests of the block path share: counting its cursors, its threads, the comparison.

The block path (``limits.STREAM_IN_BLOCKS``) must train exactly what the ``tf.data`` path
trains; ``test_block_cursor.py`` (streamed Parquet) and ``test_generator_blocks.py``
(batches from Python) run both and compare them with :func:`assert_same_results`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fitpipe.training import block_cursor


class BlockSpy:
    """Counts the block cursors made while inside (the block path taken)."""

    def __init__(self) -> None:
        self.made = 0

    def __enter__(self) -> BlockSpy:
        original = block_cursor.BlockCursor.__init__

        def counting(cursor: Any, *args: Any, **kwargs: Any) -> None:
            self.made += 1
            original(cursor, *args, **kwargs)

        self._patch = pytest.MonkeyPatch()
        self._patch.setattr(block_cursor.BlockCursor, "__init__", counting)
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.undo()


def reading_threads(*names: str) -> list[threading.Thread]:
    """The live threads of those names (default: the block cursors' reading threads)."""
    wanted = names or ("fitpipe-blocks",)
    return [t for t in threading.enumerate() if t.name in wanted and t.is_alive()]


def assert_same_results(blocked: Sequence[Any], plain: Sequence[Any]) -> None:
    """``(history, evaluate, predict, weights, ...)`` of the two paths are equal."""
    assert plain[0].keys() == blocked[0].keys()
    for key in plain[0]:
        np.testing.assert_allclose(blocked[0][key], plain[0][key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(blocked[1], plain[1], rtol=1e-5)
    np.testing.assert_allclose(blocked[2], plain[2], rtol=1e-5)
    for got, want in zip(blocked[3], plain[3], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
