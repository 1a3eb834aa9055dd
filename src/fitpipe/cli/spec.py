"""Declarative run specs: a TOML file naming the data, the model and the training arguments.

A spec has up to six top-level entries; paths in it are relative to the spec file::

    seed = 0                          # optional: keras.utils.set_random_seed

    [data]
    source = "data/train"             # a Parquet file, folder or glob
    validation_data = "data/val"      # optional, read with the same schema
    schema = { features = ["a", "b"], targets = "label", passthrough = ["id"] }
    # or: schema_file = "schema.json" (JSON as written by Schema.to_json, or TOML)

    [model]
    factory = "model_factory:build"   # module:function, or path = "model.keras"
    [model.args]                      # keyword arguments of the factory
    units = 32

    [compile]                         # keyword arguments of compile
    optimizer = "adam"
    loss = "binary_crossentropy"
    metrics = ["accuracy"]

    [fit]                             # keyword arguments of fit
    epochs = 5
    validation_split = 0.2
    split_by = "user_id"              # optional: no key on both sides (a column name)
    # or: stratify = true             # each class split in the same proportion
    class_weight = { 0 = 1.0, 1 = 3.0 }  # or "balanced", or a table of those per output

    [output]
    dir = "run"                       # default: "output"

``split_by`` (a column of the data; it need not be in the schema) and ``stratify`` say how
``validation_split`` sets rows apart (see ``Trainer.fit``): each needs a ``validation_split``
above 0, neither goes with ``data.validation_data``, and they do not go together. A grouped
or stratified split's sizes are written to ``validation_split.json`` in the output folder.

Every problem (unknown key, wrong type, missing key, unreadable schema or factory) raises a
:class:`SpecError` that names the key, dotted (``fit.epochs``), and the spec file; so does a
value Keras or fitpipe rejects only when it is used (:mod:`fitpipe.cli.applying`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from fitpipe.cli.files import (
    SpecError,
    load_schema,
    read_toml,
    resolve_factory,
    schema_from,
    spec_error,
)
from fitpipe.columnar import is_uri
from fitpipe.schemas import Schema

__all__ = ["COMPILE_TYPES", "DataSpec", "ModelSpec", "RunSpec", "SpecError", "load_spec"]

#: The largest seed NumPy's and Keras' generators take (``keras.utils.set_random_seed``).
_SEED_MAX = 2**32 - 1

_TOP = ("seed", "data", "model", "compile", "fit", "output")
_COMPILE_KEYS = (
    "optimizer",
    "loss",
    "loss_weights",
    "metrics",
    "weighted_metrics",
    "run_eagerly",
    "steps_per_execution",
    "jit_compile",
    "auto_scale_loss",
)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Where the data is and which columns feed the model.

    Attributes:
        source: The training data (absolute path, or as written when not a path).
        schema: The columns' roles.
        validation_data: Validation data read with the same schema, or None.
        schema_file: The file the schema was read from (``data.schema_file``), or None.
    """

    source: str
    schema: Schema
    validation_data: str | None = None
    schema_file: str | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The model: a saved ``.keras`` file or a ``module:function`` factory with arguments.

    Attributes:
        path: The ``.keras`` file, or None.
        factory: ``module:function`` (the module may be a ``.py`` file next to the spec).
        args: Keyword arguments of the factory.
    """

    path: str | None = None
    factory: str | None = None
    args: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A parsed, checked spec file.

    Attributes:
        file: The spec file.
        data: The data.
        model: The model.
        compile: Keyword arguments of ``compile`` (empty: the model comes compiled).
        fit: Keyword arguments of ``fit``.
        output_dir: The folder the run writes into.
        seed: Random seed, or None.
    """

    file: str
    data: DataSpec
    model: ModelSpec
    compile: tuple[tuple[str, Any], ...]
    fit: tuple[tuple[str, Any], ...]
    output_dir: str
    seed: int | None = None

    @property
    def folder(self) -> str:
        """The folder relative paths of the spec are resolved against."""
        return os.path.dirname(self.file)


