"""Tests for what ``fit``/``evaluate``/``predict`` print, compared with Keras."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from differential import dense_model, regression_data

from fitpipe.testing.keras_diff import compile_both, make_twins
from fitpipe.training.input_report import LINE_PREFIX
from fitpipe.training.steps import XLA_NOTICE

X, Y = regression_data(n=96, d=4)
COMPILE = {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _clean(text: str) -> str:
    """Drop ANSI colour codes and backspaces, split ``\\r`` updates into lines."""
    return _ANSI.sub("", text).replace("\x08", "").replace("\r", "\n")


def _skeleton(text: str) -> list[str]:
    """Reduce output to its structure: numbers and timings replaced, blanks removed.

    fitpipe's own notice that the train step is being compiled with XLA is left out (Keras
    does not print it; test_first_epoch_says_once_that_it_compiles_with_xla checks it), and
    so is the line of the input-bound report after ``fit`` (tests/training/test_input_report.py).
    """
    lines = []
    for line in _clean(text).splitlines():
        if line == XLA_NOTICE or line.startswith(LINE_PREFIX):
            continue
        line = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?(ms|us|s)/step", "<T>/step", line)
        line = re.sub(r"\b\d+(ms|us|s)\b", "<T>", line)
        line = re.sub(r"(loss|mae|val_loss|val_mae): [-\d.e+naif]+", r"\1: <N>", line)
        line = re.sub(r"━+", "<BAR>", line).strip()
        if line:
            lines.append(line)
    return lines


def _final_lines(out: str) -> list[str]:
    """The last progress line of each epoch."""
    finals: list[str] = []
    for line in _skeleton(out):
        if line.startswith("Epoch"):
            finals.append("")
        elif line.startswith("3/3") and finals:
            finals[-1] = line
    return finals


def _run(capsys: pytest.CaptureFixture[str], verbose: int | str) -> tuple[str, str]:
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, COMPILE)
    capsys.readouterr()
    ref.fit(
        X,
        Y,
        batch_size=32,
        epochs=2,
        verbose=verbose,
        shuffle=False,
        validation_data=(X[:16], Y[:16]),
    )
    keras_out = capsys.readouterr().out
    api.fit(
        X,
        Y,
        batch_size=32,
        epochs=2,
        verbose=verbose,
        shuffle=False,
        validation_data=(X[:16], Y[:16]),
    )
    fitpipe_out = capsys.readouterr().out
    return keras_out, fitpipe_out


def test_verbose_1_prints_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    keras_out, out = _run(capsys, 1)
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "3/3" in _clean(out)
    assert "loss:" in out and "val_loss:" in out
    # The bar is redrawn in place; what stays on screen is each epoch's last line. (Whether an
    # intermediate 3/3 line is drawn before validation depends on the 0.05 s redraw interval.)
    assert _final_lines(out) == _final_lines(keras_out)
    assert all("val_loss: <N>" in line for line in _final_lines(out))
    assert [line for line in _skeleton(out) if line.startswith("Epoch")] == [
        "Epoch 1/2",
        "Epoch 2/2",
    ]


def test_verbose_2_prints_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    keras_out, out = _run(capsys, 2)
    assert _skeleton(keras_out) == [
        "Epoch 1/2",
        "3/3 - <T> - <T>/step - loss: <N> - mae: <N> - val_loss: <N> - val_mae: <N>",
        "Epoch 2/2",
        "3/3 - <T> - <T>/step - loss: <N> - mae: <N> - val_loss: <N> - val_mae: <N>",
    ]
    assert _skeleton(out) == _skeleton(keras_out), f"fitpipe printed:\n{out}"
    assert "━" not in out


def test_verbose_auto_is_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    keras_out, out = _run(capsys, "auto")
    assert "3/3" in _clean(out) and "━" in out
    assert "━" in keras_out


def test_verbose_0_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, COMPILE)
    capsys.readouterr()
    api.fit(X, Y, epochs=2, verbose=0, validation_split=0.25)
    api.evaluate(X, Y, verbose=0)
    api.predict(X, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == ""


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_evaluate_and_predict_verbose_1(capsys: pytest.CaptureFixture[str], method: str) -> None:
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, COMPILE)
    capsys.readouterr()
    args = (X, Y) if method == "evaluate" else (X,)
    getattr(ref, method)(*args, batch_size=32, verbose=1)
    keras_out = capsys.readouterr().out
    getattr(api, method)(*args, batch_size=32, verbose=1)
    out = capsys.readouterr().out
    assert "3/3" in _clean(out)
    # Keras draws the last step twice when it ends 0.05 s after the previous redraw (see
    # test_last_step_is_drawn_once_however_slow_the_steps); what stays is its final line.
    finals = [line for line in _skeleton(keras_out) if line.startswith("3/3")]
    assert [line for line in _skeleton(out) if line.startswith("3/3")] == finals[-1:]
    keras.backend.clear_session()


class _SlowClock:
    """A clock for Keras' progress bar on which every reading is 1 s after the last."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_last_step_is_drawn_once_however_slow_the_steps(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    # Under load every step ends more than the bar's 0.05 s redraw interval after the last
    # redraw; the last step was then drawn by its batch end and again, finalized, at the end.
    from keras.src.utils import progbar

    monkeypatch.setattr(progbar, "time", _SlowClock())
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, COMPILE)
    capsys.readouterr()
    args = (X,) if method == "predict" else (X, Y)
    kwargs = {"epochs": 2} if method == "fit" else {}
    getattr(api, method)(*args, batch_size=32, verbose=1, **kwargs)
    lines = _skeleton(capsys.readouterr().out)
    epochs = 2 if method == "fit" else 1
    assert [line for line in lines if line.startswith("2/3")], lines  # the clock is slow
    assert len([line for line in lines if line.startswith("3/3")]) == epochs, lines


