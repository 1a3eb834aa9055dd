"""The building blocks of ``fitpipe.testing.keras_diff``: each difference is named."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fitpipe.testing.keras_diff import (
    Differences,
    assert_close,
    assert_histories_close,
    assert_structures_close,
    kwargs_for_side,
    make_twins,
)


def build() -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def test_structures_name_the_path_the_type_and_the_dtype_that_differ() -> None:
    with pytest.raises(AssertionError) as info:
        assert_structures_close(
            {"a": np.ones(3, "float32"), "b": [1.0, 2.0], "c": np.ones(2)},
            {"a": np.ones(3, "float64"), "b": [1.0, 2.5], "c": [1.0, 1.0]},
            "evaluate",
        )
    text = str(info.value)
    assert "in 3 place(s)" in text
    assert "evaluate['a']: dtype keras float32 vs fitpipe float64" in text
    assert "evaluate['b'][1]: keras 2. vs fitpipe 2.5" in text
    assert "evaluate['c'] type: keras 'ndarray' vs fitpipe 'list'" in text


def test_close_values_pass_and_the_first_differing_index_is_named() -> None:
    assert_close([1.0, 2.0], [1.0, 2.0 + 1e-6], "loss")
    with pytest.raises(AssertionError, match=r"loss: 1 of 3 values differ; first at index \(2,\)"):
        assert_close([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], "loss")
    with pytest.raises(AssertionError, match=r"loss: shape keras \(3,\) vs fitpipe \(2,\)"):
        assert_close([1.0, 2.0, 3.0], [1.0, 2.0], "loss")


def test_histories_of_other_types_are_reported() -> None:
    with pytest.raises(AssertionError, match="fitpipe fit returned dict, not History"):
        assert_histories_close(keras.callbacks.History(), {})


def test_twins_start_with_the_same_weights_and_must_be_new_models() -> None:
    ref, twin = make_twins(build)
    assert ref is not twin
    for r, g in zip(ref.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(r, g)
    model = build()
    with pytest.raises(ValueError, match="new model"):
        make_twins(lambda: model)


def test_each_side_gets_its_own_optimizer() -> None:
    spec = {"optimizer": keras.optimizers.Adam(0.01), "loss": "mse"}
    keras_side, fitpipe_side = kwargs_for_side(spec, "keras"), kwargs_for_side(spec, "fitpipe")
    assert keras_side["optimizer"] is not fitpipe_side["optimizer"]
    assert keras_side["optimizer"].get_config() == fitpipe_side["optimizer"].get_config()
    assert kwargs_for_side(lambda side: {"side": side}, "fitpipe") == {"side": "fitpipe"}


def test_differences_raise_nothing_when_empty() -> None:
    diff = Differences(1e-3, 1e-5)
    diff.raise_if_any()
    diff.add("x", 1, 2)
    with pytest.raises(AssertionError, match=r"x: keras 1\. vs fitpipe 2\."):
        diff.raise_if_any()
