"""NaN and infinity in batches that the pre-flight check cannot scan up front.

Generators, ``tf.data``, ``PyDataset`` and Parquet streamed from disk (whose footers say
nothing of NaN) are checked as batches pass: ``check="warn"`` warns once, naming the batch
and the input or target; ``check="error"`` stops before the step trains on the bad batch;
``check=False`` checks nothing. Rows held in memory are left to the pre-flight scan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fitpipe import Schema, Trainer, limits
from fitpipe.errors import DataCheckError, DataCheckWarning
from fitpipe.testing.strategies import BadBatch, bad_batches

BATCHES, ROWS, D = 5, 4, 3


def _batches(bad: BadBatch) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for index in range(BATCHES):
        x = rng.normal(size=(ROWS, D)).astype("float32")
        y = rng.normal(size=(ROWS, 1)).astype("float32")
        if index in (bad.batch, bad.again):
            (x if bad.part == 0 else y)[bad.row, 0] = bad.value
        out.append((x, y))
    return out


def _generator(batches: list[Any], _: int) -> dict[str, Any]:
    return {"x": iter(batches)}


def _tf_data(batches: list[Any], _: int) -> dict[str, Any]:
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(ROWS)}


def _py_dataset(batches: list[Any], _: int) -> dict[str, Any]:
    class Batches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return len(batches)

        def __getitem__(self, index: int) -> Any:
            return batches[index]

    return {"x": Batches()}


def _parquet(batches: list[Any], group: int) -> dict[str, Any]:
    """The batches' rows in a Parquet file of ``group``-row row groups (fit streams it)."""
    x = np.concatenate([b[0] for b in batches])
    columns = {f"f{i}": x[:, i] for i in range(D)}
    columns["y"] = np.concatenate([b[1] for b in batches])[:, 0]
    path = f"{tempfile.mkdtemp()}/d.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=group)
    return {"x": path, "schema": Schema([f"f{i}" for i in range(D)], "y"), "batch_size": ROWS}


FORMS: dict[str, Callable[[list[Any], int], dict[str, Any]]] = {
    "generator": _generator,
    "tf.data": _tf_data,
    "pydataset": _py_dataset,
    "parquet-streamed": _parquet,
}

#: Rows per Parquet row group: batches cut across groups, a group per batch, or several.
GROUPS = st.sampled_from([1, 3, ROWS, ROWS + 1, 2 * ROWS, BATCHES * ROWS])


def _by_statistics(form: str, bad: BadBatch) -> bool:
    """Whether the pre-flight check finds the bad value up front (an infinity in Parquet)."""
    return form == "parquet-streamed" and not np.isnan(bad.value)


@contextlib.contextmanager
def _streamed() -> Iterator[None]:
    """Parquet streamed from disk, however small (the path of data over the memory limit)."""
    old, limits.RESIDENT_BYTES_LIMIT = limits.RESIDENT_BYTES_LIMIT, 0
    try:
        yield
    finally:
        limits.RESIDENT_BYTES_LIMIT = old


def _trainer() -> Trainer:
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)])
    trainer = Trainer(model)
    trainer.compile("sgd", "mse")
    return trainer


