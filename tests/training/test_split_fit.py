"""``fit(split_by=..., stratify=..., extra=...)`` and ``evaluate(check=..., extra=...)`` (issue 18).

Keras has no grouped or stratified split: the oracle is Keras trained on the rows fitpipe
says are the training side, validated on the other side (``validation_data``), from
identical initial weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from differential import classification_data, dense_model
from hypothesis import given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe import limits
from fitpipe.adapters import ArraySource
from fitpipe.columnar import key_array, key_hashes, validation_mask
from fitpipe.errors import DataCheckError, DataCheckWarning, DataMismatchError
from fitpipe.pipeline.stratify import stratified_split
from fitpipe.testing.keras_diff import assert_histories_close, assert_weights_close, make_twins

XC, LABELS = classification_data(n=96, d=6, classes=3)
USERS = np.array([f"user-{i % 17}" for i in (np.arange(96) * 7) % 96])
SIDE = validation_mask(key_hashes(key_array(USERS, "k")), 0.25)
COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
FIT = {"batch_size": 16, "epochs": 2, "shuffle": False}


def _cls() -> keras.Model:
    return dense_model(d=6, units=3, activation="softmax")


def _twins() -> tuple[keras.Model, Any]:
    ref, twin = make_twins(_cls)
    ref.compile(**COMPILE)
    trainer = fitpipe.Trainer(twin)
    trainer.compile(**COMPILE)
    return ref, trainer


def _keras_on_sides(
    ref: keras.Model, mask: np.ndarray, verbose: int = 0
) -> keras.callbacks.History:
    return ref.fit(
        XC[~mask], LABELS[~mask], validation_data=(XC[mask], LABELS[mask]), verbose=verbose, **FIT
    )


def test_grouped_split_trains_and_validates_on_its_sides_as_keras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, trainer = _twins()
    expected = _keras_on_sides(ref, SIDE, verbose=2)
    capsys.readouterr()
    history = trainer.fit(XC, LABELS, validation_split=0.25, split_by=USERS, verbose=2, **FIT)
    sizes = history.params.pop("validation_split_sizes")
    assert sizes == {
        "by": "split_by (keys given)",
        "validation_split": 0.25,
        "train_rows": int((~SIDE).sum()),
        "validation_rows": int(SIDE.sum()),
        "train_keys": len(set(USERS[~SIDE])),
        "validation_keys": len(set(USERS[SIDE])),
    }
    assert_histories_close(expected, history)
    assert_weights_close(ref, trainer.model)
    printed = capsys.readouterr().out
    assert (
        f"validation_split=0.25 by split_by (keys given): {sizes['train_rows']} rows of "
        f"{sizes['train_keys']} keys for training, {sizes['validation_rows']} rows of "
        f"{sizes['validation_keys']} keys for validation" in printed
    )


def _frame() -> pd.DataFrame:
    frame = pd.DataFrame({f"f{i}": XC[:, i] for i in range(6)})
    return frame.assign(label=LABELS.astype("int64"), user_id=USERS)


SCHEMA = fitpipe.Schema([f"f{i}" for i in range(6)], "label")


@pytest.mark.parametrize("form", ["pandas", "parquet-streamed"])
def test_grouped_split_of_columnar_data_matches_keras(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x: Any = _frame()
    if form == "parquet-streamed":
        pq.write_table(pa.Table.from_pandas(x), tmp_path / "a.parquet", row_group_size=20)
        monkeypatch.setattr(limits, "RESIDENT_BYTES_LIMIT", 0)
        x = str(tmp_path)
    ref, trainer = _twins()
    expected = _keras_on_sides(ref, SIDE)
    history = trainer.fit(
        x, schema=SCHEMA, validation_split=0.25, split_by="user_id", verbose=0, **FIT
    )
    assert history.params.pop("validation_split_sizes")["validation_rows"] == int(SIDE.sum())
    assert_histories_close(expected, history)
    assert_weights_close(ref, trainer.model)


def test_stratified_split_matches_keras_on_its_sides() -> None:
    ref, trainer = _twins()
    rows = np.arange(96, dtype="float32")[:, None]
    _, val, _ = stratified_split(ArraySource(rows, LABELS, None, 96), 0.25)
    mask = np.isin(np.arange(96), val.x[:, 0].astype(int))
    expected = _keras_on_sides(ref, mask)
    history = trainer.fit(XC, LABELS, validation_split=0.25, stratify=True, verbose=0, **FIT)
    sizes = history.params.pop("validation_split_sizes")
    assert sizes["validation_rows"] == 96 - int(96 * 0.75)
    counts = np.bincount(LABELS)
    for c, sides in sizes["classes"].items():
        assert sides["train"] + sides["validation"] == counts[c]
        assert abs(sides["validation"] - counts[c] / 4) <= 1
    assert_histories_close(expected, history)
    assert_weights_close(ref, trainer.model)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"split_by": USERS}, r"^`fit` got `split_by` without a `validation_split`\."),
        (
            {"split_by": USERS, "validation_split": 0.2, "validation_data": (XC, LABELS)},
            r"^`fit` got `split_by` together with `validation_data`",
        ),
        (
            {"split_by": USERS, "validation_split": 0.2, "stratify": True},
            r"^`fit` got both `split_by` and `stratify`\.",
        ),
        (
            {"split_by": ["only-one"] * 96, "validation_split": 0.2},
            r"^`fit` cannot split 96 rows of 1 key\(s\) by split_by \(keys given\) with "
            r"`validation_split=0\.2`: every key fell on the training side\.",
        ),
        (
            {"stratify": True, "validation_split": 0.2, "y": XC[:, 0]},
            r"^`fit` cannot stratify a regression target",
        ),
    ],
)
def test_fit_split_errors(kwargs: dict[str, Any], pattern: str) -> None:
    _, trainer = _twins()
    kwargs = {"y": LABELS, **kwargs}
    with pytest.raises((ValueError, TypeError, DataMismatchError), match=pattern):
        trainer.fit(XC, epochs=1, verbose=0, **kwargs)


@settings(max_examples=min(20, settings.default.max_examples), deadline=None)
@given(
    split=st.one_of(st.floats(0.01, 0.99), st.sampled_from([0, 0.0, 0.5])),
    option=st.sampled_from([{"split_by": USERS}, {"stratify": True}]),
)
def test_split_errors_show_the_validation_split_passed(
    split: float, option: dict[str, Any]
) -> None:
    """Beside `validation_data` (which replaces the split) too: the value as it was passed."""
    _, trainer = _twins()
    with pytest.raises(ValueError, match="together with `validation_data`") as caught:
        trainer.fit(
            XC, LABELS, validation_split=split, validation_data=(XC, LABELS), verbose=0, **option
        )
    assert f"validation_split={split!r} (of type {type(split).__name__})" in str(caught.value)


# ------------------------------------------------------------------------------ extra
def _two_inputs() -> keras.Model:
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(3, activation="softmax")(joined))


def _dict_x(extra_entries: bool) -> dict[str, Any]:
    x: dict[str, Any] = {"a": XC[:, :3], "b": XC[:, 3:]}
    if extra_entries:
        x.update(user_id=USERS, seen=pd.date_range("2026", periods=96).to_numpy())
    return x


def test_extra_entries_are_an_error_by_default() -> None:
    trainer = fitpipe.Trainer(_two_inputs())
    trainer.compile(**COMPILE)
    with pytest.raises(
        DataMismatchError,
        match=r"^`fit` got input names that do not match the model \(missing \[\], unknown "
        r"\['user_id'\]\)\. .* Key the dict by the model's input names, or pass "
        r"`extra=\"ignore\"` to leave the other entries of the dict `x` out \(with a "
        r"schema: name only model inputs as its features\)\.",
    ):
        trainer.fit({**_dict_x(False), "user_id": USERS}, LABELS, verbose=0)
    with pytest.raises(TypeError, match=r"^`fit` cannot use `x\['seen'\]` of dtype datetime64"):
        trainer.fit(_dict_x(True), LABELS, verbose=0)


def test_extra_ignore_leaves_the_entries_out_as_keras_would_without_them() -> None:
    ref, twin = make_twins(_two_inputs)
    ref.compile(**COMPILE)
    trainer = fitpipe.Trainer(twin)
    trainer.compile(**COMPILE)
    expected = ref.fit(_dict_x(False), LABELS, verbose=0, **FIT)
    history = trainer.fit(_dict_x(True), LABELS, extra="ignore", verbose=0, **FIT)
    assert_histories_close(expected, history)
    assert_weights_close(ref, twin)
    found = trainer.evaluate(_dict_x(True), LABELS, extra="ignore", verbose=0, return_dict=True)
    assert found == pytest.approx(ref.evaluate(_dict_x(False), LABELS, verbose=0, return_dict=True))
    np.testing.assert_allclose(
        trainer.predict(_dict_x(True), extra="ignore", verbose=0),
        ref.predict(_dict_x(False), verbose=0),
        rtol=1e-5,
    )


def test_extra_ignore_keeps_the_split_by_entry_for_the_split() -> None:
    trainer = fitpipe.Trainer(_two_inputs())
    trainer.compile(**COMPILE)
    history = trainer.fit(
        _dict_x(True),
        LABELS,
        extra="ignore",
        split_by="user_id",
        validation_split=0.25,
        verbose=0,
        epochs=1,
    )
    assert history.params["validation_split_sizes"]["validation_rows"] == int(SIDE.sum())


def test_invalid_extra_is_an_error() -> None:
    _, trainer = _twins()
    with pytest.raises(
        ValueError, match=r'^`evaluate` got an invalid `extra`\. `extra` is "error"'
    ):
        trainer.evaluate(XC, LABELS, extra="drop", verbose=0)


# ------------------------------------------------------------------------- evaluate check
def _nan_x() -> np.ndarray:
    x = XC.copy()
    x[5, 2] = np.nan
    return x


def test_evaluate_check_warns_by_default() -> None:
    _, trainer = _twins()
    with pytest.warns(
        DataCheckWarning,
        match=r"^`evaluate` found 1 likely problem in the data before evaluating: feature "
        r"column 'x\[:, 2\]' holds 1 NaN",
    ):
        trainer.evaluate(_nan_x(), LABELS, verbose=0)


def test_evaluate_check_error_and_off() -> None:
    _, trainer = _twins()
    with pytest.raises(
        DataCheckError,
        match=r"^`evaluate` found 2 problems in the data before evaluating: .*NaN.*label",
    ):
        trainer.evaluate(_nan_x(), LABELS + 1, check="error", verbose=0)
    assert np.isnan(trainer.evaluate(_nan_x(), LABELS, check=False, verbose=0)[0])
    with pytest.raises(ValueError, match=r"^`evaluate` got an unknown `check`"):
        trainer.evaluate(XC, LABELS, check="sometimes", verbose=0)
