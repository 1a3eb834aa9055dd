"""MultiWorkerMirroredStrategy: two worker processes on localhost ports, via ``TF_CONFIG``.

Each worker reads only its own Parquet row groups (dealt round-robin); both run the same
steps. With row groups of one worker-step of rows, step ``i`` of the cluster sees the rows
of batch ``i`` on one device, so History and weights equal the one-device run. The chief
alone plans a Parquet source (reads its footers); the others rebuild its plan from the bytes
it shares, and raise its error when it cannot plan. ``predict``
gives every worker every row, in order; with ``output=`` the chief alone writes the file,
and a path the chief cannot write fails every worker at once. ``data_service`` is refused.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from dist_data import SCHEMA, arrays, worker_model, write
from dist_subprocess import result, start

import fitpipe

RTOL, ATOL = 1e-5, 1e-6


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multi_worker")
    (root / "predictions").mkdir()
    return {
        "even": write(root / "even", 48, row_group=4, files=3),  # 12 groups: 6 per worker
        "uneven": write(root / "uneven", 44, row_group=4),  # 11 groups: 6 and 5 (+padding)
        "predictions": root / "predictions",  # predict(output=) writes here
    }


@pytest.fixture(scope="module")
def workers(folders: dict[str, Path]) -> list[Any]:
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    processes = [
        start(
            "dist_worker_script.py",
            str(folders["even"]),
            str(folders["uneven"]),
            str(folders["predictions"]),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    try:
        return [result(process, timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _one_device(x: Any, y: Any = None, schema: Any = SCHEMA) -> dict[str, Any]:
    model = worker_model()
    history = fitpipe.Trainer(model).fit(
        x, y, schema=schema, batch_size=8, epochs=2, shuffle=False, verbose=0
    )
    return {"history": history.history, "weights": [w.ravel() for w in model.get_weights()]}


def test_both_workers_finish_as_one_cluster(workers: list[Any]) -> None:
    assert [w["task"] for w in workers] == [0, 1]
    assert [w["replicas"] for w in workers] == [2, 2]


@pytest.mark.parametrize("name", ["even", "uneven", "arrow_shuffled", "numpy"])
def test_workers_run_the_same_steps(workers: list[Any], name: str) -> None:
    assert [w[name]["steps"] for w in workers] == [[6, 6], [6, 6]]


@pytest.mark.parametrize(("name", "files", "groups"), [("even", 3, 4), ("uneven", 1, 11)])
def test_each_worker_reads_only_its_own_row_groups(
    workers: list[Any], name: str, files: int, groups: int
) -> None:
    # Row groups in path order, dealt round-robin: the k-th is group k % groups of file k // groups.
    dealt = [(f"part-{k // groups:03d}.parquet", k % groups) for k in range(files * groups)]
    read = [sorted(tuple(pair) for pair in w[name]["read"]) for w in workers]
    assert read[0] == sorted(dealt[0::2])
    assert read[1] == sorted(dealt[1::2])


@pytest.mark.parametrize(("name", "files"), [("even", 3), ("uneven", 1), ("plain", 3)])
def test_the_chief_alone_reads_the_footers(workers: list[Any], name: str, files: int) -> None:
    # The other worker rebuilds the chief's plan from its bytes: it opens no footer to plan.
    expected = [f"part-{i:03d}.parquet" for i in range(files)]
    assert [w[name]["footers"] for w in workers] == [expected, []]


@pytest.mark.parametrize("name", ["even", "uneven", "arrow_shuffled", "numpy"])
def test_workers_end_with_the_same_weights(workers: list[Any], name: str) -> None:
    for a, b in zip(workers[0][name]["weights"], workers[1][name]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("name", ["even", "numpy"])
def test_history_and_weights_match_one_device(
    workers: list[Any], folders: dict[str, Path], name: str
) -> None:
    # Parquet: row groups of one worker-step of rows; NumPy: the strategy splits each
    # global batch between the workers. Either way step i trains on batch i's rows.
    one = _one_device(folders["even"]) if name == "even" else _one_device(*arrays(48), None)
    for worker in workers:
        history = worker[name]["history"]
        assert history.keys() == one["history"].keys()
        for key, values in history.items():
            np.testing.assert_allclose(values, one["history"][key], rtol=RTOL, atol=ATOL)
        for a, b in zip(worker[name]["weights"], one["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def _predicted_on_one_device(weights: list[list[float]], rows: int) -> np.ndarray:
    """Keras' own ``predict`` of the model with a worker's weights, on the first ``rows``."""
    model = worker_model()
    model.set_weights(
        [np.reshape(w, v.shape) for w, v in zip(weights, model.get_weights(), strict=True)]
    )
    return model.predict(arrays(rows)[0], batch_size=8, verbose=0).ravel()


@pytest.mark.parametrize(("name", "rows"), [("even", 48), ("uneven", 44), ("numpy", 43)])
def test_predict_returns_every_row_in_order_on_every_worker(
    workers: list[Any], name: str, rows: int
) -> None:
    expected = _predicted_on_one_device(workers[0]["even"]["weights"], rows)
    for worker in workers:
        np.testing.assert_allclose(worker["predict"][name], expected, rtol=RTOL, atol=ATOL)


def test_predict_output_is_written_once_by_the_chief(
    workers: list[Any], folders: dict[str, Path]
) -> None:
    path = str(folders["predictions"] / "table.parquet")
    assert [w["predict"]["returned"] for w in workers] == [path, path]
    assert [w["predict"]["written"] for w in workers] == [[path], []]
    assert sorted(p.name for p in folders["predictions"].iterdir()) == ["table.parquet"]
    written = pq.read_table(path)
    assert written.num_columns == 1
    expected = _predicted_on_one_device(workers[0]["even"]["weights"], 44)
    np.testing.assert_allclose(written.column(0).to_numpy(), expected, rtol=RTOL, atol=ATOL)


def test_a_plain_fit_matches_the_fit_counting_steps(workers: list[Any]) -> None:
    # No callback hooked on batches: the same steps (equal across workers) and weights.
    for worker in workers:
        plain, counted = worker["plain"], worker["even"]
        assert plain["steps"] == []
        for key, values in plain["history"].items():
            np.testing.assert_allclose(values, counted["history"][key], rtol=1e-6)
        for a, b in zip(plain["weights"], counted["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("case", ["no_folder", "file_as_folder"])
def test_an_output_the_chief_cannot_write_fails_every_worker_at_once(
    workers: list[Any], case: str
) -> None:
    # The second worker was given a path it could write: the chief's verdict decides.
    failures = [w["refused"][case] for w in workers]
    assert [f["type"] for f in failures] == ["FitpipeValueError"] * 2
    assert failures[0]["message"] == failures[1]["message"]
    assert "`predict` cannot write into" in failures[0]["message"]
    assert "no such folder" in failures[0]["message"]
    assert all(f["seconds"] < 30 for f in failures)  # not the collective's 120 s timeout


def test_data_service_is_refused_on_every_worker(workers: list[Any]) -> None:
    failures = [w["refused"]["data_service"] for w in workers]
    assert [f["type"] for f in failures] == ["FitpipeValueError"] * 2
    assert all(
        "`fit` cannot read its input from a tf.data service under MultiWorkerMirroredStrategy"
        in f["message"]
        for f in failures
    )


@pytest.mark.parametrize(
    ("case", "kind", "words"),
    [
        ("plan_missing", "DataMismatchError", "cannot find the Parquet source"),
        ("plan_schema", "SchemaError", "'absent'"),
    ],
)
def test_a_source_the_chief_cannot_plan_fails_every_worker_at_once(
    workers: list[Any], case: str, kind: str, words: str
) -> None:
    # The second worker was given what it could plan: the chief plans for all.
    failures = [w["refused"][case] for w in workers]
    assert [f["type"] for f in failures] == [kind] * 2
    assert failures[0]["message"] == failures[1]["message"]
    assert words in failures[0]["message"]
    assert all(f["seconds"] < 30 for f in failures)  # not the collective's 120 s timeout
