"""The NumPy value check of a block or batch finds what an element-by-element check finds.

``Rule.numpy_problem`` first reads a leaf in one pass with no temporary (a floating sum,
labels' minimum and maximum) and looks element by element only when that pass cannot rule
a problem out. The property: for any leaf, its answer is the first bad value an
element-by-element check finds, or None when there is none, whatever the dtype, the values'
sizes (sums that overflow) and where NaN and infinities lie.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fitpipe.training.check_rules import Rule

FLOATS = ("float16", "float32", "float64")
INTEGERS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")

RULES = [
    Rule(part=2, leaf=0, name="sample weights"),
    Rule(part=0, leaf=0, name="inputs", finite="error"),
    Rule(part=1, leaf=0, name="labels", classes=5, loss="sparse"),
    Rule(part=1, leaf=0, name="labels", classes=300, loss="sparse"),  # past uint8's range
    Rule(part=1, leaf=0, name="labels", classes=5, ignore=-1, loss="sparse"),
]


def _first_bad(flat: np.ndarray, rule: Rule) -> float | None:
    """The first value of ``flat`` that breaks ``rule``, element by element."""
    for value in flat.tolist():
        if rule.finite is not None or rule.part == 2:
            bad = not np.isfinite(value)
        else:
            bad = not (0 <= value < rule.classes) and value != rule.ignore  # by value
        if bad:
            return float(value)
    return None


@st.composite
def leaves(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from((*FLOATS, *INTEGERS, "bool")))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    if dtype == "bool":  # (labels of a binary task: compared as 0 and 1)
        return draw(hnp.arrays(dtype, shape))
    if dtype in INTEGERS:
        low = max(-2, int(np.iinfo(dtype).min))
        return draw(hnp.arrays(dtype, shape, elements=st.integers(low, 7)))
    info = np.finfo(dtype)
    near_max = st.floats(float(info.max) / 4, float(info.max), width=info.bits)
    values = st.one_of(
        st.floats(-1, 6, width=info.bits),
        near_max,  # sums overflow to infinity with every value finite
        st.sampled_from([np.nan, np.inf, -np.inf, 0.5, 4.0, -0.0]),
    )
    return draw(hnp.arrays(dtype, shape, elements=values))


@given(leaf=leaves(), rule=st.sampled_from(RULES))
def test_the_numpy_check_finds_the_first_bad_value_or_none(leaf: np.ndarray, rule: Rule) -> None:
    got = rule.numpy_problem(leaf)
    want = _first_bad(leaf.reshape(-1), rule)
    if want is None or got is None:
        assert got == want
    else:
        np.testing.assert_equal(got, want)  # NaN equals NaN here


def test_a_batch_is_flattened_once_a_part_whatever_its_rules(monkeypatch: Any) -> None:
    """A rule per input must not flatten the batch once per rule (100 inputs: 100 flattens)."""
    import tensorflow as tf

    from fitpipe.training.batch_checks import BatchChecks
    from fitpipe.training.check_rules import finite_rules, weight_rules

    x_spec = {f"c{i}": tf.TensorSpec([None, 1], tf.float32) for i in range(30)}
    spec = (x_spec, tf.TensorSpec([None, 1], tf.float32), tf.TensorSpec([None], tf.float32))
    rules = finite_rules(spec, "error") + weight_rules(spec[2])
    assert len(rules) == 32
    batch = (
        {name: np.zeros((4, 1), np.float32) for name in x_spec},
        np.zeros((4, 1), np.float32),
        np.ones(4, np.float32),
    )
    calls: list[int] = []
    original = tf.nest.flatten

    def counted(structure: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(structure, *args, **kwargs)

    monkeypatch.setattr(tf.nest, "flatten", counted)
    check = BatchChecks(rules, "fit").in_python(0)
    check(0, batch)
    assert check.clean(batch)
    assert len(calls) <= 2 * 3  # once per part, in each of the two passes
    batch[0]["c7"][2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check(1, batch)
