"""``Trainer.fit(check=...)``: the pre-flight check on the pipelines ``fit`` built.

What is scanned, and what it costs:

* rows ``fit`` holds in memory (arrays, tensors, pandas, Arrow tables, Parquet data small
  enough to be read whole): every value, in one vectorized pass (no read: the rows are
  already in memory);
* Parquet streamed from disk: the footer statistics (nulls, minima and maxima, no data
  read), or with ``check="full"`` every value of the used columns (one extra read); under
  ``MultiWorkerMirroredStrategy`` by the chief alone, its error raised on every worker;
* inputs that come in batches (generators, ``tf.data``, ``PyDataset``, Arrow streams, and
  Parquet streamed from disk): not scanned up front; their batches are checked as they pass
  (``fitpipe.training.batch_checks``): NaN and infinity in floating features and targets
  (warned of once with ``"warn"``, stopped before the step with ``"error"``), and bad labels
  and weights (always stopped).
"""

from __future__ import annotations

from typing import Any

import keras

from fitpipe.adapters import AdaptRequest, ArraySource, Share
from fitpipe.columnar import file_identity, is_parquet, open_dataset
from fitpipe.errors import DataCheckError, DataCheckWarning, message, raw, warn
from fitpipe.pipeline import Pipeline
from fitpipe.training.preflight.checks import (
    check_mode,
    column_names_of,
    parquet_report,
    resolved_schema,
    rows_report,
)
from fitpipe.training.preflight.findings import Finding
from fitpipe.training.preflight.report import CheckReport
from fitpipe.training.preflight.targets import output_rules

__all__ = ["check_evaluate", "check_fit", "finite_check", "raise_or_warn"]

_EXPECTED = (
    "Feature, target and weight values are finite numbers, and targets suit the model's "
    "losses and outputs (a single NaN makes the loss and then every weight NaN)"
)
_FIX = (
    "Fix the data (`fitpipe check DATA --model M` or "
    "`fitpipe.training.preflight.check_data` shows the whole report), or pass `check=False` "
    "to train anyway"
)


def _report(
    model: keras.Model,
    pipeline: Pipeline,
    x: Any,
    y: Any,
    schema: Any,
    mode: str,
    where: str,
    caller: str = "fit",
    share: Share | None = None,
) -> CheckReport | None:
    def rules_of(structure: Any) -> Any:
        return output_rules(model, structure)

    if isinstance(pipeline.source, ArraySource):
        columns, files = column_names_of(x), None
        if columns is None and schema is not None and is_parquet(x):  # held in memory
            dataset = open_dataset(x, caller)  # (footers only)
            columns, files = list(dataset.schema.names), file_identity(dataset)
        resolved = (
            resolved_schema(schema, columns, caller) if columns and schema is not None else None
        )
        return rows_report(pipeline.source, x, y, resolved, rules_of, where, files)
    if is_parquet(x) and share is not None:
        _chief_parquet_report(share, x, schema, rules_of, mode, caller)
        return None
    if is_parquet(x):
        return parquet_report(x, schema, rules_of, mode == "full", False, caller)
    return None


def _chief_parquet_report(
    share: Share, x: Any, schema: Any, rules_of: Any, mode: str, caller: str
) -> None:
    """Under a multi-worker strategy the chief alone checks Parquet streamed from disk.

    Its footers (or, with ``"full"``, its data) are read once, by the chief, which warns or
    raises; its error is raised on every worker at once (``share``), so no worker reads
    every footer and none waits for a chief that stopped.
    """

    def make() -> bytes:
        report = parquet_report(x, schema, rules_of, mode == "full", False, caller)
        raise_or_warn([report], mode, caller)
        return b""

    share(make)


def finite_check(check: Any) -> str | None:
    """How streamed batches are checked for NaN and infinity: ``"warn"``, ``"error"``, None.

    ``check="full"`` stops as ``"error"`` does; ``check=False`` checks nothing.
    """
    mode = check_mode(check, "fit")
    return None if mode is None else ("warn" if mode == "warn" else "error")


