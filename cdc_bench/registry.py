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
    """Names -> objects of one kind. Explicit registrations win over entry points of the same name.

    As in pyiqa's registry, entry points are listed once (:meth:`refresh` lists them again) and registering a
    name that is taken by something else raises, unless ``override=True``: a plug-in cannot silently replace a
    codec or metric.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._explicit: dict[str, Entry[T]] = {}
        self._plugins: dict[str, Entry[T]] | None = None

    # -- registration -------------------------------------------------------------------------------------
    def _add(self, entry: "Entry[T]", override: bool) -> None:
        taken = self._explicit.get(entry.name)
        if taken is not None and taken.source != entry.source and not override:
            raise ValueError(f"{self.kind} {entry.name!r} is registered already (by {taken.source}); "
                             f"pass override=True to replace it with {entry.source}")
        self._explicit[entry.name] = entry

    def register(self, obj: T | None = None, *, name: str | None = None, aliases: Iterable[str] = (),
                 override: bool = False):
        """Register ``obj`` under ``name`` (default ``obj.name``); usable as ``@registry.register`` or a call."""

        def add(target: T) -> T:
            key = name or getattr(target, "name", None)
            if not key:
                raise ValueError(f"a {self.kind} needs a name to be registered: {target!r}")
            source = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', key)}"
            self._add(Entry(key, source, lambda: target, tuple(aliases)), override)
            return target

        return add(obj) if obj is not None else add

    def register_lazy(self, name: str, target: str, aliases: Iterable[str] = (), override: bool = False) -> None:
        """Register ``"package.module:attr"``, imported the first time the name is used."""
        self._add(Entry(name, target, lambda: import_target(target), tuple(aliases)), override)

    def refresh(self) -> None:
        """List the entry points again (a package installed since the first look-up)."""
        self._plugins = None

    def unregister(self, name: str) -> None:
        self._explicit.pop(name, None)

    # -- look-up ------------------------------------------------------------------------------------------
    def entries(self) -> dict[str, Entry[T]]:
        """Every entry by name, entry points first and explicit registrations over them.

        Entry points are listed on the first look-up (:meth:`refresh` lists them again); two installed
        distributions that give one name different targets are an error naming both.
        """
        if self._plugins is None:
            plugins: dict[str, Entry[T]] = {}
            if self.entry_point_group:
                for ep in metadata.entry_points(group=self.entry_point_group):
                    known = plugins.get(ep.name)
                    if known is not None and known.source != ep.value:
                        raise ValueError(f"{self.kind} {ep.name!r} is declared by two installed packages "
                                         f"({known.source} and {ep.value}); uninstall one")
                    plugins.setdefault(ep.name, Entry(ep.name, ep.value, ep.load))
            self._plugins = plugins
        return {**self._plugins, **self._explicit}

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
