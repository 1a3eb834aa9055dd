"""Columnar data: Arrow type rules, conversion by role, Parquet planning, atomic writing.

This package knows nothing of adapters or ``tf.data``: it checks Arrow schemas against a
declared :class:`~fitpipe.schemas.Schema` (:mod:`~fitpipe.columnar.types`), converts the
columns of each role to arrays (:mod:`~fitpipe.columnar.convert`), finds and opens Parquet
files, local or in object stores, with their partition columns (:mod:`~fitpipe.columnar.files`,
:mod:`~fitpipe.columnar.sources`,
:mod:`~fitpipe.columnar.storage`, :mod:`~fitpipe.columnar.uri_globs`;
:mod:`~fitpipe.columnar.places` tells whether an output
is one of the input's files), plans and reads Parquet sources by row group
(:mod:`~fitpipe.columnar.parquet`, :mod:`~fitpipe.columnar.reading`), walks and sums their
footer statistics
(:mod:`~fitpipe.columnar.footers`: one walk, :func:`column_chunks`, which the pre-flight
check reads too), turns plans into bytes and
back without reading a footer (:mod:`~fitpipe.columnar.shared_plans`: one worker plans for
all), finds a table format's columns in its files by the table's metadata
(:mod:`~fitpipe.columnar.table_columns`), writes Parquet and JSON
files that appear only when complete (:mod:`~fitpipe.columnar.write`), and hashes rows'
keys for grouped validation splits (:mod:`~fitpipe.columnar.keys`). The Arrow and Parquet
adapters, ``predict(output=...)`` and ``fitpipe inspect`` are built on it.
"""

from fitpipe.columnar.convert import (
    ALIGNMENT,
    aligned_empty,
    as_tensor,
    backing_tensor,
    column_array,
    join_rows,
    owned_tensor,
    role_arrays,
    stack_columns,
    table_roles,
    take_rows_into,
    tensor_array,
)
from fitpipe.columnar.converted_size import converted_bytes
from fitpipe.columnar.files import (
    INT96_UNIT,
    ColumnTypes,
    expand_paths,
    file_error,
    file_identity,
    is_parquet,
    is_parquet_path,
    missing_in_first_file,
    parquet_format,
)
from fitpipe.columnar.footers import ColumnChunk, FooterStats, column_chunks, footer_stats
from fitpipe.columnar.keys import (
    SplitCounts,
    count_split,
    empty_side_error,
    key_array,
    key_hashes,
    missing_key_column,
    validation_mask,
)
from fitpipe.columnar.parquet import (
    ParquetPlan,
    Piece,
    Span,
    plan_source,
    read_pool,
    read_span,
    source_columns,
    source_name,
    spans,
)
from fitpipe.columnar.places import input_collision, place_of
from fitpipe.columnar.reading import read_error, read_piece
from fitpipe.columnar.recycle import keep, kept, recycling, trim_heap
from fitpipe.columnar.shared_plans import plan_bytes, plan_from_bytes
from fitpipe.columnar.sources import existing_paths, open_dataset
from fitpipe.columnar.storage import (
    CHECK,
    WRITE,
    bucket_uri,
    display_path,
    is_uri,
    local_file_path,
    local_target,
    name_below,
    parse_uri,
    resolve_uri,
    uri_info,
)
from fitpipe.columnar.table_columns import FIELD_ID, TableColumns, field_id
from fitpipe.columnar.types import (
    EXPECTED_TYPES,
    check_arrow_schema,
    check_fill,
    checked_schema,
    classic,
    classic_table,
    classic_type,
    convertible,
    duplicate_error,
    example_fill,
    field_types,
    fill_type,
    is_text,
    named_columns,
    one_array,
    unknown_column,
    value_type,
)
from fitpipe.columnar.uri_globs import expand_uri
from fitpipe.columnar.watch import file_status
from fitpipe.columnar.write import write_atomically, write_json_atomically

__all__ = [
    "ALIGNMENT",
    "CHECK",
    "EXPECTED_TYPES",
    "FIELD_ID",
    "INT96_UNIT",
    "WRITE",
    "ColumnChunk",
    "ColumnTypes",
    "FooterStats",
    "ParquetPlan",
    "Piece",
    "Span",
    "SplitCounts",
    "TableColumns",
    "aligned_empty",
    "as_tensor",
    "backing_tensor",
    "bucket_uri",
    "check_arrow_schema",
    "check_fill",
    "checked_schema",
    "classic",
    "classic_table",
    "classic_type",
    "column_array",
    "column_chunks",
    "converted_bytes",
    "convertible",
    "count_split",
    "display_path",
    "duplicate_error",
    "empty_side_error",
    "example_fill",
    "existing_paths",
    "expand_paths",
    "expand_uri",
    "field_id",
    "field_types",
    "file_error",
    "file_identity",
    "file_status",
    "fill_type",
    "footer_stats",
    "input_collision",
    "is_parquet",
    "is_parquet_path",
    "is_text",
    "is_uri",
    "join_rows",
    "keep",
    "kept",
    "key_array",
    "key_hashes",
    "local_file_path",
    "local_target",
    "missing_in_first_file",
    "missing_key_column",
    "name_below",
    "named_columns",
    "one_array",
    "open_dataset",
    "owned_tensor",
    "parquet_format",
    "parse_uri",
    "place_of",
    "plan_bytes",
    "plan_from_bytes",
    "plan_source",
    "read_error",
    "read_piece",
    "read_pool",
    "read_span",
    "recycling",
    "resolve_uri",
    "role_arrays",
    "source_columns",
    "source_name",
    "spans",
    "stack_columns",
    "table_roles",
    "take_rows_into",
    "tensor_array",
    "trim_heap",
    "unknown_column",
    "uri_info",
    "validation_mask",
    "value_type",
    "write_atomically",
    "write_json_atomically",
]