def check_fit(
    model: keras.Model,
    request: AdaptRequest,
    train: Pipeline,
    val: Pipeline | None,
    validation_data: Any,
    check: Any,
) -> list[CheckReport]:
    """Runs ``fit``'s pre-flight check, then warns or raises as ``check`` says.

    Args:
        model: The compiled model.
        request: ``fit``'s request (its ``x``, ``y`` and ``schema`` name the columns).
        train: The training pipeline.
        val: The validation pipeline, split off or from ``validation_data``.
        validation_data: ``fit``'s ``validation_data``.
        check: ``"warn"``, ``"error"``, ``"full"`` or False.

    Returns:
        The reports (none with ``check=False``).

    Raises:
        DataCheckError: With ``"error"`` or ``"full"``, on a finding of level error.
    """
    mode = check_mode(check, "fit")
    if mode is None:
        return []
    share = request.share
    reports = [_report(model, train, request.x, request.y, request.schema, mode, "x", share=share)]
    if val is not None and (validation_data is not None or not is_parquet(request.x)):
        vx, vy = request.x, request.y
        if validation_data is not None:
            parts = tuple(validation_data) if isinstance(validation_data, (list, tuple)) else ()
            vx, vy = (*parts, None, None)[:2] if parts else (validation_data, None)
        reports.append(
            _report(model, val, vx, vy, request.schema, mode, "validation data", share=share)
        )
    found = [r for r in reports if r is not None]
    raise_or_warn(found, mode, "fit")
    return found


def check_evaluate(
    model: keras.Model, request: AdaptRequest, pipeline: Pipeline, check: Any
) -> list[CheckReport]:
    """Runs ``evaluate``'s pre-flight check (as ``fit``'s, on its one input).

    Args:
        model: The compiled model.
        request: ``evaluate``'s request (its ``x``, ``y`` and ``schema``).
        pipeline: The pipeline of ``x``.
        check: ``"warn"``, ``"error"``, ``"full"`` or False.

    Returns:
        The report (none with ``check=False`` or for inputs that are not scanned).

    Raises:
        DataCheckError: With ``"error"`` or ``"full"``, on a finding of level error.
    """
    mode = check_mode(check, "evaluate")
    if mode is None:
        return []
    report = _report(
        model, pipeline, request.x, request.y, request.schema, mode, "x", "evaluate", request.share
    )
    found = [report] if report is not None else []
    raise_or_warn(found, mode, "evaluate", "evaluating")
    return found


def _count(findings: list[Finding], noun: str) -> str:
    return f"{len(findings)} {noun}{'' if len(findings) == 1 else 's'}"


def _text(findings: list[Finding], where: dict[int, str]) -> str:
    return "; ".join(f"{where[id(f)]}{f.text}" for f in findings)


def raise_or_warn(
    reports: list[CheckReport], mode: str, caller: str, before: str = "training"
) -> None:
    """Raises :class:`DataCheckError` or warns :class:`DataCheckWarning` for the findings.

    ``"warn"``: errors and warnings, less those the batch checks stop on anyway, make one
    warning; those of Parquet judged from its footers (streamed), which the batch checks
    stop on only where the bad row group comes, make an error (but nulls, whose error
    names their file and row). ``"error"``/``"full"``:
    errors make an error; warnings a warning. Notes never.

    Args:
        reports: The reports of the training and validation data.
        mode: ``"warn"``, ``"error"`` or ``"full"``.
        caller: The public method, for messages.
        before: What the check comes before, for messages (``"training"``).
    """
    where: dict[int, str] = {}
    errors: list[Finding] = []
    warned: list[Finding] = []
    for index, report in enumerate(reports):
        for finding in report.findings:
            where[id(finding)] = "in the validation data, " if index else ""
            # Parquet read from disk: the batch checks would stop the run on it anyway, but
            # only at its row group, after the steps before it trained: stopped here instead
            # (not nulls: the conversion's error names their file and row)
            streamed = finding.enforced and report.scanned == "statistics"
            streamed = streamed and finding.check != "nulls"
            if finding.level == "error" and (mode != "warn" or streamed):
                errors.append(finding)
            elif finding.level in ("error", "warning") and not finding.enforced:
                warned.append(finding)
    received = raw(" | ".join(f"{r.source}: {r.summary()}" for r in reports))
    if errors:
        what = f"found {_count(errors, 'problem')} in the data before {before}: "
        raise DataCheckError(
            message(caller, what + _text(errors, where), _EXPECTED, _FIX, data=received)
        )
    if warned:
        what = f"found {_count(warned, 'likely problem')} in the data before {before}: "
        text = message(caller, what + _text(warned, where), _EXPECTED, _FIX, data=received)
        warn(DataCheckWarning(text))
