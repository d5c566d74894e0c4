"""One registry class for everything that is found by name: codecs, metrics, datasets, weight files.

As in pyiqa: decorator registration, aliases, lazy registration by import path (so listing names imports nothing
heavy), plug-ins from Python entry points loaded once, and "did you mean ...?" on unknown names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Iterable, TypeVar

from .errors import UnknownNameError  # noqa: F401 - re-exported: the error every registry raises

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered name: how to load its object, and where it comes from (for listings and errors)."""

    name: str
    source: str
    loader: Callable[[], T]
    aliases: tuple[str, ...] = ()
    _loaded: list = field(default_factory=list, repr=False)

    def load(self) -> T:
        if not self._loaded:
            self._loaded.append(self.loader())
        return self._loaded[0]


def import_target(target: str) -> Any:
    """``"package.module:attr"`` -> the object (``"package.module"`` -> the module)."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names -> objects of one kind. Explicit registrations win over entry points of the same name."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._explicit: dict[str, Entry[T]] = {}
        self._plugins: dict[str, Entry[T]] = {}

    # -- registration -------------------------------------------------------------------------------------
    def register(self, obj: T | None = None, *, name: str | None = None, aliases: Iterable[str] = ()):
        """Register ``obj`` under ``name`` (default ``obj.name``); usable as ``@registry.register`` or a call."""

        def add(target: T) -> T:
            key = name or getattr(target, "name", None)
            if not key:
                raise ValueError(f"a {self.kind} needs a name to be registered: {target!r}")
            source = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', key)}"
            self._explicit[key] = Entry(key, source, lambda: target, tuple(aliases))
            return target

        return add(obj) if obj is not None else add

    def register_lazy(self, name: str, target: str, aliases: Iterable[str] = ()) -> None:
        """Register ``"package.module:attr"``, imported the first time the name is used."""
        self._explicit[name] = Entry(name, target, lambda: import_target(target), tuple(aliases))

    def unregister(self, name: str) -> None:
        self._explicit.pop(name, None)

    # -- look-up ------------------------------------------------------------------------------------------
    def entries(self) -> dict[str, Entry[T]]:
        """Every entry by name, entry points first and explicit registrations over them.

        Entry points are listed afresh each time (a package installed meanwhile shows up); an entry point
        already loaded keeps its loaded object.
        """
        plugins: dict[str, Entry[T]] = {}
        if self.entry_point_group:
            for ep in metadata.entry_points(group=self.entry_point_group):
                known = self._plugins.get(ep.name)
                plugins.setdefault(ep.name, known if known and known.source == ep.value
                                   else Entry(ep.name, ep.value, ep.load))
        self._plugins = plugins
        return {**plugins, **self._explicit}

    def names(self) -> list[str]:
        return sorted(self.entries())

    def resolve(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; :class:`UnknownNameError` otherwise."""
        entries = self.entries()
        if name in entries:
            return name
        for entry in entries.values():
            if name in entry.aliases:
                return entry.name
        raise UnknownNameError(self.kind, name, sorted(entries))

    def get(self, name: str) -> T:
        return self.entries()[self.resolve(name)].load()

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
        except UnknownNameError:
            return False
        return True
