"""Every parameter of every public function and method of fitpipe's API is documented.

The public API is ``fitpipe.__all__``: its functions, and the public methods (and
constructors) of its classes that fitpipe defines (not those inherited from Keras). A
parameter is documented when the Google-style ``Args:`` section of the docstring (of the
class, for a constructor) names it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fitpipe

_SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Attributes|Returns|Raises|Yields|Example|Note)s?:\s*$"
)
_ARG = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?:")


def documented_args(doc: str | None) -> set[str]:
    """The names listed in the ``Args:`` section of a Google-style docstring."""
    names: set[str] = set()
    lines = inspect.cleandoc(doc or "").splitlines()
    inside, indent = False, None
    for line in lines:
        section = _SECTION.match(line)
        if section:
            inside = section.group(2) in ("Args", "Arguments")
            indent = None
            continue
        if not inside or not line.strip():
            continue
        current = len(line) - len(line.lstrip())
        if indent is None:
            indent = current
        if current < indent:
            inside = False
            continue
        found = _ARG.match(line)
        if current == indent and found:
            names.add(found.group(1).lstrip("*"))
    return names


def _own(obj: Any) -> bool:
    return getattr(obj, "__module__", "").startswith("fitpipe")


def public_callables() -> Iterator[tuple[str, Callable[..., Any], str | None]]:
    """``(qualified name, function, docstring holding its Args)`` for the public API."""
    for name in fitpipe.__all__:
        obj = getattr(fitpipe, name)
        if inspect.isfunction(obj) and _own(obj):
            yield f"fitpipe.{name}", obj, obj.__doc__
        elif inspect.isclass(obj) and _own(obj):
            for attr, member in vars(obj).items():
                if attr == "__init__" and inspect.isfunction(member):
                    yield f"fitpipe.{name}", member, obj.__doc__
                    continue
                if attr.startswith("_"):
                    continue
                function = (
                    member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                )
                if inspect.isfunction(function):
                    yield f"fitpipe.{name}.{attr}", function, function.__doc__
            for base in obj.__mro__[1:]:
                if _own(base) and base.__name__ not in fitpipe.__all__:
                    for attr, member in vars(base).items():
                        if not attr.startswith("_") and inspect.isfunction(member):
                            yield f"fitpipe.{name}.{attr}", member, member.__doc__
        elif _own(type(obj)) and not inspect.ismodule(obj):  # an instance: its public methods
            for attr in dir(type(obj)):
                member = getattr(type(obj), attr)
                if not attr.startswith("_") and inspect.isfunction(member) and _own(member):
                    yield f"fitpipe.{name}.{attr}", member, member.__doc__


def _parameters(function: Callable[..., Any]) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return [n for n in names if n not in ("self", "cls")]


CALLABLES = sorted({qual: (fn, doc) for qual, fn, doc in public_callables()}.items())


def test_the_public_api_is_covered() -> None:
    names = [qual for qual, _ in CALLABLES]
    for expected in ("fitpipe.Trainer.fit", "fitpipe.Trainer.predict_on_batch", "fitpipe.adapt"):
        assert expected in names
    assert len(names) >= 15


@pytest.mark.parametrize(
    ("qualified", "function", "doc"),
    [(q, f, d) for q, (f, d) in CALLABLES],
    ids=[q for q, _ in CALLABLES],
)
def test_every_parameter_is_documented(qualified: str, function: Any, doc: str | None) -> None:
    missing = [name for name in _parameters(function) if name not in documented_args(doc)]
    assert not missing, f"{qualified}: no Args entry for {missing}"


def test_documented_args_reads_google_sections() -> None:
    doc = """Does it.

    Args:
        x: The input. It may be
            long: with colons.
        batch_size (int): Rows.
        **kwargs: More.

    Returns:
        y: not an arg.
    """
    assert documented_args(doc) == {"x", "batch_size", "kwargs"}
