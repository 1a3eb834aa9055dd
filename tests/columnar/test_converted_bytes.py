"""The size Parquet data takes once converted (which decides whether it is held or streamed),
and the memory pool it is read into.

``converted_bytes`` must be the bytes of the arrays the conversion makes, not a bound: a bound
of 8 bytes a value (what it was) streamed float32 data of 128-256 MiB every epoch, data that
fits the in-memory limit twice over.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.columnar import converted_bytes, plan_source, read_span, table_roles
from fitpipe.columnar import parquet as columnar_parquet
from fitpipe.columnar import spans as columnar_spans
from fitpipe.schemas import Mode

#: Arrow types of one value per row, and how to make ``n`` of them.
SCALARS: dict[str, tuple[pa.DataType, Any]] = {
    "int8": (pa.int8(), lambda n: np.arange(n, dtype=np.int8)),
    "uint16": (pa.uint16(), lambda n: np.arange(n, dtype=np.uint16)),
    "int32": (pa.int32(), lambda n: np.arange(n, dtype=np.int32)),
    "uint64": (pa.uint64(), lambda n: np.arange(n, dtype=np.uint64)),
    "float16": (pa.float16(), lambda n: np.arange(n).astype(np.float16)),
    "float32": (pa.float32(), lambda n: np.arange(n, dtype=np.float32)),
    "float64": (pa.float64(), lambda n: np.arange(n, dtype=np.float64)),
    "bool": (pa.bool_(), lambda n: np.arange(n) % 2 == 0),
    "date32": (pa.date32(), lambda n: np.arange(n, dtype=np.int32)),
    "timestamp": (pa.timestamp("ms"), lambda n: np.arange(n, dtype=np.int64)),
}


def _column(kind: str, n: int) -> pa.Array:
    arrow_type, make = SCALARS[kind]
    return pa.array(make(n)).cast(arrow_type)


def _size(structure: Any) -> int:
    leaves = [leaf for leaf in tf.nest.flatten(structure) if leaf is not None]
    return sum(int(np.asarray(leaf).nbytes) for leaf in leaves)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, fitpipe.Schema]:
    """A table of scalar, fixed-size list and padded list columns, and a schema over it."""
    n = draw(st.integers(1, 40))
    kinds = draw(st.lists(st.sampled_from(sorted(SCALARS)), min_size=2, max_size=6))
    columns = {f"c{i}": _column(kind, n) for i, kind in enumerate(kinds)}
    width = draw(st.integers(1, 4))
    columns["vec"] = pa.FixedSizeListArray.from_arrays(
        pa.array(np.arange(n * width, dtype=np.float32)), width
    )
    columns["seq"] = pa.array([[1.5] * (i % 3) for i in range(n)], pa.list_(pa.float32()))
    stacked = tuple(sorted(draw(st.sets(st.sampled_from(sorted(columns)[:-2]), min_size=1))))
    features: Any = draw(
        st.sampled_from(
            [stacked, stacked[0], {"rows": stacked, "vec": "vec", "seq": "seq"}, "vec", "seq"]
        )
    )
    target = draw(st.sampled_from(sorted(c for c in columns if c.startswith("c"))))
    weight = draw(st.sampled_from([None, "w"]))
    if weight:
        columns["w"] = pa.array(np.ones(n, np.float32))
    schema = fitpipe.Schema(features, target, sample_weight=weight, lengths={"seq": 3})
    return pa.table(columns), schema


@given(tables(), st.sampled_from([Mode.TRAIN, Mode.PREDICT]))
def test_the_size_is_that_of_the_converted_arrays(tmp_path_factory, drawn, mode):
    table, schema = drawn
    path = Path(tmp_path_factory.mktemp("sizes")) / "data.parquet"
    pq.write_table(table, path)
    plan = plan_source(str(path), schema, "fit", mode)
    read = pq.read_table(path)
    targets = mode is not Mode.PREDICT
    arrays = table_roles(read, plan.schema, str(path), 0, "fit", targets)
    assert converted_bytes(plan, plan.schema, mode) == _size(arrays)


def test_variable_width_data_has_no_size(tmp_path):
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"s": ["a", "bb"], "r": [[1.0], [2.0, 3.0]], "y": [1.0, 2.0]}), path)
    for features in ("s", "r"):
        schema = fitpipe.Schema(features, "y")
        plan = plan_source(str(path), schema, "fit", Mode.TRAIN)
        assert converted_bytes(plan, plan.schema, Mode.TRAIN) == float("inf")


def test_float32_data_up_to_the_limit_is_held(tmp_path, monkeypatch):
    rows, features = 300, 8
    values = np.random.default_rng(0).standard_normal((rows, features + 1)).astype(np.float32)
    path = tmp_path / "f32.parquet"
    pq.write_table(pa.table({f"f{i}": values[:, i] for i in range(features + 1)}), path)
    schema = fitpipe.Schema([f"f{i}" for i in range(features)], f"f{features}")
    size = rows * (features + 1) * 4  # float32: 4 bytes a value, features and target
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", size)
    held = fitpipe.adapt(str(path), schema=schema, batch_size=32)
    assert held.rows is not None
    leaves = tf.nest.flatten(held.rows.leaves)
    # (a held variable's shape leaves the row count open: its size is read from its value)
    assert sum(int(tf.size(leaf)) * leaf.dtype.size for leaf in leaves) == size
    monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", size - 1)
    assert fitpipe.adapt(str(path), schema=schema, batch_size=32).rows is None


def test_parquet_is_read_into_the_system_allocators_pool(tmp_path):
    path = tmp_path / "pool.parquet"
    values = np.arange(4096 * 8, dtype=np.float32).reshape(4096, 8)
    pq.write_table(pa.table({f"f{i}": values[:, i] for i in range(8)}), path)
    schema = fitpipe.Schema([f"f{i}" for i in range(7)], "f7")
    plan = plan_source(str(path), schema, "fit", Mode.TRAIN)
    system = pa.system_memory_pool()
    gc.collect()  # earlier tests' tables freed now, not while this one measures
    before = system.bytes_allocated()
    spans = columnar_spans(plan, 0, plan.rows)
    tables = [t for span in spans for t in read_span(span, plan.schema.columns())]
    held = sum(t.nbytes for t in tables)
    assert held >= values.nbytes  # (and validity bitmaps)
    # The tables are the system pool's. (Not asserted: that the default pool's count stays
    # still. Under xdist it rose by 0.2-3 MB during some reads of this test, allocations of
    # pyarrow's own besides the tables'; alone, it did not move.)
    assert system.bytes_allocated() - before >= held


_PEAK_SCRIPT = """
import sys
import pyarrow as pa
import fitpipe
from fitpipe.columnar import plan_source, read_span, spans
from fitpipe.schemas import Mode
schema = fitpipe.Schema([f"f{i}" for i in range(64)], "f64")
plan = plan_source(sys.argv[1], schema, "fit", Mode.TRAIN)
for span in spans(plan, 0, plan.rows):
    for table in read_span(span, plan.schema.columns(), sys.argv[2] == "streamed"):
        del table
