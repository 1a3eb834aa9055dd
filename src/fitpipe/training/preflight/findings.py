"""The findings of a pre-flight scan: what is wrong (or odd) in the data, and how to fix it.

Levels:

* ``"error"``: certainly wrong; the run would train to ``loss: nan`` or on nonsense (NaN or
  infinite values, nulls, sparse labels outside the model's classes, binary targets outside
  ``[0, 1]``, negative class probabilities);
* ``"warning"``: probably wrong (one-hot rows that do not sum to 1, fractional sparse labels,
  targets the output's activation cannot reach);
* ``"note"``: worth a look, never stops a run (constant feature columns, a regression target
  whose scale is far from the output's).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from fitpipe.training.check_rules import cast_limit
from fitpipe.training.preflight.stats import ColumnStats, TargetStats
from fitpipe.training.preflight.targets import RANGES, OutputRule

__all__ = ["LEVELS", "Finding", "column_findings", "target_findings"]

LEVELS = ("error", "warning", "note")

#: A regression target is far from a linear output's scale past this factor (either way).
SCALE_FACTOR = 100.0


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem found in the data.

    Attributes:
        level: ``"error"``, ``"warning"`` or ``"note"``.
        check: The check that found it (``"non-finite"``, ``"label-range"``, ...).
        column: The column or target it is in.
        count: How many values or rows, when counted.
        text: What was found and how to fix it, in a sentence or two.
        enforced: True when the batch checks stop the run on it anyway (labels outside the
            classes of a sparse loss, non-finite sample weights), whatever ``check`` says.
    """

    level: str
    check: str
    column: str
    count: int | None
    text: str
    enforced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON values."""
        return dataclasses.asdict(self)


def _non_finite(column: ColumnStats, sparse: bool) -> Finding | None:
    if not column.non_finite:
        return None
    counts = ((column.nan, "NaN"), (column.posinf, "+inf"), (column.neginf, "-inf"))
    if column.exact:
        found = " and ".join(f"{n} {what}" for n, what in counts if n)
        found += f" (first in row {column.first_bad_row})"
    else:  # from Parquet statistics: an infinity as the minimum or maximum, not counted
        found = " and ".join(what for n, what in counts if n) + " (Parquet statistics)"
    text = (
        f"{column.role} column {column.name!r} holds {found}; one such value makes the loss "
        "and then every weight NaN: drop or impute those rows"
    )
    enforced = column.role == "weight" or sparse
    count = column.non_finite if column.exact else None
    return Finding("error", "non-finite", column.name, count, text, enforced)


def _overflow(column: ColumnStats, floatx: str) -> Finding | None:
    """Finite values the cast to ``floatx`` makes infinite (float64's 1e300 in float32).

    Read from the finite minimum and maximum the scan keeps anyway: no pass of its own.
    Judged by the batch checks' bound (``check_rules.cast_limit``), so both find the same.
    """
    if not column.dtype or column.low > column.high:
        return None
    limit = cast_limit(column.dtype, floatx)
    if limit is None or not any(abs(value) >= limit for value in (column.low, column.high)):
        return None
    text = (
        f"{column.role} column {column.name!r} holds values beyond {floatx}'s range (from "
        f"{column.low:g} to {column.high:g}), which the cast to {floatx} makes infinite; one "
        "such value makes the loss and then every weight NaN: scale, clip or drop those rows"
    )
    return Finding("error", "overflow", column.name, None, text, column.role == "weight")


def column_findings(columns: list[ColumnStats], sparse_targets: set[str]) -> list[Finding]:
    """Non-finite values, nulls and constant feature columns, column by column.

    Args:
        columns: The scanned columns.
        sparse_targets: The target columns trained with a sparse loss (their bad values are
            enforced by the batch checks).
    """
    found = []
    for column in columns:
        for finding in (
            _non_finite(column, column.name in sparse_targets),
            _overflow(column, keras.config.floatx()),
        ):
            if finding is not None:
                found.append(finding)
        if column.nulls:
            found.append(
                Finding(
                    "error",
                    "nulls",
                    column.name,
                    column.nulls,
                    f"{column.role} column {column.name!r} holds {column.nulls} nulls: give it "
                    "a fill value in the schema (`fill`) or drop those rows",
                    enforced=True,  # the Arrow conversion stops on nulls without a fill
                )
            )
        if column.role == "feature" and column.constant:
            found.append(
                Finding(
                    "note",
                    "constant",
                    column.name,
                    column.rows,
                    f"feature column {column.name!r} is constant ({column.low:g} in every "
                    "row): it carries no information; drop it if that is not intended",
                )
            )
    return found


def _range(stats: TargetStats, columns: list[ColumnStats]) -> tuple[float, float]:
    lows = [c.low for c in columns]
    highs = [c.high for c in columns]
    return (min(lows), max(highs)) if columns else (0.0, 0.0)


def _outside(columns: list[ColumnStats], low: float, high: float) -> int | None:
    """Columns whose finite range leaves ``[low, high]``: a count of them (values unknown)."""
    return sum(1 for c in columns if c.low < low or c.high > high)


def target_findings(
    rule: OutputRule, stats: TargetStats, columns: list[ColumnStats]
) -> list[Finding]:
    """The findings of one target against its model output.

    Args:
        rule: What the output asks of the target.
        stats: The target's statistics.
        columns: The target's columns' statistics (their ranges).
    """
    checks = {
        "sparse": _sparse,
        "binary": _binary,
        "categorical": _categorical,
        "regression": _regression,
    }
    check = checks.get(rule.kind)
    if check is None or stats.rows == 0:
        return []
    if rule.units and stats.width not in (1, rule.units):
        return []  # targets of another width than the output: the shape error names them
    return check(rule, stats, columns)


def _sparse(rule: OutputRule, stats: TargetStats, columns: list[ColumnStats]) -> list[Finding]:
    found = []
    units = rule.units or 0
    if stats.counts is None and units:  # no counts (Parquet statistics): the range tells
        low, high = _range(stats, columns)
        if low < 0 or high >= units:
            found.append(_labels_outside(rule, stats, None, f"{low:g} to {high:g}"))
    elif units and stats.counts is not None:
        bad = {
            k: n for k, n in stats.counts.items() if not 0 <= k < units and k != rule.ignore_class
        }
        if bad:
            shown = ", ".join(f"{k:g}" for k in sorted(bad)[:5])
            found.append(_labels_outside(rule, stats, sum(bad.values()), shown))
    if not stats.integral and not found:  # a fraction outside the classes: said above
        found.append(
            Finding(
                "warning",
                "not-integer",
                stats.name,
                None,
                f"labels of {stats.name!r} have fractions, but `{rule.loss}` takes class "
                "indices (the fraction is cut off): pass integer labels, or use "
                "`categorical_crossentropy` with one-hot rows",
            )
        )
    return found


def _labels_outside(rule: OutputRule, stats: TargetStats, count: int | None, shown: str) -> Finding:
    units = rule.units
    number = "labels" if count is None else f"{count} labels"
    return Finding(
        "error",
        "label-range",
        stats.name,
        count,
        f"{number} of {stats.name!r} lie outside the model's {units} classes [0, {units}) "
        f"(found {shown}); with `{rule.loss}` labels are class indices from 0: shift or fix "
        "them, or widen the output",
        enforced=True,
    )


def _binary(rule: OutputRule, stats: TargetStats, columns: list[ColumnStats]) -> list[Finding]:
    low, high = _range(stats, columns)
    if low >= 0.0 and high <= 1.0:
        return []  # soft labels in [0, 1] are legitimate
    return [
        Finding(
            "error",
            "binary-range",
            stats.name,
            _outside(columns, 0.0, 1.0),
            f"targets of {stats.name!r} range over [{low:g}, {high:g}], but "
            f"`{rule.loss}` takes values in [0, 1] (1 for the positive class): map the "
            "labels to 0 and 1, or use `sparse_categorical_crossentropy` with one output "
            "per class",
        )
    ]


def _categorical(rule: OutputRule, stats: TargetStats, columns: list[ColumnStats]) -> list[Finding]:
    found = []
    low, _ = _range(stats, columns)
    if low < 0.0:
        found.append(
            Finding(
                "error",
                "negative-probability",
                stats.name,
                _outside(columns, 0.0, float("inf")),
                f"targets of {stats.name!r} hold negative values (down to {low:g}), but "
                f"`{rule.loss}` takes class probabilities: one-hot encode the labels",
            )
        )
    if stats.width > 1 and stats.rows_off_one:
        found.append(
            Finding(
                "warning",
                "one-hot",
                stats.name,
                stats.rows_off_one,
                f"{stats.rows_off_one} rows of {stats.name!r} do not sum to 1 (first: row "
                f"{stats.first_row_off_one}); `{rule.loss}` expects one-hot rows or class "
                "probabilities: for several labels per row use `binary_crossentropy`",
            )
        )
    return found


def _regression(rule: OutputRule, stats: TargetStats, columns: list[ColumnStats]) -> list[Finding]:
    low, high = _range(stats, columns)
    reach = RANGES.get(rule.activation)
    if reach is not None:
        lo, hi = reach
        if low < lo or (hi is not None and high > hi):
            span = f"[{lo:g}, {'inf' if hi is None else f'{hi:g}'}]"
            return [
                Finding(
                    "warning",
                    "output-range",
                    stats.name,
                    _outside(columns, lo, float("inf") if hi is None else hi),
                    f"targets of {stats.name!r} range over [{low:g}, {high:g}], but the "
                    f"output's {rule.activation} activation only reaches {span}: scale the "
                    "targets, or use a linear output",
                )
            ]
        return []
    scale = max(abs(stats.mean), stats.std)
    if scale and (scale > SCALE_FACTOR or scale < 1 / SCALE_FACTOR):
        return [
            Finding(
                "note",
                "target-scale",
                stats.name,
                None,
                f"targets of {stats.name!r} have mean {stats.mean:.4g} and spread "
                f"{stats.std:.4g}, far from the unit scale a freshly initialised output "
                "starts at: standardising them (and undoing it on predictions) usually "
                "trains faster",
            )
        ]
    return []
