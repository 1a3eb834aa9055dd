"""``predict(..., output=path)``: the outputs, inputs and paths an outside tester found it
failing on.

Before: a ragged output crashed (``RaggedTensor has no len()``), an output whose width
changed between batches gave pyarrow's raw "Table schema does not match", bfloat16 outputs
gave ``ArrowNotImplementedError``, nested dict outputs a raw ``ArrowInvalid``; a generator
was refused only after two of its batches were pulled; a passthrough column of integers in
one file and floats in another was written as doubles (or crashed in Arrow's scanner);
``verbose=2`` drew a live bar, whose target was ``Unknown`` for a Parquet file; and a
repeated passthrough column, a ``file://`` URI, a full disk, an existing file's mode and a
symbolic link were each mishandled. A passthrough column's types across files were checked
where nothing is written (a plain ``predict``), a struct gaining a field was refused, a list
of integers became floats and a column of nulls from Parquet was refused.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.errors import FitpipeError, SchemaError
from fitpipe.testing.strategies import PASSTHROUGH_TYPE_NAMES, passthrough_arrays

SCHEMA = fitpipe.Schema(["a", "b", "c"], passthrough=["id"])


def _x(rows: int = 10) -> np.ndarray:
    return np.linspace(-1.0, 1.0, rows * 3, dtype="float32").reshape(rows, 3)


def _table(rows: int = 10) -> pa.Table:
    x = _x(rows)
    return pa.table({"id": np.arange(rows), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})


def _dense(units: int = 1) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="x")
    return keras.Model(inputs, keras.layers.Dense(units, name="score")(inputs))


def _sequences(folder: Path, lengths: list[int], row_group_size: int | None = None) -> str:
    rows = [[float(i + 1)] * length for i, length in enumerate(lengths)]
    table = pa.table({"id": np.arange(len(rows)), "seq": pa.array(rows, pa.list_(pa.float32()))})
    path = str(folder / "seq.parquet")
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _doubler(dense_per_batch: bool = False) -> keras.Model:
    def double(z: Any) -> Any:
        if dense_per_batch and isinstance(z, tf.RaggedTensor):
            z = z.to_tensor()
        return z * 2.0

    inputs = keras.Input((None,), name="seq")
    return keras.Model(inputs, keras.layers.Lambda(double, name="dbl")(inputs))


SEQUENCES = fitpipe.Schema(features="seq", passthrough=["id"])


def test_a_ragged_output_is_written_as_a_list_per_row(tmp_path: Path) -> None:
    path = _sequences(tmp_path, [1, 2, 3, 1, 2, 3])
    trainer = fitpipe.Trainer(_doubler())
    expected = trainer.predict(path, schema=SEQUENCES, batch_size=2, verbose=0)
    assert isinstance(expected, tf.RaggedTensor)
    out = tmp_path / "out.parquet"
    trainer.predict(path, schema=SEQUENCES, batch_size=2, output=out, verbose=0)
    written = pq.read_table(out)
    assert pa.types.is_list(written.schema.field("dbl").type)
    assert written["dbl"].to_pylist() == expected.to_list()
    assert written["id"].to_pylist() == list(range(6))


def test_a_dense_output_after_ragged_rows_joins_their_list_column(tmp_path: Path) -> None:
    """A chunk whose batches had one width each (dense, as Keras settles them) after one
    whose batches differed (ragged) is written as lists too."""
    path = _sequences(tmp_path, [1, 1, 3, 3, 2, 2, 2, 2], row_group_size=4)
    trainer = fitpipe.Trainer(_doubler(dense_per_batch=True))
    expected = trainer.predict(path, schema=SEQUENCES, batch_size=2, verbose=0)
    out = tmp_path / "out.parquet"
    trainer.predict(path, schema=SEQUENCES, batch_size=2, output=out, verbose=0)
    written = pq.read_table(out)["dbl"].to_pylist()
    assert written == expected.to_list()
    assert written[:3] == [[2.0], [4.0], [6.0] * 3]
    assert written[4:] == [[10.0] * 2, [12.0] * 2, [14.0] * 2, [16.0] * 2]


def test_an_output_whose_width_changes_between_batches_is_refused_in_words(
    tmp_path: Path,
) -> None:
    path = _sequences(tmp_path, [1, 1, 1, 1, 3, 3, 3, 3], row_group_size=4)
    out = tmp_path / "out.parquet"
    before = set(os.listdir(tmp_path))
    with pytest.raises(FitpipeError) as info:
        fitpipe.Trainer(_doubler(dense_per_batch=True)).predict(
            path, schema=SEQUENCES, batch_size=4, output=out, verbose=0
        )
    text = str(info.value)
    assert text.startswith("`predict` cannot write model output 'dbl'"), text
    assert "(3,)" in text and "(1,)" in text and "from row 4" in text
    assert "Received: model_output='dbl' (of type str)" in text
    assert set(os.listdir(tmp_path)) == before  # no file, no partial one


@pytest.fixture
def bfloat16_policy() -> Iterator[None]:
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_bfloat16_outputs_are_written_as_float32(bfloat16_policy: None, tmp_path: Path) -> None:
    trainer = fitpipe.Trainer(_dense(2))
    expected = trainer.predict(_x(), verbose=0)
    assert expected.dtype.name == "bfloat16"
    out = tmp_path / "out.parquet"
    trainer.predict(_x(), output=out, verbose=0)
    column = pq.read_table(out)["score"]
    assert column.type == pa.list_(pa.float32(), 2)
    np.testing.assert_array_equal(np.array(column.to_pylist()), expected.astype("float32"))


def test_nested_dict_outputs_are_columns_named_by_their_joined_keys(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="x")
    outputs = {"g": {"p": keras.layers.Dense(1)(inputs)}, "q": keras.layers.Dense(2)(inputs)}
    model = keras.Model(inputs, outputs)
    expected = model.predict(_x(), verbose=0)
    out = tmp_path / "out.parquet"
    fitpipe.Trainer(model).predict(_table(), schema=SCHEMA, output=out, verbose=0)
    written = pq.read_table(out)
    assert written.column_names == ["id", "g.p", "q"]
    np.testing.assert_allclose(written["g.p"].to_numpy(), expected["g"]["p"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(np.array(written["q"].to_pylist()), expected["q"], rtol=1e-6)


def test_a_generator_is_refused_before_any_batch_is_pulled(tmp_path: Path) -> None:
    pulled: list[int] = []

    def batches() -> Iterator[tuple[np.ndarray]]:
        for start in range(0, 20, 5):
            pulled.append(start)
            yield (_x(20)[start : start + 5],)

    generator = batches()
    with pytest.raises(FitpipeError, match="cannot write predictions of this input"):
        fitpipe.Trainer(_dense()).predict(generator, output=tmp_path / "o.parquet", verbose=0)
    assert pulled == []
    assert len(list(generator)) == 4


class _Counted(keras.utils.PyDataset):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[np.ndarray]:
        self.asked.append(index)
        return (_x(20)[index * 5 : index * 5 + 5],)


def test_a_pydataset_is_refused_before_any_item_is_read(tmp_path: Path) -> None:
    data = _Counted()
    with pytest.raises(FitpipeError, match="cannot write predictions of this input"):
        fitpipe.Trainer(_dense()).predict(data, output=tmp_path / "o.parquet", verbose=0)
    assert data.asked == []
    assert os.listdir(tmp_path) == []


def _two_files(folder: Path, first: pa.Array, second: pa.Array) -> str:
    x = _x(4)
    for i, ids in enumerate((first, second)):
        part = {"id": ids, "a": x[2 * i : 2 * i + 2, 0], "b": x[:2, 1], "c": x[:2, 2]}
        pq.write_table(pa.table(part), str(folder / f"p{i}.parquet"))
    return str(folder)


@pytest.mark.parametrize("big", [True, False], ids=["past-2**53", "small"])
def test_passthrough_integers_and_floats_across_files_are_refused(
    big: bool, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    start = 2**53 + 1 if big else 1
    ints = pa.array([start, start + 2], pa.int64())
    source = _two_files(tmp_path / "in", ints, pa.array([1.0, 2.0]))
    out = tmp_path / "out.parquet"
    with pytest.raises(FitpipeError) as info:
        fitpipe.Trainer(_dense()).predict(source, schema=SCHEMA, output=out, verbose=0)
    text = str(info.value)
    assert "passthrough column 'id' of type int64" in text and "of type double" in text, text
    assert not out.exists()


@pytest.mark.parametrize("big", [True, False], ids=["past-2**53", "small"])
def test_a_plain_predict_takes_passthrough_integers_and_floats_across_files(
    big: bool, tmp_path: Path
) -> None:
    # Nothing is written, so the column's types do not matter (it was refused as above).
    (tmp_path / "in").mkdir()
    start = 2**53 + 1 if big else 1
    ints = pa.array([start, start + 2], pa.int64())
    source = _two_files(tmp_path / "in", ints, pa.array([1.0, 2.0]))
    model = _dense()
    got = fitpipe.Trainer(model).predict(source, schema=SCHEMA, verbose=0)
    x = pq.read_table(source, columns=["a", "b", "c"]).to_pandas().to_numpy("float32")
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("from_parquet", [True, False], ids=["parquet", "table"])
def test_an_all_null_passthrough_column_is_written_as_nulls(
    from_parquet: bool, tmp_path: Path
) -> None:
    # Parquet refused it ("found only nulls"), an Arrow table wrote it: both write it now.
    table = _table(4).append_column("note", pa.nulls(4))
    path = str(tmp_path / "in.parquet")
    pq.write_table(table, path)
    out = tmp_path / "out.parquet"
    schema = fitpipe.Schema(["a", "b", "c"], passthrough=["id", "note"])
    source = path if from_parquet else table
    fitpipe.Trainer(_dense()).predict(source, schema=schema, output=out, verbose=0)
    written = pq.read_table(out)
    assert written["note"].type == pa.null() and written["note"].null_count == 4
    assert written["id"].to_pylist() == [0, 1, 2, 3]


def _same(written: Any, stored: Any) -> bool:
    """``written`` is ``stored``: equal, of the same Python type, a struct's new fields null."""
    if isinstance(stored, dict):
        return isinstance(written, dict) and all(
            _same(written[key], stored.get(key)) for key in written
        ) and set(stored) <= set(written)  # fmt: skip
    if isinstance(stored, list):
        return isinstance(written, list) and len(written) == len(stored) and all(
            _same(w, s) for w, s in zip(written, stored, strict=True)
        )  # fmt: skip
    return type(written) is type(stored) and written == stored


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_passthrough_columns_of_any_types_across_files_are_written_as_stored_or_refused(
    data: st.DataObject,
) -> None:
    # Each file's column comes back value for value, of the same Python type (no integer made
    # a float, no value wrapped), or predict refuses naming the column; a plain predict, which
    # writes no passthrough, takes any types.
    first, second = data.draw(passthrough_arrays(2)), data.draw(passthrough_arrays(2))
    assume(_parquet_holds(first[1]) and _parquet_holds(second[1]))
    with tempfile.TemporaryDirectory() as folder:
        source = _two_files(Path(folder), first[1], second[1])
        model = _dense()
        got = fitpipe.Trainer(model).predict(source, schema=SCHEMA, verbose=0)
        x = pq.read_table(source, columns=["a", "b", "c"]).to_pandas().to_numpy("float32")
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-6)
        out = Path(folder, "out.parquet")
        try:
            fitpipe.Trainer(model).predict(source, schema=SCHEMA, output=out, verbose=0)
        except SchemaError as err:
            assert "column 'id'" in str(err), err
            assert not out.exists()
            return
        written = pq.read_table(out)["id"].to_pylist()
    stored = first[1].to_pylist() + second[1].to_pylist()
    assert all(map(_same, written, stored)), (first[0], second[0], stored, written)


