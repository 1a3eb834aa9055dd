"""The adapter registry: a read-only mapping of names to adapters, dispatched by priority.

Adapters are asked ``can_adapt(x)`` in priority order (highest first, then in order of
registration); the first that says yes takes the input. Optional adapters whose dependency may
be missing are registered lazily by dotted path and imported only when an input from their
library shows up. Third-party adapters come from the entry-point group ``fitpipe.adapters`` and
are loaded the first time no registered adapter takes an input.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, overload

from fitpipe.adapters.base import Adapter, AdaptRequest, supported
from fitpipe.adapters.capabilities import SourceBase
from fitpipe.adapters.hints import no_adapter_message
from fitpipe.adapters.kinds import of_library
from fitpipe.adapters.registration import check_priority, check_protocol, check_replace
from fitpipe.errors import (
    FitpipeValueError,
    PluginWarning,
    UnsupportedInputError,
    message,
    warn,
)

__all__ = ["ENTRY_POINT_GROUP", "AdapterRegistry", "LazyAdapter", "register_adapter", "registry"]

ENTRY_POINT_GROUP = "fitpipe.adapters"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Entry:
    adapter: Adapter
    priority: float
    order: int
    builtin: bool


class LazyAdapter:
    """An adapter imported by dotted path the first time an input from its library shows up.

    Args:
        name: The registered name.
        target: ``"package.module:ClassName"`` of the real adapter (constructed without
            arguments).
        modules: Top-level module names whose objects this adapter may take, e.g.
            ``("pandas",)``; objects of other libraries are declined without importing.
        accepts: What the adapter takes, in words.
        supports: The optional arguments it honours.
        install_hint: What to install when importing the target fails.

    """

    def __init__(
        self,
        name: str,
        target: str,
        modules: tuple[str, ...],
        accepts: str,
        supports: frozenset[str],
        install_hint: str,
    ) -> None:
        self.name = name
        self.target = target
        self.modules = modules
        self.accepts = accepts
        self.supports = supports
        self.install_hint = install_hint
        self._loaded: Adapter | None = None
        # Whether a type belongs to one of ``modules``, by type: every input is asked about
        # at each dispatch (each ``*_on_batch`` call), and its type's MRO does not change.
        self._from_library = of_library(modules)

    def load(self, caller: str = "adapt") -> Adapter:
        """Imports and builds the real adapter.

        Args:
            caller: The public method being run, for the error message.

        Returns:
            The adapter.

        Raises:
            UnsupportedInputError: When its module cannot be imported.

        """
        if self._loaded is None:
            module_name, _, attr = self.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as err:
                raise UnsupportedInputError(
                    message(
                        caller,
                        f"cannot load the {self.name!r} adapter for {self.accepts}",
                        f"The adapter needs a package that failed to import ({err})",
                        f"Install it: {self.install_hint}",
                    )
                ) from err
            self._loaded = getattr(module, attr)()
        return self._loaded

    def can_adapt(self, x: Any) -> bool:
        """Declines objects of other libraries without importing anything."""
        return self._from_library(x) and self.load().can_adapt(x)

    def supports_for(self, request: AdaptRequest) -> frozenset[str]:
        """The real adapter's arguments for ``request`` (see :func:`.supported`)."""
        return supported(self.load(request.caller), request)

    def adapt(self, request: AdaptRequest) -> SourceBase:
        """Delegates to the real adapter."""
        return self.load(request.caller).adapt(request)


