"""The ``fitpipe`` command: ``inspect`` a source, ``fit`` a TOML spec, ``predict`` to Parquet.

Exit status: 0 on success; 1 when fitpipe reports an error (the message goes to stderr, with
no traceback) or when ``inspect`` finds problems; 2 for command-line usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_EPILOG = (
    "Exit status: 0 on success; 1 on an error (message on stderr) or when `inspect` finds "
    "problems; 2 on a usage error."
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
  [fit]                             # epochs, batch_size, validation_split, class_weight, ...
  [output]
  dir = "output"

Writes model.keras, history.csv, history.json, history.png and schema.json into the output
folder.
"""


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _add_inspect(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect",
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


def _add_fit(commands: Any) -> None:
    fit = commands.add_parser(
        "fit",
        help="train a model as a TOML spec says",
        description="Train the model a TOML spec names on its data.",
        epilog=_SPEC_HELP + "\n" + _EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("spec", metavar="SPEC.toml", help="the run spec")
    fit.add_argument("--output-dir", metavar="DIR", help="override [output] dir")
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), help="default: 1 on a terminal")
    fit.add_argument("--no-plot", action="store_true", help="skip history.png")


def _add_predict(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fitpipe`` command and its subcommands."""
    from fitpipe import __version__

    parser = argparse.ArgumentParser(
        prog="fitpipe",
        description="Train Keras models on Parquet data from the command line.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"fitpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_inspect(commands)
    _add_fit(commands)
    _add_predict(commands)
    return parser


def _inspect(args: argparse.Namespace) -> int:
    from fitpipe.cli.files import load_schema
    from fitpipe.cli.inspection import inspect_source

    schema = load_schema(args.schema) if args.schema else None
    report = inspect_source(args.source, schema, args.batch_size, args.predict)
    print(report.format())
    return 1 if report.problems else 0


def _fit(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from fitpipe.cli.commands import run_fit
    from fitpipe.cli.spec import load_spec

    spec = load_spec(args.spec)
    if args.output_dir:
        spec = dataclasses.replace(spec, output_dir=os.path.abspath(args.output_dir))
    result = run_fit(spec, verbose=args.verbose, plot=not args.no_plot)
    written = [result.model, result.history_csv, result.history_json, result.history_png]
    print("wrote:", *[path for path in written if path], result.schema, sep="\n  ")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fitpipe.cli.commands import run_predict

    path = run_predict(
        args.model, args.data, args.schema, args.output, args.batch_size, args.verbose
    )
    print(f"wrote: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``fitpipe`` command.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status.

    """
    args = build_parser().parse_args(argv)
    from fitpipe.errors import FitpipeError

    run = {"inspect": _inspect, "fit": _fit, "predict": _predict}[args.command]
    try:
        return run(args)
    except FitpipeError as err:
        print(f"fitpipe {args.command}: error: {err}", file=sys.stderr)
        return 1
