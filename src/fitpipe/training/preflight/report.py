"""The pre-flight report: a table a person reads at a glance, and the same as JSON."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fitpipe.training.preflight.findings import LEVELS, Finding
from fitpipe.training.preflight.stats import ColumnStats, TargetStats
from fitpipe.training.preflight.targets import OutputRule

__all__ = ["CheckReport"]

#: Classes listed in the balance table before the rest are summed up.
_LISTED_CLASSES = 20


@dataclasses.dataclass
class CheckReport:
    """What a pre-flight check found in one input.

    Attributes:
        source: The input, in words.
        rows: Rows in the input.
        scanned: How it was read: ``"full"`` (every value), ``"statistics"`` (Parquet
            footers only) or ``"none"`` (an input that comes in batches).
        seconds: How long the check took.
        columns: The statistics of each feature, target and weight column.
        targets: Each target's statistics with the rule of its model output (None without
            a model).
        findings: The problems, errors first.
    """

    source: str
    rows: int
    scanned: str
    seconds: float = 0.0
    columns: list[ColumnStats] = dataclasses.field(default_factory=list)
    targets: list[tuple[TargetStats, OutputRule | None]] = dataclasses.field(default_factory=list)
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def of_level(self, level: str) -> list[Finding]:
        """The findings of one level (``"error"``, ``"warning"`` or ``"note"``)."""
        return [f for f in self.findings if f.level == level]

    @property
    def ok(self) -> bool:
        """True when nothing of level ``"error"`` was found."""
        return not self.of_level("error")

    def summary(self) -> str:
        """``"1 error, 0 warnings, 2 notes"``."""
        counts = [(len(self.of_level(level)), level) for level in LEVELS]
        return ", ".join(f"{n} {level}{'' if n == 1 else 's'}" for n, level in counts)

    # ------------------------------------------------------------------------------ text
    def format(self, all_columns: bool = False) -> str:
        """The report as a table: the columns worth a look, class balance, the findings.

        Args:
            all_columns: List every column, not only targets, weights and columns with a
                finding.
        """
        how = {"full": "every value scanned", "statistics": "Parquet statistics only"}
        head = f"source:  {self.source} ({self.rows:,} rows; {how.get(self.scanned, 'not scanned')}"
        lines = [f"{head}, {self.seconds:.2f} s)"]
        for stats, rule in self.targets:
            if rule is not None:
                lines.append(
                    f"target:  {stats.name!r} -> output {rule.output!r} (units={rule.units}, "
                    f"{rule.activation}), loss {rule.loss}"
                )
        lines += self._column_table(all_columns)
        for stats, rule in self.targets:
            lines += _balance(stats, rule)
        lines.append(f"findings: {self.summary()}")
        for finding in self.findings:
            count = "" if finding.count is None else f" [{finding.count}]"
            lines.append(f"  {finding.level.upper():<8}{finding.check}{count}: {finding.text}")
        return "\n".join(lines)

    def _column_table(self, all_columns: bool) -> list[str]:
        flagged = {f.column for f in self.findings}
        shown = [c for c in self.columns if all_columns or c.role != "feature" or c.name in flagged]
        if not self.columns:
            return []
        width = max(len("column"), *(len(c.name) for c in shown)) if shown else 6
        lines = [
            f"{'column':<{width}}  {'role':<8}{'nulls':>7}{'NaN':>7}{'+inf':>7}{'-inf':>7}"
            f"{'min':>11}{'max':>11}"
        ]
        notes = {f.column: f.check for f in self.findings}
        for c in shown:
            cells = [c.nulls, *((c.nan, c.posinf, c.neginf) if c.exact else ("?", "?", "?"))]
            text = "".join(f"{v:>7}" for v in cells)
            lines.append(
                f"{c.name:<{width}}  {c.role:<8}{text}{_number(c.low):>11}"
                f"{_number(c.high):>11}  {notes.get(c.name, '')}".rstrip()
            )
        hidden = len(self.columns) - len(shown)
        if hidden:
            lines.append(f"... and {hidden} more feature columns without findings")
        return lines

    # ------------------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values (every column, the class counts, the findings)."""
        targets = []
        for stats, rule in self.targets:
            counts = (
                None if stats.counts is None else {f"{k:g}": n for k, n in stats.counts.items()}
            )
            targets.append(
                {
                    "name": stats.name,
                    "rows": stats.rows,
                    "class_counts": counts,
                    "mean": stats.mean,
                    "std": stats.std,
                    "rule": None if rule is None else dataclasses.asdict(rule),
                }
            )
        return {
            "source": self.source,
            "rows": self.rows,
            "scanned": self.scanned,
            "seconds": self.seconds,
            "summary": {level: len(self.of_level(level)) for level in LEVELS},
            "columns": [c.to_dict() for c in self.columns],
            "targets": targets,
            "findings": [f.to_dict() for f in self.findings],
        }


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.6g}"


def _balance(stats: TargetStats, rule: OutputRule | None) -> list[str]:
    """The class balance table of a classification target."""
    if stats.counts is None or not stats.counts or stats.rows == 0:
        return []
    if rule is None or rule.kind not in ("sparse", "binary", "categorical"):
        return []
    if rule.kind == "binary" and not set(stats.counts) <= {0.0, 1.0}:
        return []  # soft labels: no classes to count
    total = sum(stats.counts.values())
    lines = [f"class balance of {stats.name!r} ({len(stats.counts)} classes, {total:,} rows):"]
    ranked = sorted(stats.counts.items())
    for key, count in ranked[:_LISTED_CLASSES]:
        outside = rule.kind == "sparse" and rule.units and not 0 <= key < rule.units
        mark = f"  <- outside [0, {rule.units})" if outside else ""
        lines.append(f"  {key:>8g} {count:>10,} {count / total:>7.1%}{mark}")
    rest = ranked[_LISTED_CLASSES:]
    if rest:
        number = sum(n for _, n in rest)
        lines.append(f"  ... {len(rest)} more classes, {number:,} rows")
    return lines
