"""``fitpipe check``: the pre-flight check of Parquet data, as a table or JSON.

Reads the schema's feature, target and weight columns of every file (a progress line on
stderr when it is a terminal), or with ``--stats-only`` the footer statistics alone; with
``--model`` (a saved ``.keras`` model, or a run spec whose model is built and compiled as
``fitpipe fit`` would) the targets are checked against the model's losses and outputs.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

import keras

from fitpipe.cli.files import load_schema
from fitpipe.cli.models import load_keras
from fitpipe.columnar import is_parquet
from fitpipe.errors import FitpipeValueError, message
from fitpipe.schemas import Schema
from fitpipe.training import CheckReport, check_data

__all__ = ["load_model", "run_check"]

_CALLER = "fitpipe check"


def load_model(path: str) -> tuple[keras.Model, Schema | None]:
    """The compiled model of a ``.keras`` file or of a run spec (and the spec's schema).

    Args:
        path: A ``.keras`` file, or a ``.toml`` run spec.

    Returns:
        The model, and the schema a spec declares (None for a ``.keras`` file).
    """
    if path.endswith(".toml"):
        from fitpipe.cli.applying import applying
        from fitpipe.cli.commands import build_model, compile_model
        from fitpipe.cli.spec import load_spec

        spec = load_spec(path)
        with applying(spec):
            model = build_model(spec)
            if spec.compile:
                compile_model(model, spec)
        return model, spec.data.schema
    if not os.path.exists(path):
        raise FitpipeValueError(
            message(
                _CALLER,
                f"cannot find the model {path!r}",
                "`--model` is a saved .keras model or a run spec (.toml)",
                "Check the path",
                model=path,
            )
        )
    with warnings.catch_warnings():  # the optimizer's state is not needed for a check
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        return load_keras(path, _CALLER, "model"), None


def run_check(
    source: str,
    schema_path: str | None = None,
    model_path: str | None = None,
    stats_only: bool = False,
    progress: bool | None = None,
) -> CheckReport:
    """Checks Parquet data, against a model when one is given.

    Args:
        source: A Parquet file, folder or glob.
        schema_path: A schema file (JSON or TOML); default: the run spec's, with
            ``--model SPEC.toml``.
        model_path: A ``.keras`` model or a run spec, or None.
        stats_only: Answer from the footer statistics alone (no data read).
        progress: Show a progress line on stderr (default: when stderr is a terminal).

    Returns:
        The report.

    Raises:
        FitpipeError: When the data, schema or model cannot be read.
    """
    model, schema = load_model(model_path) if model_path else (None, None)
    if schema_path:
        schema = load_schema(schema_path)
    if not is_parquet(source):
        raise FitpipeValueError(
            message(
                _CALLER,
                f"cannot check {source!r}",
                "`fitpipe check` reads Parquet files, folders and globs",
                "Pass the path of Parquet data",
                source=source,
            )
        )
    if schema is None:
        raise FitpipeValueError(
            message(
                _CALLER,
                "needs a schema",
                "The check reads the feature, target and weight columns the schema names",
                "Pass `--schema FILE` (`fitpipe inspect DATA --write-schema FILE` proposes "
                "one), or `--model SPEC.toml`",
                schema=None,
            )
        )
    shown = sys.stderr.isatty() if progress is None else progress
    return check_data(
        source, model=model, schema=schema, full=not stats_only, progress=shown, caller=_CALLER
    )


def print_report(report: CheckReport, as_json: bool, all_columns: bool) -> None:
    """Prints the report to stdout, as a table or as JSON."""
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=_plain))
    else:
        print(report.format(all_columns))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
