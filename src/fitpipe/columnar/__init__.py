"""Columnar data: Arrow type rules, conversion by role, Parquet planning, atomic writing.

This package knows nothing of adapters or ``tf.data``: it checks Arrow schemas against a
declared :class:`~fitpipe.schemas.Schema` (:mod:`~fitpipe.columnar.types`), converts the
columns of each role to arrays (:mod:`~fitpipe.columnar.convert`), finds and opens Parquet
files (:mod:`~fitpipe.columnar.files`), plans and reads Parquet sources by row group and
sums their footer statistics (:mod:`~fitpipe.columnar.parquet`), and writes Parquet and JSON
files that appear only when complete (:mod:`~fitpipe.columnar.write`). The Arrow and Parquet
adapters, ``predict(output=...)`` and ``fitpipe inspect`` are built on it.
"""

from fitpipe.columnar.convert import column_array, role_arrays, table_roles
from fitpipe.columnar.files import (
    INT96_UNIT,
    ColumnTypes,
    existing_paths,
    expand_paths,
    file_error,
    is_parquet,
    is_parquet_path,
    open_dataset,
    parquet_format,
)
from fitpipe.columnar.parquet import (
    FooterStats,
    ParquetPlan,
    Piece,
    Span,
    converted_bytes,
    footer_stats,
    plan_source,
    read_span,
    source_columns,
    spans,
)
from fitpipe.columnar.types import (
    EXPECTED_TYPES,
    check_arrow_schema,
    check_fill,
    checked_schema,
    convertible,
    duplicate_error,
    field_types,
    fill_type,
    is_text,
    unknown_column,
    value_type,
)
from fitpipe.columnar.write import write_atomically, write_json_atomically

__all__ = [
    "EXPECTED_TYPES",
    "INT96_UNIT",
    "ColumnTypes",
    "FooterStats",
    "ParquetPlan",
    "Piece",
    "Span",
    "check_arrow_schema",
    "check_fill",
    "checked_schema",
    "column_array",
    "converted_bytes",
    "convertible",
    "duplicate_error",
    "existing_paths",
    "expand_paths",
    "field_types",
    "file_error",
    "fill_type",
    "footer_stats",
    "is_parquet",
    "is_parquet_path",
    "is_text",
    "open_dataset",
    "parquet_format",
    "plan_source",
    "read_span",
    "role_arrays",
    "source_columns",
    "spans",
    "table_roles",
    "unknown_column",
    "value_type",
    "write_atomically",
    "write_json_atomically",
]
