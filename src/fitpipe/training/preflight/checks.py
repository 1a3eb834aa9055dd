"""The pre-flight check: scan an input, judge it against the model, report or stop.

:func:`check_data` builds a :class:`~fitpipe.training.preflight.report.CheckReport` for any
input whose data can be scanned: rows held in memory (NumPy arrays, dicts and lists of them,
tensors, pandas, Arrow tables), Parquet (read in full, or its footer statistics only).
Inputs that come in batches (generators, ``tf.data``, ``PyDataset``, Arrow streams) are not
scanned: their labels and weights are checked by the batch checks as batches pass.

:func:`check_fit` runs it for ``Trainer.fit(check=...)`` on the pipelines ``fit`` built.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import pyarrow as pa
import pyarrow.dataset as pads
import tensorflow as tf

from fitpipe.adapters import AdaptRequest, ArraySource, is_pandas
from fitpipe.columnar import is_parquet, missing_in_first_file, open_dataset, unknown_column
from fitpipe.errors import DataCheckError, FitpipeError, message
from fitpipe.pipeline import adapt_source
from fitpipe.schemas import Role, Schema, as_schema
from fitpipe.training.preflight.cache import ScanCache
from fitpipe.training.preflight.findings import LEVELS, Finding, column_findings
from fitpipe.training.preflight.findings import target_findings as _target_findings
from fitpipe.training.preflight.parquet_scan import footer_stats, stream_scan
from fitpipe.training.preflight.report import CheckReport
from fitpipe.training.preflight.scan import (
    ColumnNames,
    Scanner,
    leaf_paths,
    role_columns,
    scan_batches,
    scan_rows,
    spec_names,
)
from fitpipe.training.preflight.stats import TargetStats
from fitpipe.training.preflight.targets import OutputRule, output_rules

__all__ = [
    "CHECK_MODES",
    "check_data",
    "check_mode",
    "column_names_of",
    "parquet_report",
    "resolved_schema",
    "rows_report",
]

#: The scans of rows in memory that ``fit`` made, kept for its next calls (``cache``).
SCANS = ScanCache()

#: The values of ``fit(check=...)``.
CHECK_MODES = ("warn", "error", "full")
_READ = (Role.FEATURE, Role.TARGET, Role.WEIGHT)


def check_mode(check: Any, caller: str) -> str | None:
    """``check`` validated: ``"warn"`` (also for True), ``"error"``, ``"full"``, None for False."""
    if check is False or check is None:
        return None
    if check is True:
        return "warn"
    if isinstance(check, str) and check in CHECK_MODES:
        return check
    raise DataCheckError(
        message(
            caller,
            "got an unknown `check`",
            '`check` is "warn" (the default), "error", "full" or False',
            'Pass one of those, e.g. `check="error"`',
            check=check,
        )
    )


def column_names_of(x: Any) -> list[str] | None:
    """The column names of a table or frame ``x`` (None for other inputs)."""
    if isinstance(x, (pa.Table, pa.RecordBatch)):
        return list(x.schema.names)
    if is_pandas(x) and hasattr(x, "columns"):
        return [str(c) for c in x.columns]
    columns = getattr(x, "columns", None)
    return [str(c) for c in columns] if isinstance(columns, (list, tuple)) else None


def resolved_schema(schema: Any, columns: list[str], caller: str) -> Schema | None:
    """``schema`` (any form ``fit`` takes) with selectors resolved; None if absent or unfit."""
    given = as_schema(schema, caller)
    if given is None:
        return None
    try:
        return given.resolve(columns, "the data", caller, _READ)
    except FitpipeError:
        return None  # the adapter words that error


def _names(x: Any, y: Any, schema: Schema | None) -> tuple[Any, Any, Any]:
    """Column names for the leaves of ``(x, y, sample_weight)`` rows made of ``x``."""
    if schema is not None:
        weight = ColumnNames([schema.sample_weight]) if schema.sample_weight else None
        return spec_names(schema.features), spec_names(schema.targets), weight
    frame = column_names_of(x) if is_pandas(x) else None
    target = column_names_of(y) if is_pandas(y) else None
    if is_pandas(y) and target is None and getattr(y, "name", None) is not None:
        target = [str(y.name)]
    return (
        None if frame is None else ColumnNames(frame),
        None if target is None else ColumnNames(target),
        None,
    )


def _structure(names: Any) -> Any:
    """A names structure with each leaf as one value (for pairing targets with outputs)."""
    return tf.nest.map_structure(lambda _: 0, leaf_tree(names))


def leaf_tree(names: Any) -> Any:
    """``names`` with each :class:`ColumnNames` leaf as a string (so ``tf.nest`` keeps it)."""
    if isinstance(names, ColumnNames):
        return ", ".join(names)
    if isinstance(names, dict):
        return {k: leaf_tree(v) for k, v in names.items()}
    return names


def _judge(
    source: str,
    scanner: Scanner,
    rules: list[OutputRule],
    scanned: str,
    schema: Schema | None,
    extra: tuple[Finding, ...] = (),
) -> CheckReport:
    by_leaf = {rule.leaf: rule for rule in rules}
    targets: list[tuple[TargetStats, OutputRule | None]] = []
    sparse: set[str] = set()
    findings: list[Finding] = []
    for leaf, stats in sorted(scanner.targets.items()):
        rule = by_leaf.get(leaf)
        targets.append((stats, rule))
        columns = scanner.columns_of(scanner.target_keys.get(leaf, []))
        if rule is not None:
            findings += _target_findings(rule, stats, columns)
            if rule.kind == "sparse":
                sparse.update(c.name for c in columns)
    columns = scanner.columns()
    if schema is not None:  # nulls with a declared fill value are fine
        for column in columns:
            if schema.fill_value(column.name) is not None:
                column.nulls = 0
    findings = [*extra, *column_findings(columns, sparse), *findings]
    findings.sort(key=lambda f: LEVELS.index(f.level))
    return CheckReport(source, scanner.rows, scanned, 0.0, columns, targets, findings)


def _footer_scanner(dataset: pads.Dataset, schema: Schema) -> Scanner:
    """A scanner filled from the Parquet footers (columns they answer for; no class counts)."""
    columns, rows = footer_stats(dataset, schema)
    scanner = Scanner()
    scanner.rows = rows
    for column in columns:
        scanner.blocks.setdefault(column.name, _Fixed([column]))  # type: ignore[arg-type]
    for leaf, (_, names) in enumerate(leaf_paths(spec_names(schema.targets), "")):
        if all(n in scanner.blocks for n in names):
            name = ", ".join(names)
            scanner.targets[leaf] = TargetStats(name, leaf, len(names), rows, counts=None)
            scanner.target_keys[leaf] = list(names)
    return scanner


class _Fixed:
    """Column statistics already complete (from Parquet footers), in a scanner's blocks."""

    def __init__(self, columns: list[Any]) -> None:
        self.columns = columns


