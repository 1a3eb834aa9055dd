"""Rows of a Parquet file held in memory, kept for the calls that follow one another.

The class of bug a kept read could bring is stale or foreign rows: a call served rows of a
file since written again, of other columns or roles, or rows kept past the calls that use
them. The tests train twins with and without the kept rows and compare every figure, write
files again between calls, and drive the store itself through random sequences of calls.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe.adapters import parquet, parquet_held
from fitpipe.columnar import recycle

FEATURES = [f"f{i}" for i in range(4)]
SCHEMA = fitpipe.Schema(features=FEATURES, targets="y")


@pytest.fixture(autouse=True)
def _nothing_kept_between_tests() -> Iterator[None]:
    recycle.release()
    yield
    assert not recycle._users
    recycle.release()
    assert not recycle._kept


def _write(path: str, seed: int, rows: int = 96, row_group: int = 40) -> None:
    rng = np.random.default_rng(seed)
    columns = {c: rng.standard_normal(rows).astype(np.float32) for c in FEATURES}
    columns["y"] = rng.standard_normal(rows).astype(np.float32)
    pq.write_table(pa.table(columns), path, row_group_size=row_group)


def _trainer() -> fitpipe.Trainer:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((len(FEATURES),))
    trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    trainer.compile("sgd", "mse")
    return trainer


@contextlib.contextmanager
def _counted_reads() -> Iterator[list[int]]:
    reads: list[int] = []
    real = parquet._read_whole

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real(*args, **kwargs)

    with mock.patch.object(parquet, "_read_whole", counted):
        yield reads


def _run(calls: list[str], path: str, keep: bool) -> tuple[list[Any], int]:
    """Runs ``calls`` on one trainer; every figure, and the reads of the file."""
    trainer, figures = _trainer(), []
    never = mock.patch.object(parquet_held, "kept", lambda *args: None)
    with _counted_reads() as reads, contextlib.nullcontext() if keep else never:
        for call in calls:
            kwargs: dict[str, Any] = {"schema": SCHEMA, "batch_size": 16, "verbose": 0}
            if call == "fit":
                history = trainer.fit(path, epochs=2, shuffle=True, **kwargs)
                figures.append(history.history["loss"])
            elif call == "evaluate":
                figures.append(trainer.evaluate(path, **kwargs))
            else:
                figures.append(trainer.predict(path, **kwargs))
        figures.append([w.numpy() for w in trainer.model.weights])
    return figures, len(reads)


def _assert_same(got: Any, want: Any) -> None:
    if isinstance(got, (list, tuple)):
        assert isinstance(want, (list, tuple)) and len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            _assert_same(a, b)
        return
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize(
    ("calls", "reads"),
    [
        (["fit", "evaluate", "fit", "evaluate"], 1),
        (["evaluate", "fit"], 1),
        (["fit", "predict", "fit"], 1),  # predict takes the features fit read
        (["evaluate", "predict", "predict"], 1),
        (["predict", "fit", "predict"], 2),  # fit reads targets too: read again
        (["predict", "predict"], 1),
    ],
)
def test_calls_one_after_another_read_a_held_file_once_and_train_alike(
    tmp_path: Any, calls: list[str], reads: int
) -> None:
    path = str(tmp_path / "d.parquet")
    _write(path, 0)
    kept, kept_reads = _run(calls, path, keep=True)
    fresh, fresh_reads = _run(calls, path, keep=False)
    assert (kept_reads, fresh_reads) == (reads, len(calls))
    _assert_same(kept, fresh)


@pytest.mark.parametrize("written", ["same size and time", "same size", "other size"])
def test_a_file_written_again_is_read_again(tmp_path: Any, written: str) -> None:
    path = str(tmp_path / "d.parquet")
    _write(path, 0)
    trainer = _trainer()
    with _counted_reads() as reads:
        trainer.fit(path, schema=SCHEMA, batch_size=16, epochs=1, verbose=0)
        before = os.stat(path)
        _write(path, 1, rows=80 if written == "other size" else 96)
        if written != "other size":
            assert os.stat(path).st_size == before.st_size
            later = 0 if written == "same size and time" else 1  # 1 ns: within a clock tick
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + later))
        got = trainer.evaluate(path, schema=SCHEMA, batch_size=16, verbose=0)
    assert len(reads) == 2
    with mock.patch.object(parquet_held, "kept", lambda *args: None):
        want = trainer.evaluate(path, schema=SCHEMA, batch_size=16, verbose=0)
    assert got == want


@pytest.mark.parametrize("racy", [True, False])
def test_a_file_whose_status_cannot_tell_a_rewrite_is_summed_when_it_changed_lately(
    tmp_path: Any, racy: bool
) -> None:
    # A second write within the filesystem's timestamp resolution can leave size and every
    # time as they were: the status is made to stay so here.
    path = str(tmp_path / "d.parquet")
    _write(path, 0)
    changed = time.time_ns() - (0 if racy else int(10 * parquet_held.RACY_SECONDS * 1e9))
    status = (path, os.stat(path).st_size, changed, changed, 1, 1)
    trainer = _trainer()
    with mock.patch.object(parquet_held, "_status", lambda p: status), _counted_reads() as reads:
        trainer.fit(path, schema=SCHEMA, batch_size=16, epochs=1, verbose=0)
        _write(path, 1)
        assert os.stat(path).st_size == status[1]
        got = trainer.evaluate(path, schema=SCHEMA, batch_size=16, verbose=0)
    # changed lately: summed, the rewrite found; long unchanged: the status alone decides
    assert len(reads) == (2 if racy else 1)
    if racy:
        with mock.patch.object(parquet_held, "kept", lambda *args: None):
            assert got == trainer.evaluate(path, schema=SCHEMA, batch_size=16, verbose=0)


@given(st.binary(max_size=3000))
def test_a_file_is_summed_whole(data: bytes) -> None:
    import tempfile
    import zlib

    with tempfile.NamedTemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        assert parquet_held.checksum(handle.name) == zlib.crc32(data)


def test_a_call_reading_other_rows_lets_the_kept_ones_go(tmp_path: Any) -> None:
    first, second = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    _write(first, 0)
    _write(second, 1)
    trainer = _trainer()
    trainer.fit(first, schema=SCHEMA, batch_size=16, verbose=0)
    assert [key[1][0][0] for key in recycle._kept] == [first]
    trainer.fit(second, schema=SCHEMA, batch_size=16, verbose=0)
    assert [key[1][0][0] for key in recycle._kept] == [second]  # the first file's rows: gone
    recycle.release()
    assert not recycle._kept


def test_a_dataset_object_is_read_at_every_call(tmp_path: Any) -> None:
    import pyarrow.dataset as pads

    path = str(tmp_path / "d.parquet")
    _write(path, 0)
    dataset = pads.dataset(path).filter(pads.field("y") > 0)  # a filter the key cannot name
    trainer = _trainer()
    with _counted_reads() as reads:
        trainer.fit(dataset, schema=SCHEMA, batch_size=16, verbose=0)
        trainer.evaluate(dataset, schema=SCHEMA, batch_size=16, verbose=0)
    assert len(reads) == 2 and not recycle._kept


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["enter", "exit", "keep", "kept", "peek", "release"]), st.integers(0, 3)
    ),
    max_size=40,
)


@given(OPERATIONS)
def test_the_store_serves_only_what_a_call_in_progress_kept_or_used(
    operations: list[tuple[str, int]],
) -> None:
    recycle.release()
    scopes: list[contextlib.ExitStack] = []
    last: dict[int, object] = {}  # the last value kept under each key
    this_call: set[int] = set()  # the keys kept or served since the first caller entered
    with mock.patch.object(recycle, "KEEP_SECONDS", 3600.0):
        for name, key in operations:
            inside = bool(scopes)
            if name == "enter":
                if not inside:
                    this_call = set()
                scopes.append(contextlib.ExitStack())
                scopes[-1].enter_context(recycle.recycling())
            elif name == "exit" and inside:
                scopes.pop().close()
            elif name == "keep":
                value = object()
                recycle.keep(key, value)
                if inside:
                    last[key] = value
                    this_call.add(key)
                else:
                    assert key not in recycle._kept or recycle._kept[key][1] is not value
            elif name == "kept":
                got = recycle.kept(key)
                if not inside:
                    assert got is None
                elif key in this_call:
                    assert got is last[key]  # kept in this call: never dropped within it
                elif got is None:
                    assert set(recycle._kept) <= this_call  # a miss drops the rest
                else:
                    assert got is last[key]
                    this_call.add(key)
            elif name == "peek":  # a look-up that another follows: drops nothing
                held = set(recycle._kept)
                got = recycle.kept(key, drop_others=False)
                assert set(recycle._kept) == held
                assert got is None if not inside or key not in held else got is last[key]
                if got is not None:
                    this_call.add(key)
            elif name == "release":
                recycle.release()
                if not inside:
                    assert not recycle._kept
                    this_call = set()
        while scopes:
            scopes.pop().close()
        if recycle._timer is not None:
            recycle._timer.cancel()
    recycle.release()
