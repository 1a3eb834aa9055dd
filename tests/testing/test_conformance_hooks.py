"""The kit's optional hooks: ``schema_for`` and ``expected_y`` are used, and can fail a suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, settings

import fitpipe
from fitpipe.testing import AdapterConformanceTests, epoch_rows
from fitpipe.testing import strategies as fs


class _ArrowSuite(AdapterConformanceTests):
    """An Arrow table suite run by hand (not collected: its name lacks ``Test``)."""

    adapter_name = "arrow"
    max_examples = 3

    def make_input(self, x: np.ndarray, y: Any, sample_weight: Any, batch_size: int) -> Any:
        return fs.arrow_table(x, y, sample_weight)

    def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> fitpipe.Schema | None:
        return fs.columnar_schema(x, y, sample_weight)


class _ExtraFeature(_ArrowSuite):
    """Declares the first feature column twice: rows no longer match ``x``."""

    def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> fitpipe.Schema | None:
        schema = fs.columnar_schema(x, y, sample_weight)
        features = [f"x{i}" for i in range(x.shape[1])] + ["x0"]
        return fitpipe.Schema(features, schema.targets, schema.sample_weight)


class _NoSchema(_ArrowSuite):
    def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> fitpipe.Schema | None:
        return None


class _ColumnTargets(_ArrowSuite):
    """Targets as a list of one column: the adapter delivers them as ``(rows, 1)``."""

    max_examples = None  # the profile's: some examples must draw targets (y may be None)

    def schema_for(self, x: np.ndarray, y: Any, sample_weight: Any) -> fitpipe.Schema | None:
        schema = fs.columnar_schema(x, y, sample_weight)
        targets = None if y is None else ["y"]
        return fitpipe.Schema(schema.features, targets, schema.sample_weight)


class _ColumnTargetsStated(_ColumnTargets):
    def expected_y(self, y: np.ndarray) -> Any:
        return y[:, None]


@pytest.fixture
def no_shrinking() -> Iterator[None]:
    """Failing checks stop at their first failing example (these tests expect failures).

    Derandomized, so whether an example with targets is drawn does not vary between runs.
    """
    before = settings._current_profile  # restored so other tests keep the suite's profile
    settings.register_profile(
        "fitpipe-hooks-no-shrink",
        settings(),
        phases=(Phase.explicit, Phase.generate),
        derandomize=True,
    )
    settings.load_profile("fitpipe-hooks-no-shrink")
    try:
        yield
    finally:
        settings.load_profile(before or "default")


@pytest.mark.usefixtures("no_shrinking")
def test_schema_for_is_passed_and_checked() -> None:
    _ArrowSuite().test_order_without_shuffle()
    with pytest.raises(AssertionError, match="rows differ"):
        _ExtraFeature().test_order_without_shuffle()


@pytest.mark.usefixtures("no_shrinking")
def test_without_a_schema_the_columnar_adapter_fails_the_kit() -> None:
    # Without a schema a table is one 2-D input of all its columns beside `y` (as Keras
    # reads it): the target and weight columns the kit's tables hold are read as features
    # too, and a table without `y` still needs a schema to be trained on.
    with pytest.raises(Exception) as info:  # one error, or a group of the examples' errors
        _NoSchema().test_order_without_shuffle()
    errors = getattr(info.value, "exceptions", (info.value,))
    text = " ".join(str(error) for error in errors)
    assert "rows differ" in text or "needs a `schema` for Table" in text, text


def test_unsupported_arguments_are_checked_with_the_schema() -> None:
    _ArrowSuite().test_unsupported_arguments_rejected()


@pytest.mark.usefixtures("no_shrinking")
def test_expected_y_states_a_reshaped_target() -> None:
    with pytest.raises(AssertionError, match="rank of `y`"):
        _ColumnTargets().test_element_spec()
    _ColumnTargetsStated().test_element_spec()
    _ColumnTargetsStated().test_order_without_shuffle()


def test_columnar_forms_carry_their_schema_and_build_fresh_inputs() -> None:
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    y = np.arange(7, dtype=np.int64)
    sw = fs.weight_of_rows(x)
    arrow, parquet = fs.equivalent_forms(x, y, sw, 3, names=("arrow", "parquet"))
    for form in (arrow, parquet):
        assert form.schema == fs.columnar_schema(x, y, sw)
        (first,), kwargs = form.build()
        (second,), _ = form.build()
        assert first is not second and kwargs["schema"] is form.schema
        with fitpipe.adapt(first, **kwargs) as pipeline:
            assert pipeline.adapter == form.adapter
            got = epoch_rows(pipeline)
        for part, want in zip(got, (x, y, sw), strict=True):
            np.testing.assert_array_equal(part, np.asarray(want, np.float64).reshape(7, -1))
    (one,), _ = parquet.build()
    (two,), _ = parquet.build()
    assert one != two and os.path.dirname(os.path.dirname(one)) == os.path.dirname(
        os.path.dirname(two)
    )
    assert fitpipe.registry.find(one).name == "parquet"