def _named(bad: BadBatch) -> str:
    return f"the {'input' if bad.part == 0 else 'target'}s of batch index {bad.batch}"


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(deadline=None, max_examples=5)
@given(bad=bad_batches(BATCHES, ROWS), group=GROUPS)
# A clean row group delivers the first row of the bad batch, the next one holds the NaN.
@example(bad=BadBatch(batch=2, part=0, row=3, value=float("nan"), again=None), group=3)
def test_check_error_stops_before_the_bad_batch_trains(
    form: str, bad: BadBatch, group: int
) -> None:
    batches = _batches(bad)
    trainer = _trainer()
    before = [w.copy() for w in trainer.model.get_weights()]
    found = f"found .* in {_named(bad)}"
    stats = _by_statistics(form, bad)
    if stats:  # the footers' minima and maxima show infinities before the first step
        found = r"before training: .* holds [+-]inf \(Parquet statistics\)"
    with _streamed(), pytest.raises(DataCheckError, match=found):
        trainer.fit(**FORMS[form](batches, group), verbose=0, shuffle=False, check="error")
    twin = _trainer()
    twin.model.set_weights(before)
    if bad.batch and not stats:  # the batches before the bad one trained, and only they
        twin.fit(iter(batches[: bad.batch]), verbose=0, check=False)
    for got, want in zip(trainer.model.get_weights(), twin.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(deadline=None, max_examples=5)
@given(bad=bad_batches(BATCHES, ROWS), group=GROUPS)
def test_check_warn_warns_once_naming_the_first_bad_batch(
    form: str, bad: BadBatch, group: int
) -> None:
    trainer = _trainer()
    with _streamed(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(**FORMS[form](_batches(bad), group), verbose=0, shuffle=False)
    found = [w for w in caught if issubclass(w.category, DataCheckWarning)]
    if _by_statistics(form, bad):  # the footers' statistics warn first, without a batch
        assert "(Parquet statistics)" in str(found.pop(0).message)
    assert len(found) == 1, [str(w.message) for w in caught]
    assert _named(bad) in str(found[0].message)
    assert history.input_report["epochs"][0]["steps"] == BATCHES  # training went on


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(deadline=None, max_examples=4)
@given(
    bad=bad_batches(BATCHES, ROWS),
    group=GROUPS,
    value=st.sampled_from([1e300, -1e39, 3.5e38, -(2.0**128 - 2.0**103)]),
    mode=st.sampled_from(["warn", "error"]),
)
def test_float64_values_beyond_float32_are_found_as_nan_is(
    form: str, bad: BadBatch, group: int, value: float, mode: str
) -> None:
    """A finite float64 value that the cast to float32 makes infinite (training to loss inf,
    found up front only in rows held in memory) is found in streamed batches too."""
    clean = _batches(dataclasses.replace(bad, value=0.5))  # (float32 cannot hold the value)
    batches = [(x.astype("float64"), y.astype("float64")) for x, y in clean]
    bad = dataclasses.replace(bad, value=value)
    for index in {bad.batch, bad.again} - {None}:
        batches[index][bad.part][bad.row, 0] = value
    found = f"found the value {value:g}, which the cast to float32 makes infinite, in {_named(bad)}"
    stats = "before training: .* beyond float32's range"  # Parquet's footers show it first
    with _streamed(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = FORMS[form](batches, group)
        if mode == "error":
            want = stats if form == "parquet-streamed" else re.escape(found)
            with pytest.raises(DataCheckError, match=want):
                _trainer().fit(**args, verbose=0, shuffle=False, check="error")
            return
        _trainer().fit(**args, verbose=0, shuffle=False)
    texts = [str(w.message) for w in caught if issubclass(w.category, DataCheckWarning)]
    if form == "parquet-streamed":  # (then the batch, as for an infinity)
        assert re.search(stats, texts.pop(0))
    assert len(texts) == 1 and found in texts[0]


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(deadline=None, max_examples=3)
@given(bad=bad_batches(BATCHES, ROWS), group=GROUPS)
def test_check_false_checks_nothing(form: str, bad: BadBatch, group: int) -> None:
    with _streamed(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer().fit(**FORMS[form](_batches(bad), group), verbose=0, check=False)
    assert not [w for w in caught if issubclass(w.category, DataCheckWarning)]


@pytest.mark.parametrize("column", ["a", "y"])
def test_streamed_parquet_nan_is_found_as_batches_pass(column: str) -> None:
    # The footers' statistics catch infinities (minima, maxima) before training, never NaN.
    rows = 40
    data = {"a": np.arange(rows, dtype="float32"), "y": np.ones(rows, "float32")}
    data[column][25] = np.nan
    folder = tempfile.mkdtemp()
    pq.write_table(pa.table(data), f"{folder}/d.parquet", row_group_size=10)
    old, limits.RESIDENT_BYTES_LIMIT = limits.RESIDENT_BYTES_LIMIT, 0  # streamed from disk
    try:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        trainer = Trainer(model)
        trainer.compile("sgd", "mse")
        noun = "input" if column == "a" else "target"
        with pytest.raises(DataCheckError, match=f"in the {noun}s of batch index 2"):
            trainer.fit(
                f"{folder}/d.parquet",
                schema=Schema(["a"], "y"),
                batch_size=10,
                shuffle=False,
                verbose=0,
                check="error",
            )
    finally:
        limits.RESIDENT_BYTES_LIMIT = old


def test_rows_in_memory_are_judged_by_the_scan_only() -> None:
    x = np.ones((20, D), "float32")
    y = np.ones((20, 1), "float32")
    x[7, 1] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer().fit(x, y, batch_size=4, verbose=0)
    found = [str(w.message) for w in caught if issubclass(w.category, DataCheckWarning)]
    assert len(found) == 1 and "before training" in found[0]  # the scan's, no batch warning


def test_dict_inputs_name_the_input() -> None:
    inputs = {"a": keras.Input((2,), name="a"), "b": keras.Input((1,), name="b")}
    joined = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    trainer = Trainer(keras.Model(inputs, keras.layers.Dense(1)(joined)))
    trainer.compile("sgd", "mse")

    def batch(b_value: float) -> Any:
        b = np.ones((4, 1), "float32")
        b[2, 0] = b_value
        return {"a": np.ones((4, 2), "float32"), "b": b}, np.ones((4, 1), "float32")

    with pytest.raises(
        DataCheckError, match=r"the infinite value inf in input 'b' of batch index 1"
    ):
        trainer.fit(iter([batch(1.0), batch(np.inf)]), verbose=0, check="error")


@pytest.mark.parametrize("form", ["generator", "pydataset", "parquet-streamed"])
@pytest.mark.parametrize("group", [3, ROWS, BATCHES * ROWS])
def test_batches_made_in_python_are_checked_there_not_by_a_tf_data_stage(
    monkeypatch: pytest.MonkeyPatch, form: str, group: int
) -> None:
    from fitpipe.training.batch_checks import BatchChecks

    def no_stage(*_: Any) -> Any:
        raise AssertionError(f"a tf.data check stage was built for {form}")

    monkeypatch.setattr(BatchChecks, "on_dataset", no_stage)
    bad = BadBatch(batch=3, again=None, part=1, row=2, value=float("nan"))
    with _streamed(), pytest.raises(DataCheckError, match=f"found NaN in {_named(bad)}"):
        _trainer().fit(**FORMS[form](_batches(bad), group), verbose=0, shuffle=False, check="error")


@pytest.mark.parametrize(
    ("values", "classes", "ignore", "finite", "part"),
    [
        ([0, 2, 5, 1], 3, None, None, 1),
        ([0, -1, 7, 1], 3, -1, None, 1),
        ([0.0, 1.0, np.nan], 3, None, None, 1),
        (np.array([1, 200, 3], "uint8"), 3, None, None, 1),
        ([1.0, np.inf, np.nan], 0, None, None, 2),
        (np.array([1.0, np.nan], "float16"), 0, None, "warn", 0),
        ([0, 1, 2], 3, None, None, 1),
    ],
)
def test_the_python_check_finds_what_the_graph_check_finds(
    values: Any, classes: int, ignore: int | None, finite: str | None, part: int
) -> None:
    from fitpipe.training.check_rules import Rule

    rule = Rule(part, 0, "leaf", classes, ignore, "loss", finite)
    value = np.asarray(values)
    found, _, shown = rule.problem(tf.convert_to_tensor(value))
    got = rule.numpy_problem(value)
    assert (got is not None) == bool(found)
    if got is not None:
        np.testing.assert_equal(got, float(shown))
    empty = np.zeros((0, 2), "float32")  # a batch of 0 rows holds no bad value
    assert Rule(part, 0, "leaf", classes, ignore, "loss", finite).numpy_problem(empty) is None


@settings(deadline=None, max_examples=6)
@given(
    bad=bad_batches(BATCHES, ROWS),
    mode=st.sampled_from(["warn", "error"]),
    spe=st.sampled_from([1, 2, 3]),
    labels=st.booleans(),
    empty=st.sets(st.integers(0, BATCHES), max_size=2),
)
def test_the_loop_checks_what_a_tf_data_stage_checks(
    bad: BadBatch, mode: str, spe: int, labels: bool, empty: set[int]
) -> None:
    # The compiled loop checks the batches of a tf.data iterator before each step; a
    # tf.data stage does for per-replica batches and eager steps. Both name the same batch,
    # stop before the same step and leave the same weights, however many steps a call runs
    # and wherever a batch of 0 rows falls (``empty``: before those batches).
    from fitpipe.training import steps

    batches = _batches(bad)
    if labels:  # sparse labels in [0, 3), the bad value as a label instead
        batches = [(x, np.where(np.isfinite(y), np.abs(y * 10) % 3, 7.0)) for x, y in batches]
    none = (np.zeros((0, D), "float32"), np.zeros((0, 1), "float32"))
    batches = [b for i, one in enumerate(batches) for b in [none] * (i in empty) + [one]]
    batches += [none] * (BATCHES in empty)  # a batch of 0 rows last
    spec = (tf.TensorSpec([None, D], tf.float32), tf.TensorSpec([None, 1], tf.float32))
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
    results = []
    for in_loop in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(steps.StepFunction, "checks_in_loop", in_loop)
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(3 if labels else 1)])
            trainer = Trainer(model)
            loss = "sparse_categorical_crossentropy" if labels else "mse"
            trainer.compile("sgd", loss, steps_per_execution=spe)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    trainer.fit(dataset, verbose=0, shuffle=False, check=mode)
                    error = ""
                except (DataCheckError, ValueError) as err:
                    error = str(err)
            texts = [str(w.message) for w in caught if issubclass(w.category, DataCheckWarning)]
            results.append((error, texts, trainer.model.get_weights()))
    (error, texts, weights), (staged_error, staged_texts, staged) = results
    assert error == staged_error and texts == staged_texts
    assert error or texts  # something was found
    for got, want in zip(weights, staged, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["warn", "error"])
def test_streamed_labels_outside_the_classes_stop_before_the_first_step(mode: str) -> None:
    """Under ``"warn"`` the footers' label range was dropped (the batch check stops on it),
    so a streamed file trained 7 steps before failing mid-epoch; held rows fail at once."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    labels[350] = 9  # in the last of 4 row groups
    path = f"{tempfile.mkdtemp()}/labels.parquet"
    table = pa.table({"a": rng.normal(size=400).astype("float32"), "y": labels})
    pq.write_table(table, path, row_group_size=100)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(3, activation="softmax")])
    trainer = Trainer(model)
    trainer.compile("sgd", "sparse_categorical_crossentropy")
    with _streamed(), pytest.raises(DataCheckError, match=r"outside the model's 3 classes"):
        trainer.fit(path, schema=Schema(["a"], "y"), batch_size=16, verbose=0, check=mode)
    assert int(model.optimizer.iterations.numpy()) == 0