def parquet_report(
    x: Any, schema: Any, rules_of: Any, full: bool, progress: Any, caller: str
) -> CheckReport:
    """The report of Parquet data: read in full, or from the footers alone (``full=False``).

    Args:
        x: A Parquet path, glob, list of paths or dataset.
        schema: Its schema (any form ``fit`` takes).
        rules_of: Gives the output rules of a target structure.
        full: Read every value of the used columns.
        progress: True (or a stream) for a progress line.
        caller: The command or method, for messages.
    """
    dataset = open_dataset(x, caller)
    resolved = resolved_schema(schema, list(dataset.schema.names), caller)
    if resolved is None:
        raise DataCheckError(
            message(
                caller,
                "needs a schema that fits the Parquet data",
                "The check reads the schema's feature, target and weight columns",
                "Pass the schema the data is trained with (`--schema FILE`)",
                schema=schema,
            )
        )
    where = x if isinstance(x, str) else type(x).__name__
    names = list(dataset.schema.names)
    for _, column in role_columns(resolved):  # as fit and inspect word it (both modes)
        if column not in names:
            missing = missing_in_first_file(dataset, column, caller)
            raise missing or unknown_column(column, names, str(where), caller)
    rules = rules_of(_structure(spec_names(resolved.targets)))
    if full:
        scanner = Scanner()
        stream_scan(scanner, dataset, resolved, progress)
    else:
        scanner = _footer_scanner(dataset, resolved)
    scanned = "full" if full else "statistics"
    # The footers count no rows of a filtered dataset: its rows are counted (the filter run)
    empty = (_NO_ROWS,) if scanner.rows == 0 and dataset.count_rows() == 0 else ()
    return _judge(f"{where} (Parquet)", scanner, rules, scanned, resolved, empty)


