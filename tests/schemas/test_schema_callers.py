"""A schema's errors name the method the user called, and bad JSON text is a ``SchemaError``.

A dict given as ``fit(schema={...})`` (or to ``evaluate``, ``predict``, ``adapt``) is built
into a ``Schema`` inside that method: its errors name the method, not ``Schema.from_dict``
or ``Schema``. A ``Schema`` the user builds keeps its own name in its errors.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

import fitpipe
from fitpipe.errors import FitpipeError, SchemaError

FRAME = pd.DataFrame({"a": np.linspace(0.0, 1.0, 8), "y": np.linspace(1.0, 0.0, 8)})

#: Schema dicts with a mistake, and the start of what their error says after the caller.
BAD_DICTS = [
    ({"feature": ["a"], "targets": "y"}, r"got unknown keys \['feature'\]"),
    ({"features": "re:(", "targets": "y"}, "got an invalid regular expression for features"),
    ({"features": "", "targets": "y"}, "got an empty column name for features"),
    ({"features": ["a"], "targets": 3}, "got an invalid column list for targets"),
    ({"features": [1], "targets": "y"}, "got an invalid column list for features"),
    ({"features": ["a"], "targets": "y", "lengths": {"a": 0}}, "got an invalid length"),
    ({"targets": "y"}, "needs `features`"),
]
IDS = [
    "unknown-key",
    "bad-regex",
    "empty-name",
    "number-targets",
    "number-in-list",
    "bad-length",
    "no-features",
]


def _trainer() -> fitpipe.Trainer:
    trainer = fitpipe.Trainer(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    trainer.compile(optimizer="sgd", loss="mse")
    return trainer


CALLS = {
    "fit": lambda schema: _trainer().fit(FRAME, schema=schema, verbose=0),
    "evaluate": lambda schema: _trainer().evaluate(FRAME, schema=schema, verbose=0),
    "predict": lambda schema: _trainer().predict(FRAME, schema=schema, verbose=0),
    "adapt": lambda schema: fitpipe.adapt(FRAME, schema=schema),
}


@pytest.mark.parametrize("caller", sorted(CALLS))
@pytest.mark.parametrize(("schema", "what"), BAD_DICTS, ids=IDS)
def test_a_schema_dict_given_to_a_method_names_that_method(
    caller: str, schema: dict[str, Any], what: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"^`{caller}` {what}") as raised:
        CALLS[caller](schema)
    assert isinstance(raised.value, FitpipeError)
    assert "(of type " in str(raised.value)


@pytest.mark.parametrize(("schema", "what"), BAD_DICTS, ids=IDS)
def test_a_schema_built_by_the_user_keeps_its_own_name(schema: dict[str, Any], what: str) -> None:
    own = "Schema.from_dict" if "unknown keys" in what else "Schema"
    with pytest.raises((TypeError, ValueError), match=rf"^`{own}` {what}"):
        fitpipe.Schema.from_dict(schema)
    # and after a method named itself in one, the next one built by the user names itself
    with pytest.raises((TypeError, ValueError), match=r"^`fit` "):
        CALLS["fit"](schema)
    with pytest.raises((TypeError, ValueError), match=rf"^`{own}` {what}"):
        fitpipe.Schema.from_dict(schema)


@pytest.mark.parametrize(
    "text", ["{bad", "", "[1, 2", '{"features": "a",}', "{'features': 'a'}", None, 3]
)
def test_from_json_of_text_that_is_no_json_is_a_schema_error(text: Any) -> None:
    with pytest.raises(
        SchemaError,
        match=r"^`Schema\.from_json` cannot parse the text as JSON \(.+\)\. The text is a "
        r"JSON object of the keys `Schema\.to_json` writes\. Fix the text.*"
        rf"Received: text=.* \(of type {type(text).__name__}\)$",
    ):
        fitpipe.Schema.from_json(text)


def test_from_json_still_reads_what_to_json_writes() -> None:
    schema = fitpipe.Schema(["a"], targets="y", fill={"a": 0.0})
    assert fitpipe.Schema.from_json(schema.to_json()) == schema
