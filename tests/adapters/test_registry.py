"""The adapter registry: registration, priorities, read-only mapping, entry points, errors."""

from __future__ import annotations

import importlib.metadata
import math
import re
import sys
import textwrap
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fitpipe
from fitpipe.adapters import (
    ENTRY_POINT_GROUP,
    AdapterRegistry,
    ArraySource,
    LazyAdapter,
    registry,
)
from fitpipe.errors import (
    FitpipeTypeError,
    FitpipeValueError,
    FitpipeWarning,
    PluginWarning,
    UnsupportedInputError,
)
from fitpipe.testing import epoch_batches

BUILTINS = [
    "tf.data",
    "distributed",
    "pydataset",
    "tensor",
    "pandas",
    "arrow",
    "arrow-stream",
    "parquet",
    "grain",
    "torch",
    "generator",
    "sparse",
    "numpy",
    "mapping",
    "sequence",
]


class Box:
    """A user type no built-in adapter takes."""

    def __init__(self, values: Any) -> None:
        self.values = np.asarray(values, dtype="float32")


class BoxAdapter:
    name = "test-box"
    accepts = "a test Box"
    supports = frozenset({"batch_size"})

    def can_adapt(self, x: Any) -> bool:
        return isinstance(x, Box)

    def adapt(self, request: Any) -> ArraySource:
        return ArraySource(request.x.values, None, None, len(request.x.values))


def make_adapter(name: str, takes: type, scale: float = 1.0) -> Any:
    """An adapter named ``name`` that takes ``takes`` and multiplies its values by ``scale``."""

    class _Adapter:
        accepts = f"a {takes.__name__} ({name})"
        supports = frozenset({"batch_size"})

        def can_adapt(self, x: Any) -> bool:
            return isinstance(x, takes)

        def adapt(self, request: Any) -> ArraySource:
            values = np.asarray(request.x.values if hasattr(request.x, "values") else request.x)
            return ArraySource(values * scale, None, None, len(values))

    adapter = _Adapter()
    adapter.name = name
    return adapter


# Mapping behaviour -------------------------------------------------------------------------


def test_registry_is_a_read_only_mapping_of_builtins() -> None:
    assert fitpipe.registry is registry
    assert isinstance(registry, Mapping)
    # Third-party adapters (an installed example package's entry point, say) may sit between
    # the built-ins by their priority; the built-ins keep their own order among themselves.
    assert [name for name in registry if name in BUILTINS] == BUILTINS
    assert registry["numpy"].name == "numpy"
    assert len(registry) >= len(BUILTINS)
    assert "numpy" in registry
    with pytest.raises(TypeError):
        registry["numpy"] = BoxAdapter()  # type: ignore[index]
    with pytest.raises(TypeError):
        del registry["numpy"]  # type: ignore[attr-defined]
    assert not hasattr(registry, "__setitem__")
    assert not hasattr(registry, "pop")


def test_builtin_priorities_order_dispatch() -> None:
    priorities = [registry.priority(name) for name in BUILTINS]
    assert priorities == sorted(priorities, reverse=True)
    assert registry.priority("tf.data") == 100
    assert registry.priority("sequence") == 20


# Registration ------------------------------------------------------------------------------


def test_register_as_call_and_dispatch(clean_registry: Any) -> None:
    returned = fitpipe.register_adapter(BoxAdapter(), priority=5)
    assert isinstance(returned, BoxAdapter)
    assert "test-box" in registry
    assert registry.priority("test-box") == 5
    pipeline = fitpipe.adapt(Box([[1.0], [2.0], [3.0]]), batch_size=2)
    assert pipeline.adapter == "test-box"
    batches = epoch_batches(pipeline)
    assert [b[0].ravel().tolist() for b in batches] == [[1.0, 2.0], [3.0]]


def test_register_as_decorator_keeps_the_class(clean_registry: Any) -> None:
    @fitpipe.register_adapter(priority=7)
    class Decorated(BoxAdapter):
        name = "test-decorated"

    assert isinstance(Decorated, type)
    assert isinstance(registry["test-decorated"], Decorated)
    assert registry.priority("test-decorated") == 7
    assert fitpipe.adapt(Box([[1.0]])).adapter == "test-decorated"


def test_duplicate_name_is_an_error_without_replace(clean_registry: Any) -> None:
    fitpipe.register_adapter(BoxAdapter())
    with pytest.raises(ValueError, match=r"^`register_adapter` .*'test-box'.*replace=True"):
        fitpipe.register_adapter(BoxAdapter())


