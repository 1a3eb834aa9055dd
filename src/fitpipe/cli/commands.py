"""What ``fitpipe fit`` and ``fitpipe predict`` do, as functions of their arguments."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import keras

from fitpipe.cli.applying import applying
from fitpipe.cli.files import load_schema, resolve_factory, spec_error
from fitpipe.cli.folders import make_folder, output_folder, staged_run
from fitpipe.cli.history import (
    EpochRecorder,
    dump_json,
    require_matplotlib,
    write_csv,
    write_json,
    write_plot,
)
from fitpipe.cli.models import load_keras
from fitpipe.cli.spec import RunSpec
from fitpipe.columnar import is_uri, local_target, source_columns
from fitpipe.errors import FitpipeValueError, message
from fitpipe.schemas import Schema, closest_column, column_listing
from fitpipe.training import Trainer, check_not_input, predict_checked_output

__all__ = [
    "FitResult",
    "build_model",
    "compile_model",
    "default_verbose",
    "run_fit",
    "run_predict",
]


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The files a ``fitpipe fit`` run wrote, and its per-epoch logs."""

    model: str
    history_csv: str
    history_json: str
    history_png: str | None
    schema: str
    records: tuple[dict[str, Any], ...]
    input_report: str | None = None
    validation_split: str | None = None


def default_verbose() -> int:
    """1 (a progress bar) on a terminal, else 2 (one line per epoch)."""
    return 1 if sys.stdout.isatty() else 2


def build_model(spec: RunSpec) -> keras.Model:
    """Loads the ``.keras`` file, or calls the factory with ``[model.args]``.

    Raises:
        SpecError: When the factory rejects its arguments or returns no Keras model.

    """
    if spec.model.path is not None:
        return load_keras(spec.model.path, "fitpipe", "model.path")
    assert spec.model.factory is not None
    factory = resolve_factory(spec.model.factory, spec.folder, spec.file)
    try:
        model = factory(**dict(spec.model.args))
    except TypeError as err:
        raise spec_error(
            spec.file,
            "model.args",
            f"was not accepted by the factory ({err})",
            "[model.args] are keyword arguments of the factory",
            "Match them to the function's parameters",
            dict(spec.model.args),
        ) from err
    if not isinstance(model, keras.Model):
        raise spec_error(
            spec.file,
            "model.factory",
            "did not return a keras.Model",
            "The factory builds and returns a Keras model",
            "Return the model from the function",
            model,
        )
    return model


def compile_model(model: keras.Model, spec: RunSpec) -> Trainer:
    """Compiles the model with ``[compile]`` (a spec without it keeps a compiled model's).

    Args:
        model: The model :func:`build_model` returned.
        spec: The checked spec.

    Returns:
        The model's trainer.

    Raises:
        SpecError: Naming ``compile`` when it is missing and the model is not compiled, or
            the key of ``[compile]`` that Keras or fitpipe rejects.

    """
    trainer = Trainer(model)
    if not spec.compile:
        if not trainer.model.compiled:
            raise spec_error(
                spec.file,
                "compile",
                "is missing and the model is not compiled",
                "[compile] gives at least `optimizer` and `loss`",
                'Add [compile] with e.g. optimizer = "adam", loss = "mse"',
                None,
            )
        return trainer
    with applying(spec, fallback="compile"):
        trainer.compile(**dict(spec.compile))
    return trainer


def run_fit(
    spec: RunSpec, verbose: int | None = None, plot: bool = True, output_name: str | None = None
) -> FitResult:
    """Builds, compiles and trains the model of a spec, and writes the run's files.

    Writes ``model.keras``, ``history.csv``, ``history.json``, ``history.png`` (unless
    ``plot`` is False), ``schema.json`` (for ``fitpipe predict``), ``input_report.json``
    (whether training waited on its input: ``fitpipe.training.input_report``) and, for a
    grouped or stratified ``validation_split``, ``validation_split.json`` (rows, keys and
    classes on each side) into the output folder, which is made (or found unusable) before
    training. The files are written into a fresh folder inside it and then moved into place;
    an earlier run's files that this run did not write are removed.

    Args:
        spec: The checked spec.
        verbose: 0, 1 (progress bar) or 2 (a line per epoch); default: 1 on a terminal.
        plot: Draw ``history.png``.
        output_name: How messages name the output folder (default: ```output.dir``` in the
            spec file).

    Returns:
        The paths written and the per-epoch logs.

    """
    if plot:
        require_matplotlib("fitpipe fit")
    out = spec.output_dir
    what = output_name or f"`output.dir` in {spec.file}"
    with output_folder(out, "fitpipe", "output_dir", what):  # before training, not after
        records, trainer, schema, history = _train(spec, verbose)
        with staged_run(out) as staging:
            trainer.model.save(os.path.join(staging, "model.keras"))
            with open(os.path.join(staging, "schema.json"), "w", encoding="utf-8") as handle:
                handle.write(schema.to_json())
            _write_files(records, history, staging, spec.file if plot else None)
    return _result(out, records)


