"""The ``fitpipe`` command: ``inspect`` or ``check`` a source, ``fit`` a TOML spec, ``predict``.

Exit status: 0 on success; 1 when a command fails (one ``fitpipe CMD: error: ...`` line on
stderr, no traceback unless ``--debug``) or when ``inspect`` or ``check`` finds problems; 2 for
command-line usage errors. ``--help`` and ``--version`` answer without importing TensorFlow;
TensorFlow's start-up lines are kept off stderr unless ``--verbose`` (see
:mod:`fitpipe.cli.quiet`).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_EPILOG = (
    "Exit status: 0 on success; 1 on an error (one line on stderr; --debug shows the "
    "traceback) or when `inspect` or `check` finds problems; 2 on a usage error."
)

_SPEC_HELP = """\
A spec is a TOML file; paths in it are relative to it:

  seed = 0
  [data]
  source = "data/train"        # Parquet file, folder or glob
  schema = { features = ["a", "b"], targets = "label", passthrough = ["id"] }
  # or schema_file = "schema.json"; optional validation_data = "data/val"
  [model]
  factory = "model_factory:build"   # or path = "model.keras"
  [model.args]                      # keyword arguments of the factory
  [compile]                         # optimizer, loss, metrics, ...
  [fit]                             # epochs, batch_size, validation_split, class_weight,
                                    # check = false (skip the pre-flight check), ...
  # split_by = "user_id" (no key on both sides) or stratify = true
  [output]
  dir = "output"

Writes model.keras, history.csv, history.json, history.png, schema.json and
input_report.json (whether training waited on its input) into the output folder (and
validation_split.json, the sizes of a split_by or stratify split); a rerun replaces the
folder's earlier run files.
"""


def _positive(text: str) -> int:
    """An option's positive integer; argparse words the refusal as a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _folder(text: str) -> str:
    """An option's folder path: refuses an empty one (it would be ignored, or mean ".")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty string")
    return text


def _common() -> argparse.ArgumentParser:
    """Options every command takes too (``fitpipe fit spec.toml --debug``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an error, show the Python traceback too",
    )
    return common


def _add_inspect(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect",
        parents=[_common()],
        help="show how a source is read: adapter, Arrow schema, tensor specs, rows, problems",
        description="Show which adapter takes SOURCE, its Arrow schema (from metadata), the "
        "tensor specs it becomes, rows and batches per epoch, and problems found in metadata "
        "(nulls in columns without a fill value, types that cannot be converted).",
        epilog=_EPILOG,
    )
    inspect.add_argument("source", metavar="SOURCE", help="a Parquet file, folder or glob")
    inspect.add_argument("--schema", metavar="FILE", help="schema file (JSON or TOML)")
    inspect.add_argument("--batch-size", type=_positive, default=32, help="default: 32")
    inspect.add_argument(
        "--predict",
        action="store_true",
        help="check the source as prediction input (features and passthrough, no targets)",
    )
    inspect.add_argument(
        "--write-schema",
        metavar="FILE",
        help="write a proposed schema (JSON) to FILE, to edit: every numeric column a "
        "feature, other columns passthrough; no target unless --target",
    )
    inspect.add_argument(
        "--target",
        action="append",
        metavar="COLUMN",
        help="with --write-schema: the target column (repeat for several)",
    )
    inspect.set_defaults(usage=_inspect_usage(inspect))


def _inspect_usage(inspect: argparse.ArgumentParser) -> Any:
    """The usage check of ``inspect`` after parsing: exits 2 with the usage line."""

    def check(args: argparse.Namespace) -> None:
        if args.target and not args.write_schema:
            inspect.error("--target is only used with --write-schema")

    return check


def _add_check(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        parents=[_common()],
        help="pre-flight check of the data: NaN, infinities, nulls, labels against a model",
        description="Scan the schema's feature, target and weight columns of DATA for NaN, "
        "infinities, nulls and constant columns, and (with --model) the targets against the "
        "model's losses and outputs; print a table (or --json). Exit status 1 on an error.",
        epilog=_EPILOG,
    )
    check.add_argument("data", metavar="DATA", help="a Parquet file, folder or glob")
    check.add_argument("--schema", metavar="FILE", help="schema file (JSON or TOML)")
    check.add_argument("--model", metavar="M", help="a saved .keras model, or a run spec .toml")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--stats-only",
        action="store_true",
        help="answer from the Parquet footer statistics alone (nulls, min/max; no NaN)",
    )
    check.add_argument("--all-columns", action="store_true", help="list every column")
    _add_import(check)


def _add_import(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="FILE.py",
        help="import a Python file first: the one defining the model's custom classes "
        "(for a model `fitpipe fit` trained, the spec's model factory); repeat for several",
    )


def _import_files(args: argparse.Namespace) -> None:
    from fitpipe.cli.files import import_file

    for path in args.imports or ():
        import_file(path, f"fitpipe {args.command}")


