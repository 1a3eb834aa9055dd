"""Batch conversions before a step: absent leaves and specs read in one pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from fitpipe.training.conversions import absent_as_none, present_with_spec


def _leaf(kind: str, rows: int) -> Any:
    if kind == "dense":
        return tf.constant(np.arange(rows * 3, dtype="float32").reshape(rows, 3))
    if kind == "int":
        return tf.constant(np.arange(rows, dtype="int64"))
    if kind == "ragged":
        return tf.ragged.constant([[1.0] * (i % 3) for i in range(rows)], dtype=tf.float32)
    if kind == "sparse":
        return tf.sparse.from_dense(tf.eye(rows, 4))
    if kind == "absent":
        return tf.experimental.Optional.empty(tf.TensorSpec([None], tf.float32))
    return None


_LEAVES = st.sampled_from(["dense", "int", "ragged", "sparse", "absent", "none"])


def _nests(leaf: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(tuple),
            st.lists(inner, min_size=1, max_size=3),
            st.dictionaries(st.sampled_from("abc"), inner, min_size=1),
        ),
        max_leaves=6,
    )


@settings(deadline=None, max_examples=40)
@given(_nests(_LEAVES), st.integers(1, 5))
def test_present_with_spec_is_absent_as_none_then_each_leaf_s_spec(kinds: Any, rows: int) -> None:
    """Whatever the nesting and leaves: the batch and spec of ``tf.nest``'s two passes, in one."""
    data = tf.nest.map_structure(lambda kind: _leaf(kind, rows), kinds)
    present, spec = present_with_spec(data)
    expected = absent_as_none(data)
    tf.nest.assert_same_structure(present, expected)
    for got, want in zip(tf.nest.flatten(present), tf.nest.flatten(expected), strict=True):
        assert got is want
    assert spec == tf.nest.map_structure(
        lambda v: None if v is None else tf.type_spec_from_value(v), expected
    )
    if not any(kind == "absent" for kind in tf.nest.flatten(kinds)):
        assert present is data  # nothing absent: the batch is not packed again
