"""``fitpipe inspect``: what a source becomes, read from metadata before any training.

For a Parquet file, folder or glob: the adapter that takes it, its Arrow schema, files, row
groups and rows (all from the Parquet footers), and the batches per epoch. With a schema: the
tensor specs the batches have, and the problems the metadata shows (columns missing, types
fitpipe cannot convert, nulls in columns without a ``fill`` value per the column statistics).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pyarrow as pa
import tensorflow as tf

from fitpipe.adapters import DEFAULT_BATCH_SIZE, AdaptRequest, Mode, registry
from fitpipe.columnar import (
    check_arrow_schema,
    convertible,
    footer_stats,
    is_parquet_path,
    open_dataset,
)
from fitpipe.errors import FitpipeError, FitpipeValueError, message
from fitpipe.pipeline import build_pipeline
from fitpipe.schemas import Role, Schema

__all__ = ["Report", "inspect_source"]

_CALLER = "fitpipe inspect"
_TRAINING = (Role.FEATURE, Role.TARGET, Role.WEIGHT)
_PREDICTION = (Role.FEATURE,)


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``fitpipe inspect`` found.

    Attributes:
        source: The source as given.
        adapter: The registered adapter that takes it.
        arrow_schema: The dataset's Arrow schema.
        files: Parquet files.
        row_groups: Row groups over all files.
        rows: Rows over all files.
        batch_size: Rows per batch assumed for ``batches``.
        nulls: Nulls per column from the statistics (None: unknown; see
            :class:`fitpipe.columnar.FooterStats`).
        element_spec: The batches' ``tf.TypeSpec`` structure (with a schema), or None.
        problems: What would stop or spoil training, one sentence each.
        notes: Other findings.
    """

    source: str
    adapter: str
    arrow_schema: pa.Schema
    files: int
    row_groups: int
    rows: int
    batch_size: int
    nulls: dict[str, int | None]
    element_spec: Any = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def batches(self) -> int:
        """Batches per epoch at :attr:`batch_size`."""
        return math.ceil(self.rows / self.batch_size)

    def format(self) -> str:
        """The report as text, one finding a line."""
        lines = [
            f"source:   {self.source}",
            f"adapter:  {self.adapter}",
            f"files:    {self.files} ({self.row_groups} row groups)",
            f"rows:     {self.rows}",
            f"batches:  {self.batches} per epoch at batch size {self.batch_size}",
            "arrow schema:",
        ]
        for field in self.arrow_schema:
            count = self.nulls.get(field.name)
            nulls = "nulls: unknown" if count is None else f"nulls: {count}"
            lines.append(f"  {field.name}: {field.type}  ({nulls})")
        lines.append("tensor specs:")
        if self.element_spec is None and self.problems:
            lines.append("  (not built: see the problems below)")
        else:
            lines.extend(f"  {line}" for line in _spec_lines(self.element_spec))
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append(f"problems: {len(self.problems) or 'none'}")
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def _describe(spec: Any) -> str:
    kind = "ragged " if isinstance(spec, tf.RaggedTensorSpec) else ""
    return f"{kind}{spec.dtype.name} {tuple(spec.shape)}"


def _spec_lines(element_spec: Any) -> list[str]:
    if element_spec is None:
        return ["(pass --schema to see them)"]
    lines: list[str] = []
    for role, part in zip(("x", "y", "sample_weight"), element_spec, strict=False):
        if isinstance(part, dict):
            lines.extend(f"{role}[{name!r}]: {_describe(s)}" for name, s in part.items())
        elif isinstance(part, (tuple, list)):
            lines.extend(f"{role}[{i}]: {_describe(s)}" for i, s in enumerate(part))
        else:
            lines.append(f"{role}: {_describe(part)}")
    return lines


def _problems(schema: Schema, report: Report, predict: bool) -> list[str]:
    found: list[str] = []
    names = set(report.arrow_schema.names)
    roles = _PREDICTION if predict else _TRAINING
    for column in schema.columns(roles):
        if column not in names:
            found.append(f"column {column!r} is used by the schema but not in the data")
            continue
        kind = report.arrow_schema.field(column).type
        if not convertible(kind):
            found.append(f"column {column!r} of type {kind} cannot be converted to a tensor")
        count = report.nulls.get(column)
        if count and schema.fill_value(column) is None:
            found.append(
                f"column {column!r} has {count} nulls (Parquet statistics) and no fill value: "
                f"declare `fill = {{ {column} = ... }}` or drop the rows"
            )
    found.extend(
        f"passthrough column {column!r} is not in the data"
        for column in schema.passthrough
        if column not in names
    )
    if not found:
        try:
            check_arrow_schema(schema, report.arrow_schema, report.source, roles, _CALLER)
        except FitpipeError as err:
            found.append(str(err))
    return found


def _request(
    source: str, given: Schema, resolved: Schema, batch_size: int, predict: bool
) -> AdaptRequest:
    """The request that plans ``source``: the schema as given, with its resolution (not redone)."""
    caller, mode = ("predict", Mode.PREDICT) if predict else ("fit", Mode.TRAIN)
    return AdaptRequest(
        x=source,
        schema=given,
        batch_size=batch_size,
        caller=caller,
        mode=mode,
        resolved_schema=resolved,
    )


def inspect_source(
    source: str,
    schema: Schema | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    predict: bool = False,
) -> Report:
    """Inspects a Parquet source from its metadata (and, with a schema, its first rows).

    Args:
        source: A Parquet file, folder or glob.
        schema: The schema to check the source against, or None.
        batch_size: Rows per batch, for the batches per epoch.
        predict: Check the source as prediction input (features and passthrough only).

    Returns:
        The report.

    Raises:
        FitpipeError: When no adapter takes the source or the files cannot be read.

    """
    adapter = registry.find(source, _CALLER)
    if not is_parquet_path(source):
        raise FitpipeValueError(
            message(
                _CALLER,
                f"cannot inspect a source taken by the {adapter.name!r} adapter",
                "`fitpipe inspect` reads Parquet files, folders and globs",
                "Pass the path of Parquet data",
                source=source,
            )
        )
    dataset = open_dataset(source, _CALLER)
    stats = footer_stats(dataset)
    report = Report(
        source,
        adapter.name,
        dataset.schema,
        stats.files,
        stats.row_groups,
        stats.rows,
        batch_size,
        stats.nulls,
    )
    if schema is None:
        unusable = [f.name for f in dataset.schema if not convertible(f.type)]
        notes = [f"columns that cannot become tensors: {unusable}"] if unusable else []
        return dataclasses.replace(report, notes=(*notes, "pass --schema to check it"))
    given = schema  # (planned as given: its selectors are checked against every file)
    try:  # selectors ("px*", OTHER_COLUMNS) become the columns they select
        read = (Role.FEATURE, Role.PASSTHROUGH) if predict else tuple(Role)
        schema = schema.resolve(dataset.schema.names, str(source), _CALLER, read)
    except FitpipeError as err:
        return dataclasses.replace(report, problems=(str(err),))
    problems = _problems(schema, report, predict)
    if problems:
        return dataclasses.replace(report, problems=tuple(problems))
    try:
        with build_pipeline(_request(source, given, schema, batch_size, predict)) as pipeline:
            spec = pipeline.element_spec
    except FitpipeError as err:
        return dataclasses.replace(report, problems=(str(err),))
    return dataclasses.replace(report, element_spec=spec)