@pytest.mark.parametrize(
    ("verbose", "jit", "said"), [(1, True, 1), (2, True, 1), (0, True, 0), (2, False, 0)]
)
def test_first_epoch_says_once_that_it_compiles_with_xla(
    capsys: pytest.CaptureFixture[str], verbose: int, jit: bool, said: int
) -> None:
    _, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(_, twin, {**COMPILE, "jit_compile": jit})
    capsys.readouterr()
    api.fit(X, Y, batch_size=32, epochs=2, verbose=verbose, validation_split=0.25)
    api.fit(X, Y, batch_size=32, epochs=1, verbose=verbose)  # compiled already: no notice
    lines = _clean(capsys.readouterr().out).splitlines()
    assert lines.count(XLA_NOTICE) == said, lines
    if said:
        assert lines.index(XLA_NOTICE) == lines.index("Epoch 1/2") + 1  # before the first step


@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch", "evaluate", "predict"])
def test_the_xla_notice_is_fits_alone_not_a_later_calls(
    capsys: pytest.CaptureFixture[str], method: str
) -> None:
    """After a verbose ``fit`` (of any model), a model compiled with XLA said it compiled in
    ``train_on_batch``, which prints nothing in Keras."""
    _, other = make_twins(lambda: dense_model(d=4))
    compile_both(_, other, COMPILE).fit(X, Y, batch_size=32, epochs=1, verbose=1)
    _, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(_, twin, {**COMPILE, "jit_compile": True})
    capsys.readouterr()
    args = (X[:8],) if method == "predict" else (X[:8], Y[:8])
    getattr(api, method)(*args, **({} if method.endswith("batch") else {"verbose": 0}))
    assert XLA_NOTICE not in capsys.readouterr().out


def test_predict_to_file_draws_its_last_row_count_once_however_slow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from keras.src.utils import progbar

    monkeypatch.setattr(progbar, "time", _SlowClock())
    ref, twin = make_twins(lambda: dense_model(d=4))
    api = compile_both(ref, twin, COMPILE)
    capsys.readouterr()
    import pyarrow as pa

    import fitpipe

    x = np.concatenate([X] * 3)  # 288 rows
    table = pa.table({"id": np.arange(len(x)), **{f"f{i}": x[:, i] for i in range(4)}})
    schema = fitpipe.Schema(features=[f"f{i}" for i in range(4)], passthrough=["id"])
    api.predict(table, batch_size=32, verbose=1, schema=schema, output=str(tmp_path / "p.pq"))
    lines = _skeleton(capsys.readouterr().out)
    assert len([line for line in lines if line.startswith("288/")]) == 1, lines