def test_replace_true_replaces_a_third_party_adapter(clean_registry: Any) -> None:
    first = make_adapter("test-replaceable", Box, scale=1.0)
    second = make_adapter("test-replaceable", Box, scale=10.0)
    fitpipe.register_adapter(first)
    fitpipe.register_adapter(second, replace=True, priority=3)
    assert registry["test-replaceable"] is second
    assert registry.priority("test-replaceable") == 3
    (batch,) = epoch_batches(fitpipe.adapt(Box([[1.0], [2.0]])))
    assert batch[0].ravel().tolist() == [10.0, 20.0]


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_names_cannot_be_replaced(name: str, replace: bool, clean_registry: Any) -> None:
    impostor = make_adapter(name, Box)
    with pytest.raises(ValueError, match="built-in adapters cannot be replaced"):
        fitpipe.register_adapter(impostor, replace=replace)
    assert registry[name] is not impostor


def test_builtins_cannot_be_unregistered() -> None:
    with pytest.raises(ValueError, match=r"^`unregister` cannot remove the built-in adapter"):
        registry.unregister("numpy")
    assert "numpy" in registry


def test_unregister_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        registry.unregister("test-never-registered")


def test_unregister_removes_a_third_party_adapter(clean_registry: Any) -> None:
    fitpipe.register_adapter(BoxAdapter())
    registry.unregister("test-box")
    assert "test-box" not in registry
    with pytest.raises(UnsupportedInputError):
        fitpipe.adapt(Box([[1.0]]))


@pytest.mark.parametrize(
    ("adapter", "problem"),
    [
        (object(), "missing"),
        (type("NoAdapt", (), {"name": "n", "accepts": "a", "supports": frozenset()})(), "adapt"),
        (
            type(
                "BadSupports",
                (BoxAdapter,),
                {"name": "test-bad-supports", "supports": frozenset({"epochs"})},
            )(),
            "unknown `supports` entries",
        ),
    ],
)
def test_register_checks_the_protocol(adapter: Any, problem: str, clean_registry: Any) -> None:
    with pytest.raises(FitpipeTypeError, match=problem):
        fitpipe.register_adapter(adapter)


@pytest.mark.parametrize(
    ("members", "problem", "fix"),
    [
        ({"supports": frozenset({"epochs"})}, r"unknown `supports` entries \['epochs'\]", "Drop"),
        ({"supports": "batch_size"}, "`supports` is str, not a frozenset", "Make `supports`"),
        ({"accepts": None}, "`accepts` is None, not a non-empty str", "Set `accepts` to a str"),
        ({"name": 7}, "`name` is 7, not a non-empty str", "Give the adapter a str `name`"),
        ({"can_adapt": True}, "`can_adapt` is not callable", "Make `can_adapt` a method"),
    ],
)
def test_protocol_errors_name_the_member_and_its_own_fix(
    members: dict[str, Any], problem: str, fix: str, clean_registry: Any
) -> None:
    """Members of the wrong type are refused at registration, each with the fix it needs."""
    adapter = type("Bad", (BoxAdapter,), {"name": "test-bad-member", **members})
    expected = rf"^`register_adapter` cannot register Bad: {problem}\. An adapter .*\. {fix}"
    with pytest.raises(FitpipeTypeError, match=expected) as info:
        fitpipe.register_adapter(adapter)
    assert "Add the missing members" not in str(info.value)
    if members.get("supports") == frozenset({"epochs"}):  # the known entries are listed
        assert re.search(r"Drop or rename the unknown entries: .*'batch_size'", str(info.value))
    assert "test-bad-member" not in registry