print(pa.default_memory_pool().max_memory())
"""


def _default_pool_peak(path: Path, how: str) -> int:
    """The peak of pyarrow's default pool in a fresh process that reads every row group.

    (pyarrow's I/O takes the default pool when it first reads; a fresh process is the only
    place where that pool's peak is this read's.)
    """
    run = [sys.executable, "-c", _PEAK_SCRIPT, str(path), how]
    done = subprocess.run(run, capture_output=True, text=True, check=True, timeout=300)
    return int(done.stdout.split()[-1])


def test_a_streamed_local_row_group_is_read_a_buffer_at_a_time_not_whole(tmp_path):
    # pyarrow pre-buffers a row group's column chunks in its default pool (fresh memory as
    # large as the row group's bytes, every read); fitpipe streams local files pass after
    # pass through a buffer per column chunk instead (a file read once keeps the default).
    path = tmp_path / "wide.parquet"
    values = np.random.default_rng(0).standard_normal((32768, 65), dtype=np.float32)
    table = pa.table({f"f{i}": values[:, i] for i in range(65)})
    pq.write_table(table, path, compression="none", row_group_size=32768)
    size = path.stat().st_size  # 8.5 MB
    assert _default_pool_peak(path, "streamed") < size // 4
    assert _default_pool_peak(path, "once") >= size // 2  # pyarrow's default


def test_only_local_files_are_read_through_a_buffer(tmp_path) -> None:
    # Object stores keep pyarrow's pre-buffering (fewer, larger requests); so does any file
    # system not known to be the local one.
    assert columnar_parquet.scan_options(pafs.LocalFileSystem()) is not None
    other = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    assert columnar_parquet.scan_options(other) is None
    assert columnar_parquet.scan_options(None) is None
    assert columnar_parquet.scan_options(pafs.LocalFileSystem(), buffered=False) is None


def test_only_streamed_fits_read_buffered(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    values = np.random.default_rng(0).standard_normal((256, 5), dtype=np.float32)
    pq.write_table(pa.table({f"f{i}": values[:, i] for i in range(5)}), path, row_group_size=64)
    schema = fitpipe.Schema([f"f{i}" for i in range(4)], "f4")
    asked: list[object] = []
    real = columnar_parquet.scan_options

    def spy(fs: object, buffered: bool = True) -> object:
        if buffered:
            asked.append(fs)
        return real(fs, buffered)

    monkeypatch.setattr(columnar_parquet, "scan_options", spy)

    def fit(limit: int) -> None:
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", limit)
        inputs = keras.Input((4,))
        trainer = fitpipe.Trainer(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
        trainer.compile("sgd", "mse")
        trainer.fit(str(path), schema=schema, batch_size=32, epochs=2, verbose=0)

    fit(1 << 30)  # held: read once, as pyarrow reads by default
    assert not asked
    fit(0)  # streamed: every row group of both epochs buffered
    assert len(asked) >= 2 * 4 and all(isinstance(fs, pafs.LocalFileSystem) for fs in asked)
