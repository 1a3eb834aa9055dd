"""``fitpipe inspect DATA --write-schema FILE``: a schema proposed from the data's columns.

The proposal reads only the Arrow schema (Parquet metadata), in file order:

* a column named with ``--target`` is a target (none is guessed);
* a column called ``id`` or ending in ``_id`` / ``-id``, and any column that cannot become a
  numeric tensor (strings, dates, nested types), is passthrough, carried to predictions;
* every other numeric or boolean column (and fixed-size list of numbers) is a feature.

The file is the JSON of :meth:`fitpipe.Schema.to_dict` (indented), ready to edit and pass to
``--schema`` or a spec's ``schema_file``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.types as pat

from fitpipe.cli.folders import make_folder
from fitpipe.errors import FitpipeValueError, message
from fitpipe.schemas import Schema

__all__ = ["propose_schema", "write_proposed_schema"]

_CALLER = "fitpipe inspect"


def _is_id(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith(("_id", "-id"))


def _is_numeric(arrow_type: pa.DataType) -> bool:
    if pat.is_dictionary(arrow_type):
        return False
    if pat.is_fixed_size_list(arrow_type):
        return _is_numeric(arrow_type.value_type)
    return bool(
        pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_boolean(arrow_type)
    )


def propose_schema(arrow_schema: pa.Schema, targets: Sequence[str] = ()) -> Schema:
    """Proposes the roles of a table's columns.

    Args:
        arrow_schema: The data's Arrow schema, columns in file order.
        targets: The target columns (none is guessed).

    Returns:
        The proposed schema.

    Raises:
        FitpipeValueError: When a target is not a column, or no column can be a feature.

    """
    names = arrow_schema.names
    missing = [name for name in targets if name not in names]
    if missing:
        raise FitpipeValueError(
            message(
                _CALLER,
                f"cannot find the target column {missing[0]!r}",
                f"--target names a column of the data ({len(names)} columns: "
                f"{', '.join(names[:10])}{', ...' if len(names) > 10 else ''})",
                "Check the name",
                target=missing[0],
            )
        )
    features: list[str] = []
    passthrough: list[str] = []
    for field in arrow_schema:
        if field.name in targets:
            continue
        if _is_id(field.name) or not _is_numeric(field.type):
            passthrough.append(field.name)
        else:
            features.append(field.name)
    if not features:
        raise FitpipeValueError(
            message(
                _CALLER,
                "found no numeric column to propose as a feature",
                "Features are numeric, boolean or fixed-size list columns",
                "Write the schema by hand (see `fitpipe fit --help`)",
                columns=names,
            )
        )
    target: str | list[str] | None = None
    if targets:
        target = targets[0] if len(targets) == 1 else list(targets)
    return Schema(features=features, targets=target, passthrough=passthrough)


def write_proposed_schema(source: str, path: str, targets: Sequence[str] = ()) -> str:
    """Writes the schema proposed for a Parquet source as JSON.

    Args:
        source: A Parquet file, folder or glob.
        path: The JSON file to write (its folder is created).
        targets: The target columns (none is guessed).

    Returns:
        The path written.

    Raises:
        FitpipeError: When the source cannot be read or a target is not a column.

    """
    from fitpipe.columnar import open_dataset

    folder = os.path.dirname(os.path.abspath(path))
    make_folder(folder, _CALLER, "write_schema", "the folder of `--write-schema`")
    schema = propose_schema(open_dataset(source, _CALLER).schema, targets)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(schema.to_dict(), handle, indent=2)
        handle.write("\n")
    return path
