"""``train_on_batch`` and ``test_on_batch`` under MirroredStrategy (2 logical CPUs) equal Keras'.

Keras' own methods give every replica the whole batch; fitpipe's results (losses, metrics,
weighted metrics, the weights after) are the same for batches that split evenly over the
replicas and for those that do not (1 row leaves one replica nothing), with and without
sample weights, on a model whose metrics and optimizer no step has built yet (a first
``train_on_batch`` without weights failed to feed a placeholder of its replicated step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from dist_subprocess import result, start

RTOL, ATOL = 1e-5, 1e-6
CASES = [f"{rows} weighted={weighted}" for rows in range(1, 6) for weighted in (False, True)]


@pytest.fixture(scope="module")
def runs() -> Any:
    return result(start("dist_on_batch_script.py"), timeout=400)


def test_two_replicas_were_used(runs: Any) -> None:
    assert runs["replicas"] == 2


@pytest.mark.parametrize("case", CASES)
def test_on_batch_results_match_keras_under_the_same_strategy(runs: Any, case: str) -> None:
    ours, keras_run = runs[case]["fitpipe"], runs[case]["keras"]
    assert "error" not in keras_run, keras_run
    assert "error" not in ours, ours
    assert sorted(ours) == sorted(keras_run) == ["test", "test_list", "train", "train_list"]
    for call in ("test", "train"):  # dicts: same keys, same values
        assert list(ours[call]) == list(keras_run[call]) == ["accuracy", "loss", "w_acc"]
        for key, value in ours[call].items():
            np.testing.assert_allclose(value, keras_run[call][key], RTOL, ATOL, err_msg=key)
    for call in ("train_list", "test_list"):  # lists, in the order of the model's metrics
        np.testing.assert_allclose(ours[call], keras_run[call], RTOL, ATOL, err_msg=call)


@pytest.mark.parametrize("case", CASES)
def test_weights_after_the_steps_match_keras(runs: Any, case: str) -> None:
    # Two steps of SGD(0.5): a gradient averaged over uneven replica shares would differ.
    assert max(runs[case]["weights"]) < 1e-5