#: A source without rows: ``fit`` refuses it (nothing to train on).
_NO_ROWS = Finding(
    "error",
    "no-rows",
    "",
    None,
    "the data has no rows: `fit` and `predict` refuse it; check the path or the filter "
    "that made it",
)


def check_data(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    *,
    model: keras.Model | None = None,
    schema: Any = None,
    full: bool = True,
    progress: Any = False,
    caller: str = "check",
) -> CheckReport:
    """Scans an input for values that spoil training, and its targets against ``model``.

    Finds NaN, infinities and nulls per feature, target and weight column; constant feature
    columns; with a compiled ``model``: sparse labels outside ``[0, units)``, binary
    cross-entropy targets outside ``[0, 1]``, one-hot rows that do not sum to 1, targets an
    output's activation cannot reach, a regression target far from unit scale; and the
    class balance of classification targets.

    Cost: one vectorized pass over rows held in memory (2-6 s per GB of float32 on a shared
    2-core machine, ``benchmarks/bench_check.py``); for Parquet, one read of the schema's
    feature, target and weight columns (``full=True``: what reading them costs), or the
    footers alone (``full=False``: nulls, minima and maxima; no NaN).

    Args:
        x: The input, in any form ``fit`` takes. Inputs that come in batches (generators,
            ``tf.data``, ``PyDataset``, Arrow streams) are not scanned (``scanned="none"``).
        y: Targets of row-addressed inputs.
        sample_weight: Weights of row-addressed inputs.
        model: A compiled model: its losses and outputs say what the targets must hold.
        schema: The schema of Arrow, Parquet and pandas inputs read by column roles.
        full: For Parquet, read every value (else the footer statistics only).
        progress: For Parquet read in full, True (or a stream) for a progress line.
        caller: The command or method, for messages.

    Returns:
        The report.

    Raises:
        FitpipeError: When the input cannot be read (as ``fit`` would raise).
    """
    start = time.perf_counter()

    def rules_of(structure: Any) -> list[OutputRule]:
        return output_rules(model, structure) if model is not None else []

    if is_parquet(x):
        report = parquet_report(x, schema, rules_of, full, progress, caller)
    elif isinstance(x, (pa.Table, pa.RecordBatch)) or (is_pandas(x) and schema is not None):
        report = _table(x, schema, rules_of, caller)
    else:
        request = AdaptRequest(x=x, y=y, sample_weight=sample_weight, caller=caller)
        _, source = adapt_source(request, warn_ignored=False)
        report = rows_report(source, x, y, None, rules_of, type(x).__name__)
    report.seconds = time.perf_counter() - start
    return report


def _table(x: Any, schema: Any, rules_of: Any, caller: str) -> CheckReport:
    table = pa.Table.from_pandas(x, preserve_index=False) if is_pandas(x) else x
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    resolved = resolved_schema(schema, list(table.schema.names), caller)
    if resolved is None:
        return CheckReport(type(x).__name__, table.num_rows, "none")
    scanner = Scanner()
    scan_batches(scanner, table.to_batches(max_chunksize=65536), resolved)
    rules = rules_of(_structure(spec_names(resolved.targets)))
    return _judge(type(x).__name__, scanner, rules, "full", resolved)


def rows_report(
    source: Any,
    x: Any,
    y: Any,
    schema: Schema | None,
    rules_of: Any,
    where: str,
    files: Any = None,
) -> CheckReport:
    """The report of an adapted source: every value of rows in memory, else not scanned.

    Args:
        source: What the adapter made of the input.
        x: The input as given (its column names, for frames and tables).
        y: The targets as given.
        schema: The resolved schema of a columnar input, or None.
        rules_of: Gives the output rules of a target structure.
        where: The input, in words.
        files: The identity of the Parquet files the rows were read from, or None.
    """
    if not isinstance(source, ArraySource):
        return CheckReport(where, 0, "none")
    names = _names(x, y, schema)
    rows = (source.x, source.y, source.sample_weight)

    def scanned() -> Scanner:
        scanner = Scanner()
        scan_rows(scanner, rows, names)
        scanner.rows = source.num_samples
        return scanner

    # The same arrays, unchanged, scanned before (`fit` called again): not scanned again.
    # (Rows read from unchanged Parquet files: not scanned again either.)
    extra = (repr(names), repr(schema), source.num_samples)
    scanner = SCANS.scan(rows, extra, scanned, files)
    rules = rules_of(source.y) if source.y is not None else []
    return _judge(where, scanner, rules, "full", schema)