# ------------------------------------------------------------------------------- checking
class _Checker:
    """Checks the keys and values of one spec file, naming the file in every error."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))

    def fail(self, key: str, what: str, expected: str, fix: str, value: Any) -> SpecError:
        return spec_error(self.path, key, what, expected, fix, value)

    def table(self, raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = raw.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            raise self.fail(
                key, "is not a table", f"`{key}` is a TOML table", f"Write [{key}]", value
            )
        unknown = [k for k in value if k not in allowed]
        if unknown:
            full = f"{key}.{unknown[0]}" if key else unknown[0]
            raise self.fail(
                full,
                "is an unknown key",
                f"Known keys here: {', '.join(allowed)}",
                "Remove or rename it",
                value[unknown[0]],
            )
        return value

    def typed(self, value: Any, key: str, kinds: tuple[type, ...], expected: str) -> Any:
        bad_bool = isinstance(value, bool) and bool not in kinds
        if bad_bool or not isinstance(value, kinds):
            raise self.fail(
                key,
                "has the wrong type",
                f"`{key}` is {expected}",
                f"Write {expected} for `{key}`",
                value,
            )
        return value

    def positive(self, value: Any, key: str, minimum: int = 1, maximum: int | None = None) -> int:
        self.typed(value, key, (int,), "an integer")
        if maximum is not None and not minimum <= value <= maximum:
            raise self.fail(
                key,
                "is out of range",
                f"`{key}` is an integer in [{minimum}, {maximum}]",
                f"Write an integer from {minimum} to {maximum}",
                value,
            )
        if value < minimum:
            raise self.fail(
                key,
                "is out of range",
                f"`{key}` is at least {minimum}",
                f"Write an integer of at least {minimum}",
                value,
            )
        return int(value)

    def path_of(self, value: Any, key: str, must_exist: bool = False) -> str:
        self.typed(value, key, (str,), "a path (a string)")
        if is_uri(value):  # an object store's URI, as written
            return value
        if any(ch in value for ch in "*?["):
            return value if os.path.isabs(value) else os.path.join(self.folder, value)
        resolved = os.path.normpath(os.path.join(self.folder, os.path.expanduser(value)))
        if must_exist and not os.path.exists(resolved):
            raise self.fail(
                key,
                f"names a missing path {resolved}",
                f"Paths in a spec are relative to the spec's folder {self.folder!r}",
                "Fix the path, or create the file",
                value,
            )
        return resolved


def _class_weight(check: _Checker, value: Any, key: str = "fit.class_weight") -> Any:
    """A table of class index to weight, ``"balanced"``, or a table of those by output name."""
    if value == "balanced":
        return value
    check.typed(value, key, (dict,), 'a table of class index to weight, or "balanced"')
    if any(isinstance(v, dict) or v == "balanced" for v in value.values()):
        return {name: _class_weight(check, v, f"{key}.{name}") for name, v in value.items()}
    weights: dict[int, float] = {}
    for name, weight in value.items():
        try:
            index = int(name)
        except ValueError:
            raise check.fail(
                f"{key}.{name}",
                "is not a class index",
                "Class weight keys are integers",
                "Write e.g. `0 = 1.0`",
                name,
            ) from None
        weights[index] = float(check.typed(weight, f"{key}.{name}", (int, float), "a number"))
    return weights


def _validation_freq(check: _Checker, value: Any) -> Any:
    if isinstance(value, list):
        return [check.positive(v, f"fit.validation_freq[{i}]") for i, v in enumerate(value)]
    return check.positive(value, "fit.validation_freq")


def _split(check: _Checker, value: Any) -> float:
    check.typed(value, "fit.validation_split", (int, float), "a number in [0, 1)")
    if not 0 <= value < 1:
        raise check.fail(
            "fit.validation_split",
            "is out of range",
            "`fit.validation_split` is a fraction in [0, 1)",
            "Write e.g. 0.2",
            value,
        )
    return float(value)


def _split_by(check: _Checker, value: Any) -> str:
    check.typed(value, "fit.split_by", (str,), "a column name (a string)")
    if not value.strip():
        raise check.fail(
            "fit.split_by",
            "is empty",
            "`fit.split_by` names the column holding each row's key (a user, a session)",
            'Write e.g. split_by = "user_id"',
            value,
        )
    return str(value)


def _split_problem(fit: Mapping[str, Any], data: DataSpec) -> tuple[str, str, str, str] | None:
    """``(key, what, expected, fix)`` when ``split_by``/``stratify`` do not fit the split."""
    given = [k for k in ("split_by", "stratify") if fit.get(k) not in (None, False)]
    if not given:
        return None
    key = f"fit.{given[0]}"
    if len(given) == 2:
        return (
            "fit.stratify",
            "is given with `fit.split_by`",
            "A grouped split keeps each key's rows together, so it cannot also split each "
            "class in proportion",
            "Keep one of them",
        )
    if data.validation_data is not None:
        return (
            key,
            "is given with `data.validation_data`",
            f"`{key}` says how `fit.validation_split` sets rows apart; "
            "`data.validation_data` replaces the split",
            f"Remove `{key}`, or remove `data.validation_data`",
        )
    if not fit.get("validation_split"):
        return (
            key,
            "is given without a `fit.validation_split`",
            f"`{key}` says how `fit.validation_split` sets rows apart for validation",
            f"Add e.g. validation_split = 0.2 to [fit] with `{key}`",
        )
    return None


def _check_split(check: _Checker, fit: Mapping[str, Any], data: DataSpec) -> None:
    """Checks ``split_by`` and ``stratify`` against ``validation_split`` and the data."""
    problem = _split_problem(fit, data)
    if problem is not None:
        key, what, expected, fix = problem
        raise check.fail(key, what, expected, fix, fit[key.split(".", 1)[1]])


#: ``fit``'s pre-flight check modes (``check=``), besides true and false.
_CHECK_MODES = ("warn", "error", "full")
_CHECK_EXPECTED = 'true, false, "warn", "error" or "full"'

_FIT_CHECKS: dict[str, Callable[[_Checker, Any], Any]] = {
    "batch_size": lambda c, v: c.positive(v, "fit.batch_size"),
    "epochs": lambda c, v: c.positive(v, "fit.epochs"),
    "shuffle": lambda c, v: (
        v if v == "batch" else c.typed(v, "fit.shuffle", (bool,), 'true, false or "batch"')
    ),
    "validation_split": _split,
    "split_by": _split_by,
    "stratify": lambda c, v: c.typed(v, "fit.stratify", (bool,), "true or false"),
    "class_weight": _class_weight,
    "initial_epoch": lambda c, v: c.positive(v, "fit.initial_epoch", 0),
    "steps_per_epoch": lambda c, v: c.positive(v, "fit.steps_per_epoch"),
    "validation_steps": lambda c, v: c.positive(v, "fit.validation_steps"),
    "validation_batch_size": lambda c, v: c.positive(v, "fit.validation_batch_size"),
    "validation_freq": _validation_freq,
    "check": lambda c, v: (
        v if v in _CHECK_MODES else c.typed(v, "fit.check", (bool,), _CHECK_EXPECTED)
    ),
}

#: The types each key of [compile] takes, and what it holds (for messages).
COMPILE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "optimizer": ((str, dict), 'a Keras optimizer name ("adam") or a table {class_name, config}'),
    "loss": ((str, dict, list), 'a Keras loss name ("mse"), or a list or table of them by output'),
    "loss_weights": ((list, dict), "a list or table of numbers, one per model output"),
    "metrics": ((list, dict), 'a list of Keras metric names ("accuracy"), or a table by output'),
    "weighted_metrics": ((list, dict), "a list of Keras metric names, or a table by output"),
    "run_eagerly": ((bool,), "true or false"),
    "steps_per_execution": ((int, str), 'a positive integer or "auto"'),
    "jit_compile": ((bool, str), 'true, false or "auto"'),
    "auto_scale_loss": ((bool,), "true or false"),
}


def _data(check: _Checker, raw: dict[str, Any]) -> DataSpec:
    table = check.table(raw, "data", ("source", "schema", "schema_file", "validation_data"))
    if "source" not in table:
        raise check.fail(
            "data.source",
            "is missing",
            "[data] names the training data",
            'Add e.g. source = "data/train.parquet"',
            None,
        )
    source = check.path_of(table["source"], "data.source")
    if ("schema" in table) == ("schema_file" in table):
        raise check.fail(
            "data.schema",
            "must be given exactly once",
            "[data] has either `schema` (a table) or `schema_file` (a path)",
            "Keep one of them",
            table.get("schema"),
        )
    schema_file = None
    if "schema" in table:
        schema = schema_from(table["schema"], check.path, "data.schema")
    else:
        schema_file = check.path_of(table["schema_file"], "data.schema_file", must_exist=True)
        schema = load_schema(schema_file)
    validation = table.get("validation_data")
    if validation is not None:
        validation = check.path_of(validation, "data.validation_data")
    return DataSpec(source, schema, validation, schema_file)


def _model(check: _Checker, raw: dict[str, Any]) -> ModelSpec:
    table = check.table(raw, "model", ("path", "factory", "args"))
    if ("path" in table) == ("factory" in table):
        raise check.fail(
            "model.factory",
            "must be given exactly once",
            "[model] has either `path` (a .keras file) or `factory` (module:function)",
            "Keep one of them",
            table.get("factory"),
        )
    if "path" in table:
        if "args" in table:
            raise check.fail(
                "model.args",
                "is only for factories",
                "`model.path` loads a saved model as it is",
                "Remove [model.args]",
                table["args"],
            )
        return ModelSpec(path=check.path_of(table["path"], "model.path", must_exist=True))
    factory = check.typed(table["factory"], "model.factory", (str,), '"module:function"')
    args = check.typed(table.get("args", {}), "model.args", (dict,), "a table")
    resolve_factory(factory, check.folder, check.path)
    return ModelSpec(factory=factory, args=tuple(args.items()))


def load_spec(path: str | os.PathLike[str]) -> RunSpec:
    """Reads and checks a run spec.

    Args:
        path: The TOML file.

    Returns:
        The spec, with every path resolved against the spec's folder.

    Raises:
        SpecError: Naming the key and the file, for any problem.

    """
    path = os.fspath(path)
    raw = read_toml(path)
    check = _Checker(path)
    check.table({"": raw}, "", _TOP)
    seed = raw.get("seed")
    if seed is not None:
        seed = check.positive(seed, "seed", 0, _SEED_MAX)
    if "data" not in raw or "model" not in raw:
        missing = "data" if "data" not in raw else "model"
        raise check.fail(
            missing, "is missing", "A spec has [data] and [model] tables", f"Add [{missing}]", None
        )
    compile_table = check.table(raw, "compile", _COMPILE_KEYS)
    for key, value in compile_table.items():
        kinds, expected = COMPILE_TYPES[key]
        check.typed(value, f"compile.{key}", kinds, expected)
    fit_table = check.table(raw, "fit", tuple(_FIT_CHECKS))
    fit = tuple((key, _FIT_CHECKS[key](check, value)) for key, value in fit_table.items())
    output = check.table(raw, "output", ("dir",))
    data = _data(check, raw)
    _check_split(check, dict(fit), data)
    return RunSpec(
        file=os.path.abspath(path),
        data=data,
        model=_model(check, raw),
        compile=tuple(compile_table.items()),
        fit=fit,
        output_dir=check.path_of(output.get("dir", "output"), "output.dir"),
        seed=seed,
    )
