"""The codec registry: built-in and third-party codecs, found through Python entry points.

A third party adds a codec without touching this repository by declaring, in its own ``pyproject.toml``::

    [project.entry-points."cdc_bench.codecs"]
    mycodec = "my_package.module:MyCodec"

The entry point names a :class:`~cdc_bench.codecs.base.Codec` subclass, or a *family*: an object with
``variants() -> list[str]`` and ``codec_for(variant) -> type[Codec]``, reached as ``family:variant``
(``compressai:mbt2018-mean``). Entry points are loaded lazily, so a codec whose dependencies are missing
still shows up in ``cdc-bench codecs`` with the import error as its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Availability, Codec, Option
from ..errors import UnknownNameError
from ..registry import Registry

ENTRY_POINT_GROUP = "cdc_bench.codecs"
CODECS: Registry[Any] = Registry("codec", ENTRY_POINT_GROUP)
register = CODECS.register
unregister = CODECS.unregister


def _is_family(obj: Any) -> bool:
    return hasattr(obj, "codec_for") and hasattr(obj, "variants")


def codec_names(expand_families: bool = True) -> list[str]:
    """Every registered codec name; families are expanded to ``family:variant`` when they load."""
    names = []
    for name, entry in sorted(CODECS.entries().items()):
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
    base, _, variant = name.partition(":")
    if name not in CODECS and base not in CODECS:
        raise UnknownNameError("codec", name, codec_names())
    obj = CODECS.get(name if name in CODECS else base)
    if _is_family(obj):
        variants = list(obj.variants())
        if variant not in variants:
            raise UnknownNameError("codec", name, [f"{base}:{v}" for v in variants])
        return obj.codec_for(variant)
    if variant and name not in CODECS:
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
    option_specs: dict[str, Option] | None = None
    details: str = ""
    availability: Availability = Availability(True)
    display_name: str = ""     # what legends call it, where that differs from ``name``


def describe_codecs() -> list[CodecInfo]:
    """Everything ``cdc-bench codecs`` shows: each codec, its rate points, options, and availability."""
    infos = []
    for name, entry in sorted(CODECS.entries().items()):
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
            shown = cls.display_name if cls.display_name not in ("", cls.name, full) else ""
            infos.append(CodecInfo(full, entry.source, cls.description, cls.rate_label, tuple(cls.rate_points),
                                   dict(cls.option_specs), cls.details, avail, shown))
    return infos