def _parquet_holds(column: pa.Array) -> bool:
    """Parquet (pyarrow's writer) holds a column of this type: no dictionary of views."""
    kind = column.type
    return not (pa.types.is_dictionary(kind) and pa.types.is_string_view(kind.value_type))


@pytest.mark.parametrize("kind", PASSTHROUGH_TYPE_NAMES)
@settings(max_examples=3, deadline=None)
@given(st.data())
def test_passthrough_columns_of_any_types_in_memory_are_written_as_given(
    kind: str, data: st.DataObject
) -> None:
    # An in-memory table's column (of two chunks, as Polars hands columns over) comes back
    # value for value, or predict refuses naming the column. Before: an ordered dictionary of
    # string views (a Polars Enum) crashed with Arrow's raw "Array chunks must all be same type".
    name, ids = data.draw(passthrough_arrays(4, [kind]))
    x = _x(4)
    columns = {"id": pa.chunked_array([ids.slice(0, 1), ids.slice(1)])}
    table = pa.table({**columns, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "out.parquet")
        try:
            fitpipe.Trainer(_dense()).predict(table, schema=SCHEMA, output=out, verbose=0)
        except SchemaError as err:
            assert "column 'id'" in str(err), err
            assert not out.exists()
            return
        written = pq.read_table(out)["id"].to_pylist()
    assert all(map(_same, written, ids.to_pylist())), (name, ids, written)


def test_features_of_integers_and_floats_across_files_still_unify(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    x = _x(4)
    for i, a in enumerate((pa.array([1, 2], pa.int64()), pa.array(x[2:, 0]))):
        part = {"id": [2 * i, 2 * i + 1], "a": a, "b": x[:2, 1], "c": x[:2, 2]}
        pq.write_table(pa.table(part), str(tmp_path / "in" / f"p{i}.parquet"))
    out = tmp_path / "out.parquet"
    fitpipe.Trainer(_dense()).predict(str(tmp_path / "in"), schema=SCHEMA, output=out, verbose=0)
    assert pq.read_table(out)["id"].to_pylist() == [0, 1, 2, 3]


def test_a_passthrough_value_arrow_cannot_read_is_worded_with_its_column(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    far = pa.array([2**62, 2**62], pa.timestamp("us"))  # past the nanosecond range
    source = _two_files(tmp_path / "in", far, pa.array([1, 2], pa.timestamp("ns")))
    out = tmp_path / "out.parquet"
    with pytest.raises(FitpipeError) as info:
        fitpipe.Trainer(_dense()).predict(source, schema=SCHEMA, output=out, verbose=0)
    text = str(info.value)
    assert text.startswith("`predict` cannot read column 'id' of "), text
    assert "p0.parquet" in text
    assert not out.exists()


def _progress(capsys: pytest.CaptureFixture[str], tmp_path: Path, verbose: int) -> str:
    path = str(tmp_path / "in.parquet")
    pq.write_table(_table(100), path, row_group_size=10)
    capsys.readouterr()
    out = tmp_path / "out.parquet"
    fitpipe.Trainer(_dense()).predict(
        path, schema=SCHEMA, batch_size=10, output=out, verbose=verbose
    )
    return capsys.readouterr().out


def test_verbose_2_prints_one_line_of_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    printed = _progress(capsys, tmp_path, 2)
    assert printed.count("\n") == 1 and "\r" not in printed and "\b" not in printed, printed
    assert printed.startswith("100/100 - "), printed
    assert printed.rstrip().endswith("/row"), printed


def test_verbose_1_bar_targets_the_rows_of_the_parquet_footers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    printed = _progress(capsys, tmp_path, 1)
    assert "Unknown" not in printed
    assert "100/100" in printed


def test_a_passthrough_column_listed_twice_is_named_so(tmp_path: Path) -> None:
    schema = fitpipe.Schema(["a", "b", "c"], passthrough=["id", "id"])
    with pytest.raises(FitpipeError) as info:
        fitpipe.Trainer(_dense()).predict(
            _table(), schema=schema, output=tmp_path / "o.parquet", verbose=0
        )
    text = str(info.value)
    assert "the passthrough list names column 'id' twice" in text, text
    assert "List each passthrough column once" in text
    assert "Rename the model output" not in text


def test_a_file_uri_is_written_as_its_local_path(tmp_path: Path) -> None:
    out = tmp_path / "with space.parquet"
    uri = "file://" + str(out).replace(" ", "%20")
    path = fitpipe.Trainer(_dense()).predict(_table(), schema=SCHEMA, output=uri, verbose=0)
    assert path == uri
    assert pq.read_table(out).column_names == ["id", "score"]


def test_a_full_disk_is_worded_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"PREVIOUS")

    def full(self: Any, table: Any, row_group_size: Any = None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.raises(OSError) as info:
        fitpipe.Trainer(_dense()).predict(_table(), schema=SCHEMA, output=out, verbose=0)
    text = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert f"`predict` could not write {out} (No space left on device)" in text, text
    assert out.read_bytes() == b"PREVIOUS"
    assert os.listdir(tmp_path) == ["out.parquet"]


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"old")
    out.chmod(0o600)
    fitpipe.Trainer(_dense()).predict(_table(), schema=SCHEMA, output=out, verbose=0)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert pq.read_table(out).num_rows == 10


def test_a_symbolic_link_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target.parquet"
    target.write_bytes(b"old")
    link = tmp_path / "link.parquet"
    link.symlink_to("target.parquet")
    fitpipe.Trainer(_dense()).predict(_table(), schema=SCHEMA, output=link, verbose=0)
    assert link.is_symlink()
    assert pq.read_table(target).num_rows == 10
    assert sorted(os.listdir(tmp_path)) == ["link.parquet", "target.parquet"]