def _add_fit(commands: Any) -> None:
    fit = commands.add_parser(
        "fit",
        parents=[_common()],
        help="train a model as a TOML spec says",
        description="Train the model a TOML spec names on its data.",
        epilog=_SPEC_HELP + "\n" + _EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("spec", metavar="SPEC.toml", help="the run spec")
    fit.add_argument("--output-dir", type=_folder, metavar="DIR", help="override [output] dir")
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), help="default: 1 on a terminal")
    fit.add_argument("--no-plot", action="store_true", help="skip history.png")


def _add_predict(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        parents=[_common()],
        help="write a saved model's predictions to Parquet",
        description="Predict with a saved .keras model and write the schema's passthrough "
        "columns and one column per model output to a Parquet file (atomically).",
        epilog=_EPILOG,
    )
    predict.add_argument("--model", required=True, metavar="M.keras", help="the saved model")
    predict.add_argument("--data", required=True, metavar="SOURCE", help="Parquet input")
    predict.add_argument("--schema", required=True, metavar="FILE", help="JSON or TOML")
    predict.add_argument("--output", required=True, metavar="OUT.parquet", help="file to write")
    predict.add_argument("--batch-size", type=_positive, help="default: 32")
    predict.add_argument("--verbose", type=int, choices=(0, 1), help="default: 1 on a terminal")
    _add_import(predict)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fitpipe`` command and its subcommands."""
    from fitpipe import __version__

    parser = argparse.ArgumentParser(
        prog="fitpipe",
        description="Train Keras models on Parquet data from the command line.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"fitpipe {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the Python traceback too"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest="startup_log",
        action="store_true",
        help="show TensorFlow's start-up log on stderr (oneDNN, CUDA); hidden by default",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_inspect(commands)
    _add_check(commands)
    _add_fit(commands)
    _add_predict(commands)
    return parser


def _inspect(args: argparse.Namespace) -> int:
    from fitpipe.cli.files import load_schema
    from fitpipe.cli.inspection import inspect_source

    if args.write_schema:
        from fitpipe.cli.proposal import write_proposed_schema

        path = write_proposed_schema(args.source, args.write_schema, args.target or ())
        print(f"wrote: {path} (a proposed schema: check the roles, then pass it to --schema)")
        if not args.schema:
            return 0
    schema = load_schema(args.schema) if args.schema else None
    report = inspect_source(args.source, schema, args.batch_size, args.predict)
    print(report.format())
    return 1 if report.problems else 0


def _check(args: argparse.Namespace) -> int:
    from fitpipe.cli.check import print_report, run_check

    _import_files(args)
    report = run_check(args.data, args.schema, args.model, args.stats_only)
    print_report(report, args.json, args.all_columns)
    return 0 if report.ok else 1


def _fit(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from fitpipe.cli.commands import run_fit
    from fitpipe.cli.spec import load_spec

    spec = load_spec(args.spec)
    name = None
    if args.output_dir is not None:
        spec = dataclasses.replace(spec, output_dir=os.path.abspath(args.output_dir))
        name = "`--output-dir`"
    result = run_fit(spec, verbose=args.verbose, plot=not args.no_plot, output_name=name)
    written = [result.model, result.history_csv, result.history_json, result.history_png]
    written += [result.input_report, result.validation_split]
    print("wrote:", *[path for path in written if path], result.schema, sep="\n  ")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fitpipe.cli.commands import run_predict

    _import_files(args)
    path = run_predict(
        args.model, args.data, args.schema, args.output, args.batch_size, args.verbose
    )
    print(f"wrote: {path}")
    return 0


#: Fitpipe's advice to Python callers, and what a spec says instead.
_ADVICE = (("pass `check=False`", "set `check = false` in the spec's [fit]"),)


def _show_warning(command: str, shown: Any) -> Any:
    """``warnings.showwarning`` for a command: fitpipe's warnings as one CLI line each."""

    def show(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
        from fitpipe.errors import FitpipeWarning

        if not issubclass(category, FitpipeWarning):
            shown(message, category, filename, lineno, *rest)
            return
        text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        for python, spec in _ADVICE:
            text = text.replace(python, spec)
        print(f"fitpipe {command}: warning: {text}", file=sys.stderr)

    return show


def _one_line(err: BaseException) -> str:
    """The error as one line: fitpipe's own message as it is, others with their type."""
    from fitpipe.errors import FitpipeError

    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    if isinstance(err, FitpipeError):
        return text
    kind = type(err).__name__
    return f"{kind}: {text} (--debug shows the traceback)" if text else kind


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``fitpipe`` command.

    Every failure of a command is reported as one ``fitpipe CMD: error: ...`` line on stderr
    with exit status 1; ``--debug`` prints the traceback first.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status.

    """
    args = build_parser().parse_args(argv)
    getattr(args, "usage", lambda _: None)(args)  # usage errors found after parsing: exit 2
    run = {"inspect": _inspect, "check": _check, "fit": _fit, "predict": _predict}[args.command]
    try:
        if not args.startup_log:
            from fitpipe.cli.quiet import import_tensorflow_quietly

            import_tensorflow_quietly()
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(args.command, warnings.showwarning)
            return run(args)
    except KeyboardInterrupt:
        print(f"fitpipe {args.command}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        print(f"fitpipe {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
