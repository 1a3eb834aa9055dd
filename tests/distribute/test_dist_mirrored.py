"""MirroredStrategy over two logical CPU devices (in a subprocess): same results as one device.

The model and its optimizer are created under the strategy's scope; fitpipe runs its step on
both replicas. With SGD, ``shuffle=False`` and global batches that split evenly, History,
``evaluate`` and ``predict`` equal the one-device run and Keras' own ``fit`` under the same
strategy, within float tolerance (the replicas sum half-batch gradients).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dist_subprocess import result, start

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("mirrored") / "parquet"
    return result(start("dist_mirrored_script.py", str(folder)), timeout=300)


def _close(a: dict[str, list[float]], b: dict[str, list[float]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_two_replicas_were_used(runs: Any) -> None:
    assert runs["devices"] == 2


def test_fit_history_matches_one_device(runs: Any) -> None:
    _close(runs["arrays_mirrored"]["history"], runs["arrays_one"]["history"])
    assert len(runs["arrays_mirrored"]["history"]["val_loss"]) == 3


def test_fit_evaluate_predict_match_keras_under_the_same_strategy(runs: Any) -> None:
    ours, keras_run = runs["arrays_mirrored"], runs["arrays_keras_mirrored"]
    _close(ours["history"], keras_run["history"])
    _close(
        {k: [v] for k, v in ours["evaluate"].items()},
        {k: [v] for k, v in keras_run["evaluate"].items()},
    )
    np.testing.assert_allclose(ours["predict"], keras_run["predict"], rtol=RTOL, atol=ATOL)


def test_predict_returns_every_row_in_order(runs: Any) -> None:
    ours, one = runs["arrays_mirrored"]["predict"], runs["arrays_one"]["predict"]
    assert len(ours) == 60
    np.testing.assert_allclose(ours, one, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("source", ["arrow", "parquet"])
def test_columnar_sources_sharded_at_the_source_match_one_device(runs: Any, source: str) -> None:
    _close(runs[f"{source}_mirrored"]["history"], runs[f"{source}_one"]["history"])


@pytest.mark.parametrize("source", ["arrow", "parquet"])
def test_one_worker_splits_columnar_batches_as_keras_splits_arrays(runs: Any, source: str) -> None:
    # The last batch (5 of 37 rows) was padded to 8 with zero-weight rows, which counted in
    # the unweighted `mae` and in the loss's mean: History, evaluate and weights moved.
    ours, keras_run = runs[f"uneven_{source}"], runs["uneven_keras"]
    _close(ours["history"], keras_run["history"])
    _close(
        {k: [v] for k, v in ours["evaluate"].items()},
        {k: [v] for k, v in keras_run["evaluate"].items()},
    )


def test_batches_of_fewer_rows_than_replicas_are_refused(runs: Any) -> None:
    # A replica given no rows adds a loss of 0 to the average: the step trained at half its
    # gradient, silently (Keras fails inside its step).
    by_size, by_rows = runs["too_few_rows"]
    assert by_size.startswith(
        "FitpipeValueError: `fit` cannot train on batches of 1 row over 2 replicas."
    )
    assert "Pass a `batch_size` of at least 2" in by_size
    assert "with at least 2 rows of data" in by_rows and "batch_size=32" in by_rows


def test_results_are_not_trivially_equal(runs: Any, tmp_path: Path) -> None:
    losses = runs["arrays_one"]["history"]["loss"]
    assert losses[0] > 2 * losses[-1]  # training moved: the comparisons above can fail


def test_on_batch_methods_match_keras_under_the_same_strategy(runs: Any) -> None:
    ours = runs["arrays_mirrored"]["on_batch"]
    keras_run = runs["arrays_keras_mirrored"]["on_batch"]
    one = runs["arrays_one"]["on_batch"]
    for mode in ("train", "test"):
        for key, value in ours[mode].items():
            np.testing.assert_allclose(value, keras_run[mode][key], rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(value, one[mode][key], rtol=RTOL, atol=ATOL)
    # Keras 3.15's own predict_on_batch under MirroredStrategy returns every row once per
    # replica (20 rows here); fitpipe splits the batch and returns each row once.
    assert len(ours["predict"]) == 10
    np.testing.assert_allclose(ours["predict"], one["predict"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("form", ["predistributed", "from_function"])
def test_a_dataset_distributed_by_the_strategy_trains_as_in_keras(runs: Any, form: str) -> None:
    ours, keras_run = runs[form], runs[f"{form}_keras"]
    _close(ours["history"], keras_run["history"])
    assert len(ours["history"]["loss"]) == 2
    _close(
        {k: [v] for k, v in ours["evaluate"].items()},
        {k: [v] for k, v in keras_run["evaluate"].items()},
    )
    # Predictions come back replica by replica; compared as sorted values.
    np.testing.assert_allclose(ours["predict"], keras_run["predict"], rtol=RTOL, atol=ATOL)
    for got, expected in zip(ours["weights"], keras_run["weights"], strict=True):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_a_model_of_no_strategy_refuses_a_dataset_split_over_two_replicas(runs: Any) -> None:
    # Keras fails inside the step (its per-replica batch reaches the model); fitpipe says why
    # before the first step. Over one replica both train (test_keras_parity_suite.py).
    assert runs["no_strategy_keras"].startswith("ValueError")
    assert runs["no_strategy"].startswith(
        "FitpipeValueError: `fit` got a dataset distributed over 2 replicas for a model built "
        "under no `tf.distribute` strategy."
    )


def test_fit_on_a_tf_data_service_matches_one_device(runs: Any) -> None:
    # One service worker, shuffle=False: the same batches in the same order; equal History
    # and weights mean every row came once per epoch and every global batch was split.
    service = runs["service"]
    _close(service["mirrored"]["history"], service["one"]["history"])
    for a, b in zip(service["mirrored"]["weights"], service["one"]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_bytes_shared_through_two_replicas_come_back_whole(runs: Any) -> None:
    # The channel a multi-worker run's chief shares its Parquet plan through.
    assert runs["shared"] == [True] * 6
