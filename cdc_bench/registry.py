"""The codec registry: built-in and third-party codecs, found through Python entry points.

A third party adds a codec without touching this repository by declaring, in its own ``pyproject.toml``::

    [project.entry-points."cdc_bench.codecs"]
    mycodec = "my_package.module:MyCodec"

The entry point names a :class:`~cdc_bench.codec.Codec` subclass, or a *family*: an object with
``variants() -> list[str]`` and ``codec_for(variant) -> type[Codec]``, reached as ``family:variant``
(``compressai:mbt2018-mean``). Entry points are loaded lazily, so a codec whose dependencies are missing
still shows up in ``cdc-bench codecs`` with the import error as its reason.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

from .codec import Availability, Codec

ENTRY_POINT_GROUP = "cdc_bench.codecs"


class UnknownNameError(KeyError):
    """An unknown codec (or dataset, metric...) name; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        self.message = f"unknown {kind} {name!r}.{hint} Valid names: {', '.join(valid)}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class CodecEntry:
    name: str
    loader: Callable[[], Any]
    source: str

    def load(self) -> Any:
        return self.loader()


_explicit: dict[str, CodecEntry] = {}


def register(cls: type[Codec] | None = None, *, name: str | None = None):
    """Register a codec class in this process (a decorator). Entry points are the way for installed packages."""

    def deco(c: type[Codec]) -> type[Codec]:
        key = name or c.name
        _explicit[key] = CodecEntry(key, lambda: c, f"{c.__module__}:{c.__qualname__}")
        return c

    return deco(cls) if cls is not None else deco


def unregister(name: str) -> None:
    _explicit.pop(name, None)


def _entries() -> dict[str, CodecEntry]:
    found: dict[str, CodecEntry] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, CodecEntry(ep.name, ep.load, ep.value))
    found.update(_explicit)
    return found


def _is_family(obj: Any) -> bool:
    return hasattr(obj, "codec_for") and hasattr(obj, "variants")


def codec_names(expand_families: bool = True) -> list[str]:
    """Every registered codec name; families are expanded to ``family:variant`` when they load."""
    names = []
    for name, entry in sorted(_entries().items()):
        if expand_families:
            try:
                obj = entry.load()
            except Exception:  # noqa: BLE001 - a broken plug-in is reported by describe_codecs
                names.append(name)
                continue
            if _is_family(obj):
                names.extend(f"{name}:{v}" for v in obj.variants())
                continue
        names.append(name)
    return names


def get_codec_class(name: str) -> type[Codec]:
    """The codec class for ``name`` (``jpeg`` or ``family:variant``). Raises :class:`UnknownNameError`."""
    entries = _entries()
    base, _, variant = name.partition(":")
    entry = entries.get(name) or entries.get(base)
    if entry is None:
        raise UnknownNameError("codec", name, codec_names())
    obj = entry.load()
    if _is_family(obj):
        if not variant:
            raise UnknownNameError("codec", name, [f"{base}:{v}" for v in obj.variants()])
        if variant not in obj.variants():
            raise UnknownNameError("codec", name, [f"{base}:{v}" for v in obj.variants()])
        return obj.codec_for(variant)
    if variant:
        raise UnknownNameError("codec", name, codec_names())
    return obj


def create_codec(name: str, options: dict[str, Any] | None = None, device: str = "cpu") -> Codec:
    """Instantiate a codec by name with options (values may be strings from the command line)."""
    return get_codec_class(name)(options, device=device)


@dataclass
class CodecInfo:
    name: str
    source: str
    description: str = ""
    rate_label: str = ""
    rate_points: tuple = ()
    settings: dict | None = None
    details: str = ""
    availability: Availability = Availability(True)


def describe_codecs() -> list[CodecInfo]:
    """Everything ``cdc-bench codecs`` shows: each codec, its rate points, settings, and availability."""
    infos = []
    for name, entry in sorted(_entries().items()):
        try:
            obj = entry.load()
        except Exception as err:  # noqa: BLE001 - show, don't crash
            infos.append(CodecInfo(name, entry.source, availability=Availability(
                False, f"cannot import {entry.source}: {type(err).__name__}: {err}",
                "install the package that provides it (see README)")))
            continue
        classes = [(f"{name}:{v}", obj.codec_for(v)) for v in obj.variants()] if _is_family(obj) else [(name, obj)]
        for full, cls in classes:
            try:
                avail = cls.availability()
            except Exception as err:  # noqa: BLE001
                avail = Availability(False, f"availability check failed: {err}")
            infos.append(CodecInfo(full, entry.source, cls.description, cls.rate_label, tuple(cls.rate_points),
                                   dict(cls.settings), cls.details, avail))
    return infos