bad_priorities = st.one_of(
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.just(math.nan),
    st.lists(st.integers(), max_size=2),
    st.builds(complex, st.integers(), st.integers(min_value=1)),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(priority=bad_priorities, decorator=st.booleans())
def test_a_priority_that_is_not_a_real_number_is_refused_and_breaks_no_dispatch(
    priority: Any, decorator: bool, clean_registry: Any
) -> None:
    kind = FitpipeValueError if isinstance(priority, float) else FitpipeTypeError
    received = re.escape(f"Received: priority={priority!r} (of type {type(priority).__name__})")
    match = rf"^`register_adapter` got an invalid `priority` for the adapter 'test-box'.*{received}"
    with pytest.raises(kind, match=match):
        if decorator:
            fitpipe.register_adapter(priority=priority)(BoxAdapter)
        else:
            fitpipe.register_adapter(BoxAdapter, priority=priority)
    assert "test-box" not in registry
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "numpy"


def test_real_priorities_of_any_kind_order_dispatch(clean_registry: Any) -> None:
    fitpipe.register_adapter(make_adapter("test-float", Box), priority=np.float32(2.5))
    fitpipe.register_adapter(make_adapter("test-int", Box), priority=np.int64(2))
    with pytest.raises(FitpipeTypeError, match=r"invalid `replace`.*Received: replace='no'"):
        fitpipe.register_adapter(make_adapter("test-str-replace", Box), replace="no")
    assert fitpipe.adapt(Box([[1.0]])).adapter == "test-float"


# Dispatch ----------------------------------------------------------------------------------


def test_dispatch_asks_in_priority_order(clean_registry: Any) -> None:
    asked: list[str] = []

    def spy(name: str, answer: bool) -> Any:
        adapter = make_adapter(name, Box, scale=1.0 if name.endswith("low") else 2.0)
        original = adapter.can_adapt

        def can_adapt(x: Any) -> bool:
            asked.append(name)
            return answer and original(x)

        adapter.can_adapt = can_adapt
        return adapter

    fitpipe.register_adapter(spy("test-low", True), priority=1)
    fitpipe.register_adapter(spy("test-high", True), priority=2)
    fitpipe.register_adapter(spy("test-top-declines", False), priority=3)
    pipeline = fitpipe.adapt(Box([[1.0]]))
    assert pipeline.adapter == "test-high"
    assert asked[:2] == ["test-top-declines", "test-high"]
    assert "test-low" not in asked


def test_higher_priority_third_party_adapter_takes_numpy_arrays(clean_registry: Any) -> None:
    fitpipe.register_adapter(make_adapter("test-numpy-override", np.ndarray, 3.0), priority=500)
    pipeline = fitpipe.adapt(np.ones((2, 1)))
    assert pipeline.adapter == "test-numpy-override"
    assert epoch_batches(pipeline)[0][0].ravel().tolist() == [3.0, 3.0]


def test_dispatch_follows_every_registration_and_removal(clean_registry: Any) -> None:
    """The dispatch order is kept between lookups, and rebuilt by each change."""
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "numpy"
    fitpipe.register_adapter(make_adapter("test-over-numpy", np.ndarray, 3.0), priority=500)
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "test-over-numpy"
    fitpipe.register_adapter(make_adapter("test-over-that", np.ndarray, 5.0), priority=600)
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "test-over-that"
    assert list(registry)[:2] == ["test-over-that", "test-over-numpy"]
    registry.unregister("test-over-that")
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "test-over-numpy"
    fitpipe.register_adapter(
        make_adapter("test-over-that", np.ndarray, 7.0), priority=100, replace=True
    )
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "test-over-numpy"
    registry.unregister("test-over-numpy")
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "test-over-that"


def test_lazy_adapters_decline_by_the_type_s_library_and_remember_it() -> None:
    """A lazy adapter asks each type once whether it is of its library, subclasses included."""
    from fitpipe.adapters.registry import LazyAdapter

    lazy = LazyAdapter("test-lazy", "json:JSONDecoder", ("fake_lib",), "x", frozenset(), "-")
    native = type("Frame", (), {"__module__": "fake_lib.frame"})
    derived = type("Mine", (native,), {"__module__": "user_code"})
    other = type("Other", (), {"__module__": "fake_library"})
    for _ in range(2):
        assert lazy._from_library(native())
        assert lazy._from_library(derived())
        assert not lazy._from_library(other())
        assert not lazy._from_library(np.ones(2))
    assert set(lazy._from_library.known) == {native, derived, other, np.ndarray}


def test_equal_priorities_dispatch_in_registration_order(clean_registry: Any) -> None:
    fitpipe.register_adapter(make_adapter("test-first", Box), priority=9)
    fitpipe.register_adapter(make_adapter("test-second", Box), priority=9)
    assert fitpipe.adapt(Box([[1.0]])).adapter == "test-first"


def test_unsupported_input_names_every_adapter_in_a_short_message() -> None:
    with pytest.raises(UnsupportedInputError) as info:
        fitpipe.adapt(object())
    # a ValueError too, as Keras' "Unrecognized data type" (code written against Keras
    # catches that)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    text = str(info.value)
    assert text.startswith("`adapt` found no adapter for the input `x` of type object.")
    assert "Received: x=" in text
    for name in registry:
        assert repr(name) in text
    # Was ~950 with every adapter's `accepts` in full; the names alone grow with the
    # adapters installed (the example package adds one), so they are not counted.
    names = sum(len(repr(name)) + 2 for name in registry)
    assert len(text) - names < 420


class LazyFrame:
    """Stands in for a Polars LazyFrame (matched by module root and class name)."""


LazyFrame.__module__ = "polars.lazyframe.frame"


class DuckDBPyRelation:
    """Stands in for a DuckDB relation of a version without the Arrow C stream."""


DuckDBPyRelation.__module__ = "duckdb"


class Tensor:
    """Stands in for a PyTorch tensor."""


Tensor.__module__ = "torch"


def _batches() -> Any:
    """A generator function: what a user passes when forgetting to call it."""
    yield np.ones((2, 1)), np.ones((2, 1))


@pytest.mark.parametrize(
    ("x", "problem", "fix"),
    [
        ("digitz/", "no such file or folder 'digitz/'", "Check the path"),
        (Path("no/such/folder"), "no such file or folder 'no/such/folder'", "Check the path"),
        (LazyFrame(), "a Polars LazyFrame is a query plan", r"pass `x\.collect\(\)`"),
        (DuckDBPyRelation(), "this DuckDB relation does not export Arrow", r"pass `x\.arrow\(\)`"),
        (Tensor(), "a PyTorch tensor", r"x\.detach\(\)\.cpu\(\)\.numpy\(\)"),
        (_batches, "_batches is a generator function, not a generator", r"Call it: pass `x\(\)`"),
    ],
    ids=[
        "missing-folder",
        "missing-pathlike",
        "polars-lazy",
        "duckdb-relation",
        "torch",
        "generator-function",
    ],
)
def test_common_unsupported_inputs_get_a_short_specific_hint(x, problem, fix) -> None:
    with pytest.raises(UnsupportedInputError) as info:
        fitpipe.adapt(x)
    text = str(info.value)
    assert text.startswith(f"`adapt` found no adapter for the input `x`: {problem}")
    assert re.search(fix, text)
    assert "registered adapters" not in text and len(text) < 400


def test_real_polars_lazyframe_gets_the_collect_hint() -> None:
    pl = pytest.importorskip("polars")
    with pytest.raises(UnsupportedInputError, match=r"LazyFrame is a query plan.*collect"):
        fitpipe.adapt(pl.LazyFrame({"a": [1.0]}), schema={"features": "a"})


@pytest.mark.parametrize("path", ["nope.parquet", "nope/*.parquet"])
def test_parquet_looking_path_that_does_not_exist_says_so_before_asking_for_a_schema(
    path,
) -> None:
    with pytest.raises(
        ValueError, match=r"cannot find the Parquet source 'nope.*': no (such|file)"
    ):
        fitpipe.adapt(path)


@pytest.mark.parametrize("name", ["nope.parquet", "nope/*.parquet", "missing/", "nope.csv"])
@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_a_missing_path_is_told_where_it_was_looked_for(
    name: str, absolute: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path is told the working directory it starts at; an absolute one the
    deepest folder of it that exists (the working directory says nothing about it)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    path = str(tmp_path / "here" / "deeper" / name) if absolute else name
    with pytest.raises((ValueError, TypeError)) as info:  # TypeError: no adapter reads it
        fitpipe.adapt(path)
    text = str(info.value)
    where = "the deepest folder of it that exists is" if absolute else "relative path starts"
    assert "Check the path" in text and where in text, text
    assert repr(str(tmp_path / "here") if absolute else str(tmp_path)) in text, text
    assert ("working directory" in text) is not absolute, text


# Entry points ------------------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, loader: Any) -> None:
        self.name = name
        self.value = f"fake.module:{name}"
        self._loader = loader

    def load(self) -> Any:
        return self._loader()


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, points: list[Any]) -> list[str]:
    """Replaces ``importlib.metadata.entry_points``; returns the groups asked for."""
    asked: list[str] = []

    def entry_points(*, group: str) -> list[Any]:
        asked.append(group)
        return points if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    return asked


def test_entry_points_load_on_first_lookup_without_a_match(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    class PluginAdapter(BoxAdapter):
        name = "test-plugin"

    asked = fake_entry_points(monkeypatch, [FakeEntryPoint("test-plugin", lambda: PluginAdapter)])
    fitpipe.adapt(np.ones((2, 1)))  # a built-in match: no entry-point scan
    assert asked == []
    assert "test-plugin" not in registry
    pipeline = fitpipe.adapt(Box([[1.0], [2.0]]))
    assert asked == [ENTRY_POINT_GROUP]
    assert pipeline.adapter == "test-plugin"
    fitpipe.adapt(Box([[1.0]]))
    with pytest.raises(UnsupportedInputError):
        fitpipe.adapt(object())
    assert asked == [ENTRY_POINT_GROUP]  # scanned once only


def test_entry_point_priority_attribute_is_used(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    plugin = make_adapter("test-plugin-priority", Box)
    plugin.priority = 42
    fake_entry_points(monkeypatch, [FakeEntryPoint("test-plugin-priority", lambda: plugin)])
    fitpipe.adapt(Box([[1.0]]))
    assert registry.priority("test-plugin-priority") == 42


def test_broken_entry_point_warns_and_is_skipped(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    def broken() -> Any:
        raise ImportError("no such plug-in module")

    class GoodAdapter(BoxAdapter):
        name = "test-good-plugin"

    fake_entry_points(
        monkeypatch,
        [FakeEntryPoint("test-broken", broken), FakeEntryPoint("test-good", lambda: GoodAdapter)],
    )
    with pytest.warns(FitpipeWarning, match="test-broken"):
        pipeline = fitpipe.adapt(Box([[1.0]]))
    assert pipeline.adapter == "test-good-plugin"
    assert "test-broken" not in registry


def test_an_entry_point_named_like_a_built_in_registers_its_adapter_under_its_own_name(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    """The entry point's name is a label: ``numpy = pkg:BoxAdapter`` registers 'test-box'."""
    fake_entry_points(monkeypatch, [FakeEntryPoint("numpy", lambda: BoxAdapter)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline = fitpipe.adapt(Box([[1.0], [2.0]]))
    assert pipeline.adapter == "test-box" and "test-box" in registry
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "numpy"


def test_an_entry_point_whose_adapter_takes_a_built_in_s_name_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    taker = make_adapter("numpy", Box)
    fake_entry_points(monkeypatch, [FakeEntryPoint("test-taker", lambda: taker)])
    expected = (
        r"could not load the adapter entry point 'test-taker' .*cannot register a second "
        r"adapter named 'numpy'.*built-in adapters cannot be replaced.*It is skipped"
    )
    with pytest.warns(PluginWarning, match=expected):
        with pytest.raises(UnsupportedInputError):
            fitpipe.adapt(Box([[1.0]]))
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "numpy"


def test_an_entry_point_of_an_adapter_registered_on_import_is_not_registered_again(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    fitpipe.register_adapter(BoxAdapter)
    fake_entry_points(monkeypatch, [FakeEntryPoint("box", lambda: BoxAdapter)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.load_entry_points()
    assert fitpipe.adapt(Box([[1.0]])).adapter == "test-box"


def test_entry_point_from_an_installed_distribution(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    module = tmp_path / "fitpipe_test_plugin_mod.py"
    module.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from fitpipe.adapters import ArraySource

            class Token:
                def __init__(self, n):
                    self.n = n

            class TokenAdapter:
                name = "test-token"
                accepts = "a test Token"
                supports = frozenset()

                def can_adapt(self, x):
                    return type(x).__name__ == "Token"

                def adapt(self, request):
                    values = np.arange(request.x.n, dtype="float32")[:, None]
                    return ArraySource(values, None, None, request.x.n)
            """
        )
    )
    dist = tmp_path / "fitpipe_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fitpipe-test-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntest-token = fitpipe_test_plugin_mod:TokenAdapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.delitem(__import__("sys").modules, "fitpipe_test_plugin_mod", raising=False)
    import fitpipe_test_plugin_mod

    pipeline = fitpipe.adapt(fitpipe_test_plugin_mod.Token(3))
    assert pipeline.adapter == "test-token"
    assert epoch_batches(pipeline)[0][0].ravel().tolist() == [0.0, 1.0, 2.0]


def test_fresh_registry_scans_its_own_group(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def entry_points(*, group: str) -> list[Any]:
        asked.append(group)
        return [FakeEntryPoint("test-own-group", lambda: BoxAdapter)]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    own = AdapterRegistry("my.group")
    assert len(own) == 0
    assert own.find(Box([[1.0]])).name == "test-box"
    assert asked == ["my.group"]
    assert "test-box" not in registry


def test_an_entry_point_with_a_bad_priority_is_warned_about_and_skipped(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    """A plug-in's ``priority`` attribute is checked as any priority, not converted."""
    plugin = make_adapter("test-plugin-text-priority", Box)
    plugin.priority = "50"
    fake_entry_points(monkeypatch, [FakeEntryPoint("test-text-priority", lambda: plugin)])
    with pytest.warns(PluginWarning, match=r"'test-text-priority'.*invalid `priority`"):
        with pytest.raises(UnsupportedInputError):
            fitpipe.adapt(Box([[1.0]]))
    assert "test-plugin-text-priority" not in registry
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "numpy"


def test_a_faulty_plugin_is_warned_about_once_per_lookup(
    monkeypatch: pytest.MonkeyPatch, clean_registry: Any
) -> None:
    """Not again when the lookup asks the adapters a second time, after the entry points."""
    faulty = make_adapter("test-faulty", Box)
    faulty.can_adapt = lambda x: 1 / 0
    fitpipe.register_adapter(faulty)
    fake_entry_points(monkeypatch, [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UnsupportedInputError):
            fitpipe.adapt(Box([[1.0]]))
    assert [str(w.message).count("'test-faulty'") for w in caught] == [1]


@pytest.fixture
def missing_backend(monkeypatch: pytest.MonkeyPatch) -> type:
    """A library's type, whose lazy adapter's module (``fitpipe_test_no_backend``) is missing."""
    module = types.ModuleType("test_lazy_lib")
    exec("class Thing: pass", module.__dict__)
    monkeypatch.setitem(sys.modules, "test_lazy_lib", module)
    return module.Thing  # type: ignore[no-any-return]


def _lazy(name: str, target: str = "fitpipe_test_no_backend.adapter:ThingAdapter") -> Any:
    return LazyAdapter(
        name, target, ("test_lazy_lib",), "a test_lazy_lib.Thing", frozenset(), "pip install it"
    )


@pytest.mark.parametrize("builtin", [False, True])
@pytest.mark.parametrize("caller", ["fit", "predict"])
def test_a_lazy_adapter_whose_module_is_missing_tells_what_to_install(
    builtin: bool, caller: str, missing_backend: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Third-party and built-in alike, worded for the caller, with no plug-in warning."""
    own = AdapterRegistry("test.no.group")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda *, group: [])
    own.register(_lazy("test-lazy-missing"), priority=10, builtin=builtin)
    expected = (
        rf"^`{caller}` cannot load the 'test-lazy-missing' adapter for a test_lazy_lib\.Thing\. "
        r"The adapter needs a package that failed to import \(No module named "
        r"'fitpipe_test_no_backend'\)\. Install it: pip install it\.$"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        with pytest.raises(UnsupportedInputError, match=expected):
            own.find(missing_backend(), caller)
        with pytest.raises(UnsupportedInputError, match="found no adapter"):
            own.find(np.ones(2), caller)  # another library's input: declined, nothing imported


def test_a_lazy_plugin_whose_adapter_fails_to_build_is_skipped_with_a_warning(
    missing_backend: type, clean_registry: Any
) -> None:
    fitpipe.register_adapter(_lazy("test-lazy-broken", "fractions:Fraction.nope"), priority=10)
    with pytest.warns(PluginWarning, match=r"'test-lazy-broken' \(LazyAdapter of fractions:"):
        with pytest.raises(UnsupportedInputError, match="found no adapter"):
            fitpipe.adapt(missing_backend())
    assert fitpipe.adapt(np.ones((2, 1))).adapter == "numpy"


def test_a_lazy_adapter_subclass_with_its_own_can_adapt_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lookup decides for a plain LazyAdapter by its library; a subclass's own
    ``can_adapt`` (here: any str ending in ``.thing``) is asked like any adapter's."""

    class Things(LazyAdapter):
        def can_adapt(self, x: Any) -> bool:
            return isinstance(x, str) and x.endswith(".thing")

        def adapt(self, request: Any) -> Any:
            raise RuntimeError("taken by the subclass")

    own = AdapterRegistry("test.no.group")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda *, group: [])
    lazy = Things("test-things", "json:JSONDecoder", ("no_lib",), "things", frozenset(), "-")
    own.register(lazy, priority=10)
    assert own.find("data.thing", "fit") is lazy
    with pytest.raises(UnsupportedInputError, match="found no adapter"):
        own.find("data.other", "fit")