class AdapterRegistry(Mapping[str, Adapter]):
    """A read-only mapping from adapter names to adapters; change it only with :meth:`register`.

    Args:
        entry_point_group: The entry-point group scanned for third-party adapters.

    """

    def __init__(self, entry_point_group: str = ENTRY_POINT_GROUP) -> None:
        self._entries: dict[str, _Entry] = {}
        #: The dispatch order, until a change (reset under ``_lock`` with the change).
        self._sorted: list[_Entry] | None = None
        self._order = 0
        self._lock = threading.RLock()
        self._entry_point_group = entry_point_group
        self._entry_points_loaded = False

    # Mapping interface -------------------------------------------------------------------
    def __getitem__(self, name: str) -> Adapter:
        return self._entries[name].adapter

    def __iter__(self) -> Iterator[str]:
        return iter(entry.adapter.name for entry in self._ordered())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"AdapterRegistry({list(self)})"

    def priority(self, name: str) -> float:
        """Returns the priority ``name`` was registered with.

        Args:
            name: A registered adapter's name.
        """
        return self._entries[name].priority

    def _ordered(self) -> list[_Entry]:
        ordered = self._sorted
        if ordered is None:
            with self._lock:  # sorted and kept while no registration changes the entries
                ordered = sorted(self._entries.values(), key=lambda e: (-e.priority, e.order))
                self._sorted = ordered
        return ordered

    # Registration ------------------------------------------------------------------------
    def register(
        self,
        adapter: Adapter | type,
        *,
        priority: float = 0,
        replace: bool = False,
        builtin: bool = False,
    ) -> Adapter:
        """Registers an adapter (an instance, or a class built without arguments).

        Args:
            adapter: The adapter or its class.
            priority: Higher priorities are asked first.
            replace: Replace a registered third-party adapter of the same name.
            builtin: Marks fitpipe's own adapters, which can never be replaced.

        Returns:
            The registered adapter instance.

        Raises:
            FitpipeValueError: On a duplicate name without ``replace=True``, or any attempt to
                replace a built-in adapter.
            FitpipeTypeError: When ``adapter`` does not provide the adapter protocol (members of
                the right types), or ``priority`` is not a real number (see
                :mod:`fitpipe.adapters.registration`).

        """
        instance = adapter() if isinstance(adapter, type) else adapter
        check_protocol(instance)
        check_priority(priority, instance.name)
        check_replace(replace)
        with self._lock:
            current = self._entries.get(instance.name)
            if current is not None and (current.builtin or not replace):
                reason = (
                    "built-in adapters cannot be replaced"
                    if current.builtin
                    else "names must be unique"
                )
                fix = (
                    "Register under another name"
                    if current.builtin
                    else "Pass `replace=True` to replace it, or register under another name"
                )
                raise FitpipeValueError(
                    message(
                        "register_adapter",
                        f"cannot register a second adapter named {instance.name!r}",
                        f"An adapter of that name is already registered and {reason}",
                        fix,
                        name=instance.name,
                    )
                )
            self._order += 1
            self._entries[instance.name] = _Entry(instance, priority, self._order, builtin)
            self._sorted = None
        return instance

    def unregister(self, name: str) -> None:
        """Removes a third-party adapter (built-in adapters cannot be removed).

        Args:
            name: The adapter's registered name.
        """
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise KeyError(name)
            if entry.builtin:
                raise FitpipeValueError(
                    message(
                        "unregister",
                        f"cannot remove the built-in adapter {name!r}",
                        "Built-in adapters stay registered",
                        "Register an adapter of higher priority to take its inputs",
                        name=name,
                    )
                )
            del self._entries[name]
            self._sorted = None

    # Dispatch ----------------------------------------------------------------------------
    def find(self, x: Any, caller: str = "adapt") -> Adapter:
        """Returns the adapter of highest priority whose ``can_adapt(x)`` is true.

        Third-party entry points are loaded on the first lookup that finds no match.

        Args:
            x: The input.
            caller: The public method being run, for the error message.

        Raises:
            UnsupportedInputError: When no adapter takes ``x``; the message is short, with a
                hint for common inputs (see :mod:`fitpipe.adapters.hints`).

        """
        failed: set[int] = set()  # ids of plug-ins that raised (warned once, not asked again)
        found = self._first_match(x, caller, failed)
        if found is None and not self._entry_points_loaded:
            self.load_entry_points()
            found = self._first_match(x, caller, failed)
        if found is None:
            raise UnsupportedInputError(self._no_adapter_message(x, caller))
        return found

    def _first_match(self, x: Any, caller: str, failed: set[int]) -> Adapter | None:
        """The first adapter, by priority, that takes ``x``.

        A lazy adapter (built-in or third-party alike) declines inputs of other libraries
        itself; one of its library's inputs is its own, so a failure to import it raises its
        install hint instead of letting the input fall through to "no adapter". Third-party
        code (a plug-in's ``can_adapt``, a lazy plug-in's loaded adapter's) that raises is
        warned about and skipped, once per lookup (``failed``).
        """
        for entry in self._ordered():
            adapter = entry.adapter
            if id(adapter) in failed:
                continue
            owner = adapter
            if isinstance(adapter, LazyAdapter) and _own_lookup(adapter):
                if not adapter._from_library(x):
                    continue
                loaded = (
                    adapter.load(caller) if entry.builtin else _load_plugin(adapter, caller, failed)
                )
                if loaded is None:
                    continue
                adapter = loaded
            if entry.builtin:
                if adapter.can_adapt(x):
                    return owner
            elif _plugin_takes(adapter, x, owner, failed):
                return owner
        return None

    def _no_adapter_message(self, x: Any, caller: str) -> str:
        return no_adapter_message(x, caller, [e.adapter.name for e in self._ordered()])

    def load_entry_points(self) -> None:
        """Loads and registers adapters advertised in the entry-point group (once).

        An entry point's name is only its label (shown in warnings): the adapter is
        registered under its own ``name``. One already registered (its module registers it
        on import) is not registered again; one whose ``name`` another adapter holds (a
        built-in's, say) is skipped with a :class:`~fitpipe.errors.PluginWarning`.
        """
        with self._lock:
            if self._entry_points_loaded:
                return
            self._entry_points_loaded = True
            for point in importlib.metadata.entry_points(group=self._entry_point_group):
                try:
                    loaded = point.load()
                    instance = loaded() if isinstance(loaded, type) else loaded
                    if self._holds(instance):
                        continue
                    # Checked by ``register`` as any priority (a bad one: warned and skipped).
                    self.register(instance, priority=getattr(instance, "priority", 0))
                except Exception as err:  # a broken plug-in must not break other inputs
                    warn(
                        f"fitpipe could not load the adapter entry point {point.name!r} "
                        f"({point.value}): {err!r}. It is skipped.",
                        PluginWarning,
                    )

    def _holds(self, adapter: Any) -> bool:
        """Whether ``adapter`` (or another of its class, not a built-in) is registered."""
        name = getattr(adapter, "name", None)
        current = self._entries.get(name) if isinstance(name, str) else None
        if current is None:
            return False
        same_class = not current.builtin and type(current.adapter) is type(adapter)
        return current.adapter is adapter or same_class


