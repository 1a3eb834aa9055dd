"""``predict`` over columnar sources in pieces: pieces of no rows, the order given, passthrough
columns of any type.

A source comes in pieces (a table's chunks, a stream's batches, a folder's or a list's files);
whatever the pieces, ``predict`` and ``predict(output=)`` give one row per input row, in the
order the caller gave the rows, next to their passthrough values as they were.
"""

from __future__ import annotations

import decimal
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe

SCHEMA = fitpipe.Schema(["a", "b"], passthrough=["id"])
FORMS = ["table", "reader", "folder", "list"]


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,), name="x")
    return keras.Model(inputs, keras.layers.Dense(1, name="score")(inputs))


def _pieces(sizes: list[int]) -> list[pa.RecordBatch]:
    """Consecutive pieces of ``sizes`` rows: ``id`` numbers the rows, ``a`` and ``b`` vary."""
    pieces, start = [], 0
    for size in sizes:
        ids = np.arange(start, start + size, dtype="int64")
        columns = {"id": ids, "a": np.sin(ids).astype("float32"), "b": np.cos(ids) * 3}
        pieces.append(pa.RecordBatch.from_pydict(columns))
        start += size
    return pieces


def _source(form: str, pieces: list[pa.RecordBatch], folder: Path, names: list[int]) -> Any:
    """The pieces as one source of ``form``; files are named by ``names`` (a permutation)."""
    if form == "table":
        return pa.Table.from_batches(pieces)
    if form == "reader":
        return pa.RecordBatchReader.from_batches(pieces[0].schema, pieces)
    paths = [str(folder / f"part-{name:03d}.parquet") for name in names]
    for piece, path in zip(pieces, paths, strict=True):
        pq.write_table(pa.Table.from_batches([piece]), path, row_group_size=3)
    return str(folder) if form == "folder" else paths


