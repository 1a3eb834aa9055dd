"""Roles of batch parts and the documented rule that unpacks a batch into them."""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np
import pytest

from fitpipe.schemas import (
    Role,
    find_namedtuple,
    is_namedtuple,
    pack_roles,
    reject_namedtuple,
    split_roles,
)

A, B, C, D = (np.full((2,), i) for i in range(4))
Pair = collections.namedtuple("Pair", ["x", "y"])


class Typed(NamedTuple):
    x: Any
    y: Any


def test_role_values() -> None:
    assert [role.value for role in Role] == ["feature", "target", "weight", "passthrough"]


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ((A,), (A, None, None)),
        ((A, B), (A, B, None)),
        ((A, B, C), (A, B, C)),
    ],
    ids=["1-tuple", "2-tuple", "3-tuple"],
)
def test_tuples_of_one_to_three_are_unpacked(element: tuple[Any, ...], expected: Any) -> None:
    found = split_roles(element)
    assert len(found) == 3
    for got, want in zip(found, expected, strict=True):
        assert got is want


@pytest.mark.parametrize(
    "element",
    [A, {"a": A, "b": B}, (A, B, C, D), [A, B], (), Pair(A, B), Typed(A, B)],
    ids=["array", "dict", "4-tuple", "list", "empty-tuple", "namedtuple", "NamedTuple"],
)
def test_anything_else_is_x(element: Any) -> None:
    x, y, sample_weight = split_roles(element)
    assert x is element
    assert y is None
    assert sample_weight is None


@pytest.mark.parametrize(
    ("parts", "expected_length"),
    [((A,), 1), ((A, B), 2), ((A, B, C), 3), ((A, None, C), 3), ((A, None, None), 1)],
)
def test_pack_roles_keeps_the_shortest_tuple(parts: tuple[Any, ...], expected_length: int) -> None:
    packed = pack_roles(*parts)
    assert isinstance(packed, tuple)
    assert len(packed) == expected_length
    assert packed[0] is A
    assert packed == tuple(parts[:expected_length])


def test_split_and_pack_round_trip() -> None:
    for element in [(A,), (A, B), (A, B, C)]:
        assert pack_roles(*split_roles(element)) == element


def test_is_namedtuple() -> None:
    assert is_namedtuple(Pair(A, B))
    assert is_namedtuple(Typed(A, B))
    assert not is_namedtuple((A, B))
    assert not is_namedtuple([A, B])
    assert not is_namedtuple(Pair)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (Pair(A, B), "the element itself"),
        ((A, Pair(A, B)), "[1]"),
        ({"a": [A, Typed(A, B)]}, "['a'][1]"),
        ((A, B), None),
        ({"a": A}, None),
        (A, None),
    ],
)
def test_find_namedtuple_reports_the_path(value: Any, path: str | None) -> None:
    assert find_namedtuple(value) == path


def test_reject_namedtuple_explains_the_ambiguity() -> None:
    reject_namedtuple((A, B), "fit", "generator")  # plain tuples pass
    with pytest.raises(
        ValueError,
        match=r"^`fit` cannot unpack a namedtuple yielded by the "
        r"generator \(found at the element itself\)",
    ) as info:
        reject_namedtuple(Pair(A, B), "fit", "generator")
    text = str(info.value)
    assert "ambiguous" in text
    assert "plain tuple" in text
    assert text.endswith("Received: element=Pair (of type Pair)")


def test_reject_nested_namedtuple_names_its_place() -> None:
    with pytest.raises(ValueError, match=r"found at \[0\]\['a'\].*of type tuple"):
        reject_namedtuple(({"a": Typed(A, B)}, C), "evaluate", "PyDataset")