def _own_lookup(lazy: LazyAdapter) -> bool:
    """Whether the lookup decides for ``lazy`` by its library.

    A subclass's own ``can_adapt`` is asked like any adapter's instead.
    """
    return type(lazy).can_adapt is LazyAdapter.can_adapt


def _load_plugin(lazy: LazyAdapter, caller: str, failed: set[int]) -> Adapter | None:
    """Loads a third-party lazy adapter; None when it fails and is skipped.

    Its install hint (the ``UnsupportedInputError`` of a failed import) is raised, as a
    built-in's is; any other failure (its class raising when built) is warned about.
    """
    try:
        return lazy.load(caller)
    except UnsupportedInputError:
        raise
    except Exception as err:
        _skip_plugin(lazy, f"LazyAdapter of {lazy.target}", f"it failed to load: {err!r}", failed)
        return None


def _plugin_takes(adapter: Adapter, x: Any, owner: Adapter, failed: set[int]) -> bool:
    """Asks a third-party adapter's ``can_adapt``; one that raises is skipped with a warning.

    A faulty plug-in must not break inputs other adapters take (plain NumPy included), as a
    plug-in that fails to load does not. ``KeyboardInterrupt`` and ``SystemExit`` pass through.
    """
    try:
        return bool(adapter.can_adapt(x))
    except Exception as err:
        problem = f"its `can_adapt` raised {err!r} on an input of type {type(x).__name__}"
        _skip_plugin(owner, type(adapter).__qualname__, problem, failed)
        return False


def _skip_plugin(owner: Adapter, kind: str, problem: str, failed: set[int]) -> None:
    """Marks a faulty third-party adapter skipped for this dispatch, with a warning."""
    failed.add(id(owner))
    warn(
        f"fitpipe skipped the adapter {owner.name!r} ({kind}): {problem}. Fix the plug-in, "
        "or unregister it with `fitpipe.registry.unregister(name)`.",
        PluginWarning,
    )


registry = AdapterRegistry()


@overload
def register_adapter(adapter: T, *, priority: float = 0, replace: bool = False) -> T: ...


@overload
def register_adapter(
    adapter: None = None, *, priority: float = 0, replace: bool = False
) -> Callable[[T], T]: ...


def register_adapter(adapter: Any = None, *, priority: float = 0, replace: bool = False) -> Any:
    """Registers an adapter in :data:`registry`; use it as a call or as a class decorator.

    Examples::

        @fitpipe.register_adapter(priority=50)
        class MyAdapter: ...

        fitpipe.register_adapter(MyAdapter(), priority=50)

    Args:
        adapter: An adapter instance or class; omit it to get a decorator.
        priority: Higher priorities are asked first; built-ins use 0 to 100.
        replace: Replace a third-party adapter registered under the same name.

    Returns:
        What was given (so the decorated class stays a class), or a decorator.

    """
    if adapter is None:

        def decorator(target: T) -> T:
            registry.register(target, priority=priority, replace=replace)  # type: ignore[arg-type]
            return target

        return decorator
    registry.register(adapter, priority=priority, replace=replace)
    return adapter