@settings(max_examples=min(25, settings.default.max_examples), deadline=None)
@given(
    sizes=st.lists(st.integers(0, 7), min_size=1, max_size=5).filter(lambda s: sum(s) > 0),
    form=st.sampled_from(FORMS),
    data=st.data(),
)
def test_every_row_is_predicted_once_in_the_order_given(
    sizes: list[int], form: str, data: st.DataObject
) -> None:
    names = data.draw(st.permutations(range(len(sizes))), label="file names")
    steps = data.draw(st.none() | st.integers(1, -(-sum(sizes) // 4)), label="steps")
    kept = slice(None) if steps is None else slice(0, steps * 4)  # rows of `steps` batches
    pieces = _pieces(sizes)
    if form == "folder":  # a folder's files are read in path order
        pieces = [pieces[names.index(i)] for i in range(len(names))]
        names = sorted(names)
    ids = np.concatenate([piece["id"].to_numpy() for piece in pieces])
    x = np.stack([np.concatenate([p[c].to_numpy() for p in pieces]) for c in "ab"], 1)
    model = _model()
    expected = model.predict(x.astype("float32"), verbose=0)
    trainer = fitpipe.Trainer(model)
    with tempfile.TemporaryDirectory() as tmp:
        source = _source(form, pieces, Path(tmp), names)
        predicted = trainer.predict(source, schema=SCHEMA, batch_size=4, steps=steps, verbose=0)
        np.testing.assert_allclose(predicted, expected[kept], rtol=1e-6)
        out = Path(tmp) / "out" / "predictions.parquet"
        out.parent.mkdir()
        source = _source(form, pieces, Path(tmp), names)  # a stream is read once: again
        trainer.predict(source, schema=SCHEMA, output=out, batch_size=4, steps=steps, verbose=0)
        written = pq.read_table(out)
    np.testing.assert_array_equal(written["id"].to_numpy(), ids[kept])
    np.testing.assert_allclose(written["score"].to_numpy(), expected[kept, 0], rtol=1e-6)


def test_arrays_with_an_absent_optional_input_are_written_as_predicted(tmp_path: Path) -> None:
    required = keras.Input((2,), name="a")
    optional = keras.Input((2,), name="b", optional=True)
    model = keras.Model({"a": required, "b": optional}, _Sum()(required, optional))
    trainer = fitpipe.Trainer(model)
    for x in (
        {"a": np.ones((5, 2), "float32"), "b": None},
        {"a": np.ones((5, 2), "float32"), "b": np.ones((5, 2), "float32")},
    ):
        out = tmp_path / "predictions.parquet"
        trainer.predict(x, output=out, steps=2, batch_size=2, verbose=0)
        written = pq.read_table(out).column(0).to_numpy()
        np.testing.assert_allclose(
            written, model.predict(x, steps=2, batch_size=2, verbose=0)[:, 0]
        )


class _Sum(keras.layers.Layer):
    """Sums its two inputs' features; the second may be absent."""

    def call(self, a: Any, b: Any = None) -> Any:
        total = a if b is None else a + b
        return keras.ops.sum(total, axis=1, keepdims=True)


def test_a_source_of_empty_pieces_only_is_refused(tmp_path: Path) -> None:
    pieces = _pieces([0, 0])
    out = tmp_path / "predictions.parquet"
    with pytest.raises(ValueError, match="no rows"):
        fitpipe.Trainer(_model()).predict(
            pa.Table.from_batches(pieces), schema=SCHEMA, output=out, verbose=0
        )
    assert not out.exists()


CARRIED = {
    "struct": pa.array([{"user": i, "region": "eu"} for i in range(6)]),
    "map": pa.array([[("k", i)] for i in range(6)], pa.map_(pa.string(), pa.int64())),
    "list-of-text": pa.array([["a"] * i for i in range(6)]),
    "dictionary": pa.array(list("xyzxyz")).dictionary_encode(),
    "decimal": pa.array([decimal.Decimal(f"{i}.25") for i in range(6)], pa.decimal128(9, 2)),
    "timestamp-tz": pa.array(np.arange(6) * 10**9, pa.timestamp("ns", tz="Europe/Paris")),
    "binary": pa.array([bytes([i, 0, 255]) for i in range(6)], pa.binary(3)),
}


@pytest.mark.parametrize("kind", list(CARRIED))
@pytest.mark.parametrize("form", ["table", "parquet"])
def test_passthrough_columns_of_any_type_are_carried_as_they_are(
    kind: str, form: str, tmp_path: Path
) -> None:
    column = CARRIED[kind]
    table = pa.table({"key": column, "a": np.arange(6.0), "b": np.ones(6)})
    source: Any = table
    if form == "parquet":
        source = str(tmp_path / "in.parquet")
        pq.write_table(table, source)
        column = pq.read_table(source)["key"]  # as Parquet stores it
    out = tmp_path / "out.parquet"
    schema = fitpipe.Schema(["a", "b"], passthrough=["key"])
    fitpipe.Trainer(_model()).predict(source, schema=schema, output=out, verbose=0)
    written = pq.read_table(out)["key"]
    assert written.to_pylist() == column.to_pylist()


VIEWS = {
    "string-view": pa.array(list("abcabc"), pa.string_view()),
    "dictionary-of-string-view": pa.array(list("xyzxyz"), pa.string_view()).dictionary_encode(),
    "list-view": pa.array([[i] * i for i in range(6)], pa.list_view(pa.int64())),
    "run-end": pc.run_end_encode(pa.array([1, 1, 2, 2, 2, 3])),
}


@pytest.mark.parametrize("kind", list(VIEWS))
def test_passthrough_columns_in_view_layouts_are_written_in_classic_ones(
    kind: str, tmp_path: Path
) -> None:
    """Polars hands strings over as views; Parquet stores the values of any layout."""
    column = VIEWS[kind]
    table = pa.table({"key": column, "a": np.arange(6.0), "b": np.ones(6)})
    out = tmp_path / "out.parquet"
    schema = fitpipe.Schema(["a", "b"], passthrough=["key"])
    fitpipe.Trainer(_model()).predict(table, schema=schema, output=out, verbose=0)
    assert pq.read_table(out)["key"].to_pylist() == column.to_pylist()
