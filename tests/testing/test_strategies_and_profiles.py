"""The public strategies produce what they promise; the profiles load by environment."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings

import fitpipe
from fitpipe.testing import load_profile, register_profiles
from fitpipe.testing import strategies as fs


@given(fs.structured_examples())
def test_nested_structures_share_their_row_count(drawn: tuple[object, int]) -> None:
    structure, rows = drawn
    leaves = tf.nest.flatten(structure)
    assert leaves and all(leaf.shape[0] == rows for leaf in leaves)


@given(fs.row_counts(1, 8).flatmap(fs.array_likes))
def test_array_likes_convert_to_their_array(drawn: tuple[object, np.ndarray]) -> None:
    value, array = drawn
    np.testing.assert_array_equal(np.asarray(value), array)
    assert fitpipe.registry.find(value).name == "numpy"


@settings(max_examples=5)
@given(fs.presented_examples())
def test_presented_examples_build_inputs_for_their_adapter(
    drawn: tuple[fs.Example, fs.Form],
) -> None:
    _, form = drawn
    args, _ = form.build()
    assert fitpipe.registry.find(args[0]).name == form.adapter


def test_forms_extension_point() -> None:
    assert fs.form_names() == (
        "arrays", "dict", "list", "tensor", "generator", "pydataset", "tf.data", "arrow",
        "parquet",
    )  # fmt: skip
    with pytest.raises(ValueError, match="already registered"):
        fs.register_form("arrays", fs.FORM_FACTORIES["arrays"])
    x = np.zeros((3, 2), np.float32)
    (form,) = fs.equivalent_forms(x, None, None, 2, names=("tf.data",))
    assert form.adapter == "tf.data"


@pytest.mark.parametrize(("env", "examples"), [("ci", 15), ("dev", 100), (None, 100)])
def test_load_profile_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str | None, examples: int
) -> None:
    before = settings._current_profile  # restored so other tests keep the suite's profile
    if env is None:
        monkeypatch.delenv("FITPIPE_HYPOTHESIS_PROFILE", raising=False)
    else:
        monkeypatch.setenv("FITPIPE_HYPOTHESIS_PROFILE", env)
    try:
        assert load_profile() == (env or "dev")
        assert settings().max_examples == examples
        assert settings().deadline is None
    finally:
        register_profiles()
        settings.load_profile(before)
