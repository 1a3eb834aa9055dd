"""Selectors resolved once per call (the CLI, ``fit``, ``predict``); a source's paths expanded."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

import fitpipe
from fitpipe.cli import main

#: Selectors of every kind: a glob, an ``re:`` expression and ``OTHER_COLUMNS``.
SELECTED = {"features": "re:f[0-9]", "targets": "y*", "passthrough": [fitpipe.OTHER_COLUMNS]}


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The resolutions made from now on (a spy around the internal resolver)."""
    from fitpipe.schemas import forms

    made: list[tuple[object, ...]] = []
    resolved = forms._resolved
    monkeypatch.setattr(forms, "_resolved", lambda *a: made.append(a) or resolved(*a))
    return made


@pytest.fixture
def expansions(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The expansions of a Parquet source's paths (globs, folders) made from now on."""
    from fitpipe.columnar import sources

    made: list[object] = []
    expanded = sources._expanded
    monkeypatch.setattr(
        sources, "_expanded", lambda x, caller: made.append(x) or expanded(x, caller)
    )
    return made


@pytest.mark.parametrize("predict", [False, True], ids=["train", "predict"])
def test_inspect_resolves_the_schema_once(
    project: Path, capsys, resolutions: list[tuple[object, ...]], predict: bool
) -> None:
    """Inspecting, then planning the source with the schema as given, resolve it once."""
    (project / "s.json").write_text(json.dumps(SELECTED))
    args = ["inspect", str(project / "data"), "--schema", str(project / "s.json")]
    assert main(args + ["--predict"] * predict) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  x: float32 (None, 3)" in lines and lines[-1] == "problems: none"
    assert len(resolutions) == 1


def test_fit_and_predict_resolve_the_schema_once(
    project: Path, capsys, resolutions: list[tuple[object, ...]], expansions: list[object]
) -> None:
    """``fitpipe fit`` and ``predict``, and ``Trainer.predict``: one resolution per call.

    ``fitpipe fit`` expands its input three times (its columns, for the schema it writes;
    the plan; the pre-flight check of the rows held); a prediction once, when planned.
    """
    spec = (project / "spec.toml").read_text().replace("epochs = 2", "epochs = 1")
    selected = 'features = "f*", targets = "re:^y$", passthrough = ["<other columns>"]'
    named = 'features = ["f0", "f1", "f2"], targets = "y", passthrough = ["id"]'
    spec = spec.replace(named, selected)
    (project / "spec.toml").write_text(spec)
    assert main(["fit", str(project / "spec.toml"), "--verbose", "0", "--no-plot"]) == 0
    assert len(resolutions) == 1 and len(expansions) == 3
    written = json.loads((project / "run" / "schema.json").read_text())
    assert written["features"] == ["f0", "f1", "f2"] and written["passthrough"] == ["id"]
    (project / "s.json").write_text(json.dumps(SELECTED))
    data, model = str(project / "data" / "*.parquet"), str(project / "run" / "model.keras")
    out = project / "p.parquet"
    args = ["predict", "--model", model, "--data", data, "--schema", str(project / "s.json")]
    assert main([*args, "--output", str(out)]) == 0 and f"wrote: {out}" in capsys.readouterr().out
    assert len(resolutions) == 2 and len(expansions) == 4
    trainer = fitpipe.Trainer(keras.saving.load_model(model))
    predicted = trainer.predict(data, schema=fitpipe.Schema(**SELECTED), verbose=0)
    assert predicted.shape == (90, 1) and len(resolutions) == 3 and len(expansions) == 5