def _train(spec: RunSpec, verbose: int | None) -> tuple[list[dict[str, Any]], Trainer, Schema, Any]:
    """Builds, compiles and trains the model: the epochs' logs, trainer, schema, history."""
    if spec.seed is not None:
        keras.utils.set_random_seed(spec.seed)
    recorder = EpochRecorder()
    with applying(spec):  # Keras builds losses and metrics in the first step, in `fit`
        trainer = compile_model(build_model(spec), spec)
        # Selectors ("px*", OTHER_COLUMNS) resolved once: schema.json lists the columns used.
        columns = source_columns(spec.data.source, "fit")
        schema = spec.data.schema.resolve(columns, str(spec.data.source), "fit")
        _check_split_column(spec, columns)
        history = trainer.fit(
            spec.data.source,
            schema=schema,
            validation_data=spec.data.validation_data,
            verbose=default_verbose() if verbose is None else verbose,
            callbacks=[recorder],
            **dict(spec.fit),
        )
    return recorder.records, trainer, schema, history


def _write_files(
    records: list[dict[str, Any]], history: Any, folder: str, plot_title: str | None
) -> None:
    """Writes the history (and its plot, given a title), the input report and the split."""
    write_csv(records, os.path.join(folder, "history.csv"))
    write_json(records, os.path.join(folder, "history.json"))
    if plot_title is not None:
        write_plot(records, os.path.join(folder, "history.png"), os.path.basename(plot_title))
    _write_input_report(history, os.path.join(folder, "input_report.json"))
    _write_split(history, os.path.join(folder, "validation_split.json"))


def _result(folder: str, records: list[dict[str, Any]]) -> FitResult:
    """The files of the run now in ``folder``."""

    def path(name: str) -> str | None:
        found = os.path.join(folder, name)
        return found if os.path.isfile(found) else None

    return FitResult(
        model=os.path.join(folder, "model.keras"),
        history_csv=os.path.join(folder, "history.csv"),
        history_json=os.path.join(folder, "history.json"),
        history_png=path("history.png"),
        schema=os.path.join(folder, "schema.json"),
        records=tuple(records),
        input_report=path("input_report.json"),
        validation_split=path("validation_split.json"),
    )


def _check_split_column(spec: RunSpec, columns: list[str]) -> None:
    """Refuses a ``fit.split_by`` that names no column of the data, before the model is built.

    Raises:
        SpecError: Naming ``fit.split_by``, the spec file and the closest column.

    """
    column = dict(spec.fit).get("split_by")
    if column is None or column in columns:
        return
    guess = closest_column(column, columns)
    hint = f" (did you mean {guess!r}?)" if guess is not None else ""
    raise spec_error(
        spec.file,
        "fit.split_by",
        f"names no column of {spec.data.source}{hint}",
        f"`fit.split_by` names the column holding each row's key; the data has columns "
        f"{column_listing(columns)}",
        "Fix the column name",
        column,
    )


def _write_split(history: Any, path: str) -> str | None:
    """Writes the sizes of a grouped or stratified split as JSON (None for other runs)."""
    return _write_record(
        (getattr(history, "params", None) or {}).get("validation_split_sizes"), path
    )


def _write_input_report(history: Any, path: str) -> str | None:
    """Writes ``history.input_report`` as JSON (None when the run kept none)."""
    return _write_record(getattr(history, "input_report", None), path)


def _write_record(record: Any, path: str) -> str | None:
    """Writes ``record`` as JSON to ``path``; None (and no file) when there is no record."""
    return None if record is None else dump_json(record, path)


def run_predict(
    model: str,
    data: str,
    schema: str,
    output: str,
    batch_size: int | None = None,
    verbose: int | None = None,
) -> str:
    """Loads a saved model and streams its predictions of ``data`` to a Parquet file.

    Args:
        model: The ``.keras`` file.
        data: The input (a Parquet file, folder or glob).
        schema: The schema file (JSON or TOML).
        output: The Parquet file to write (its folder is created).
        batch_size: Rows per batch.
        verbose: 0 or 1 (a progress bar of rows); default: 1 on a terminal.

    Returns:
        The path written.

    """
    if not is_uri(output):  # an object store has no folders to make
        folder = os.path.dirname(os.path.abspath(output))
        make_folder(folder, "fitpipe predict", "output", "the folder of `--output`")
    # the next read of the input folder or glob would take the predictions as input too
    checked = output if is_uri(output) else local_target(output)
    check_not_input(checked, data, folders=True, caller="fitpipe predict")
    declared = load_schema(schema)
    if not os.path.exists(model):
        raise FitpipeValueError(
            message(
                "fitpipe predict",
                f"cannot find the model file {model}",
                "`--model` is a .keras file, e.g. the model.keras that `fitpipe fit` wrote",
                "Check the path",
                model=model,
            )
        )
    loaded = load_keras(model, "fitpipe predict", "model", compile=False)
    level = (1 if sys.stdout.isatty() else 0) if verbose is None else min(verbose, 1)
    # checked above the strict way: predict's own check would expand `data` again
    return predict_checked_output(Trainer(loaded), data, output, batch_size, level, declared)
