"""The "no adapter takes this input" error: short, with a hint for inputs people often pass.

A table of :class:`InputHint` entries, asked in order, says what is wrong with a common input
no adapter takes (a path that does not exist, a Polars ``LazyFrame``, a DuckDB relation, a
Spark or PyTorch object) and how to fix it; any other input gets one short paragraph naming
the registered adapters.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

from fitpipe.errors import message, missing_path_fix

__all__ = ["HINTS", "InputHint", "no_adapter_message"]


@dataclasses.dataclass(frozen=True)
class InputHint:
    """What to tell about one kind of input that no adapter takes.

    Attributes:
        applies: Tells, cheaply, whether the hint is about ``x``.
        problem: Words what is wrong with ``x`` (after "found no adapter for the input `x`: ").
        expected: What fitpipe reads instead.
        fix: How to fix it, or a function of ``x`` that words it.
    """

    applies: Callable[[Any], bool]
    problem: Callable[[Any], str]
    expected: str
    fix: str | Callable[[Any], str]


def _missing_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike)) and not os.path.exists(os.fspath(x))


def _of_type(root: str, *names: str) -> Callable[[Any], bool]:
    def applies(x: Any) -> bool:
        return any(
            k.__name__ in names and (k.__module__ or "").split(".", 1)[0] == root
            for k in type(x).__mro__
        )

    return applies


def _generator_function(x: Any) -> bool:
    """A function that makes a generator (or async generator), passed without calling it."""
    return inspect.isgeneratorfunction(x) or inspect.isasyncgenfunction(x)


_PARQUET = "A path names Parquet data: a file, a folder of files or a glob pattern"

#: Hints asked in order; the first that applies words the error.
HINTS: list[InputHint] = [
    InputHint(
        _missing_path,
        lambda x: f"no such file or folder {os.fspath(x)!r}",
        _PARQUET,
        lambda x: missing_path_fix(os.fspath(x)),
    ),
    InputHint(
        _generator_function,
        lambda x: f"{getattr(x, '__name__', 'it')} is a generator function, not a generator",
        "Python batches are read from a generator object or an iterable of batches",
        "Call it: pass `x()` (a new generator for each `fit`, `evaluate` or `predict`)",
    ),
    InputHint(
        _of_type("polars", "LazyFrame"),
        lambda x: "a Polars LazyFrame is a query plan, not data",
        "Polars data is read from a DataFrame, with `schema=`",
        "Run the query first: pass `x.collect()`",
    ),
    InputHint(
        _of_type("duckdb", "DuckDBPyRelation"),
        lambda x: "this DuckDB relation does not export Arrow data",
        "DuckDB results are read as Arrow tables, with `schema=`",
        "Fetch it first: pass `x.arrow()`",
    ),
    InputHint(
        _of_type("pyspark", "DataFrame"),
        lambda x: "a Spark DataFrame lives in the Spark cluster",
        "fitpipe reads local data: Arrow tables, pandas frames and Parquet files",
        "Write it to Parquet (`x.write.parquet(path)`) and pass the path, or collect a "
        "small one with `x.toArrow()`",
    ),
    InputHint(
        _of_type("torch", "Tensor"),
        lambda x: "a PyTorch tensor is not a TensorFlow or NumPy array",
        "Arrays are NumPy arrays or TensorFlow tensors",
        "Convert it: pass `x.detach().cpu().numpy()`",
    ),
    InputHint(
        _of_type("torch", "Dataset"),
        lambda x: "a PyTorch Dataset yields samples, not batches",
        "PyTorch data is read through a `torch.utils.data.DataLoader`, which batches it",
        "Wrap it: pass `torch.utils.data.DataLoader(x, batch_size=32)`",
    ),
]

_READS = (
    "fitpipe reads arrays, tensors, lists/dicts of them, pandas, Arrow, Parquet paths, "
    "generators, tf.data, PyDataset, Grain datasets and PyTorch DataLoaders"
)


def no_adapter_message(x: Any, caller: str, adapters: Sequence[str], name: str = "x") -> str:
    """Words the error for an input no registered adapter takes.

    Args:
        x: The input.
        caller: The public method being run.
        adapters: The registered adapters' names, in the order they are asked.
        name: The argument ``x`` was given as.

    Returns:
        The message: a type-specific hint from :data:`HINTS`, else a short listing.

    """
    for hint in HINTS:
        try:
            applies = hint.applies(x)
        except Exception:  # a hint must never hide the real error
            applies = False
        if applies:
            return message(
                caller,
                f"found no adapter for the input `{name}`: {hint.problem(x)}",
                hint.expected,
                hint.fix if isinstance(hint.fix, str) else hint.fix(x),
                **{name: x},
            )
    listed = ", ".join(repr(a) for a in adapters)
    return message(
        caller,
        f"found no adapter for the input `{name}` of type {type(x).__name__}",
        f"{_READS} (registered adapters: {listed})",
        f"Convert `{name}` to one of these forms, or register an adapter for "
        f"{type(x).__name__} with `fitpipe.register_adapter`",
        **{name: x},
    )
