"""The batch value checks and a custom step without a loss, under MirroredStrategy.

Under a strategy the batches were split over the replicas before any check could see them:
``fit(check="error")`` trained a NaN batch into NaN weights, ``check="warn"`` said nothing,
and a label outside the model's classes went unchecked, for ``tf.data``, generators and
``PyDataset`` (training and validation data). A custom ``train_step`` model compiled without
a loss failed in the build of the strategy's state ("No loss to compute"); an optimizer
made outside the strategy's scope, with TensorFlow's "Mixing different ... objects".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from dist_subprocess import result, start

FORMS = ("tf.data", "generator", "PyDataset")
WHERE = ("training", "validation")


@pytest.fixture(scope="module")
def runs() -> Any:
    return result(start("dist_checks_script.py"), timeout=400)


def test_two_replicas_were_used(runs: Any) -> None:
    assert runs["replicas"] == 2


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("form", FORMS)
def test_a_nan_batch_stops_fit_before_its_step(runs: Any, form: str, where: str) -> None:
    run = runs[f"{form} nan check=error {where}"]
    assert run["raised"] == "DataCheckError", run
    assert run["finite"], run


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("form", FORMS)
def test_a_nan_batch_is_warned_of_once(runs: Any, form: str, where: str) -> None:
    run = runs[f"{form} nan check=warn {where}"]
    assert run["raised"] is None and run["warnings"] == 1, run


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("form", FORMS)
def test_a_label_outside_the_classes_is_refused(runs: Any, form: str, where: str) -> None:
    run = runs[f"{form} label check=False {where}"]
    assert run["raised"] == "FitpipeValueError", run
    assert "label 7" in run["message"], run
    assert run["finite"], run


def test_a_custom_step_compiled_without_a_loss_trains_as_in_keras(runs: Any) -> None:
    got, want = runs["own step"]["fitpipe"], runs["own step"]["keras"]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_an_optimizer_made_outside_the_scope_is_named(runs: Any) -> None:
    """Keras fails with TensorFlow's "Mixing different tf.distribute.Strategy objects"."""
    text = runs["outside the scope"]
    assert text.startswith("FitpipeValueError: `fit` cannot build the optimizer"), text
    assert "Call `compile` inside `with strategy.scope():`" in text, text
