"""Parsing ``-o CODEC.KEY=VALUE`` options and ``--qualities`` into per-codec plans."""

from __future__ import annotations

from typing import Any, Iterable

from .codec import CodecError, parse_rate_points
from .registry import get_codec_class
from .runner import CodecPlan

RATE_OPTION = "qualities"


def parse_option_args(args: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["jpeg.subsampling=444", "cdc.checkpoint=a.b.pt"]`` -> ``{"jpeg": {"subsampling": "444"}, ...}``.

    The codec is everything before the first ``.`` (codec names have none), the key runs to the first ``=``.
    """
    parsed: dict[str, dict[str, str]] = {}
    for arg in args:
        left, eq, value = arg.partition("=")
        codec, dot, key = left.partition(".")
        if not eq or not dot or not codec or not key:
            raise CodecError(f"option {arg!r} is not of the form CODEC.KEY=VALUE (e.g. jpeg.subsampling=444)")
        parsed.setdefault(codec.strip(), {})[key.strip()] = value.strip()
    return parsed


def options_for(codec: str, parsed: dict[str, dict[str, str]]) -> dict[str, str]:
    """Options that apply to ``codec``: those given for its family (``compressai``) then for itself."""
    family = codec.partition(":")[0]
    merged = dict(parsed.get(family, {})) if family != codec else {}
    merged.update(parsed.get(codec, {}))
    return merged


def build_plans(codec_names: list[str], option_args: Iterable[str], qualities: str | None) -> list[CodecPlan]:
    """Validate codec names and options (raising UnknownNameError / CodecError) and fix the rate points."""
    parsed = parse_option_args(option_args)
    families = {c.partition(":")[0] for c in codec_names}
    stray = sorted(set(parsed) - set(codec_names) - families)
    if stray:
        raise CodecError(f"options given for {', '.join(stray)}, which is not among --codecs {','.join(codec_names)}")
    plans = []
    for name in codec_names:
        cls = get_codec_class(name)
        opts = options_for(name, parsed)
        rates_text = opts.pop(RATE_OPTION, None) or qualities
        instance = cls(opts)  # validates keys and values now, before any work starts
        # The instance's rate points: an option may fix them (CDC with a local checkpoint has one).
        defaults = list(instance.rate_points)
        try:
            rates = parse_rate_points(rates_text, defaults) if rates_text else defaults
        except ValueError as err:
            raise CodecError(f"rate points for {name}: {err}") from None
        if not rates:
            raise CodecError(f"codec {name} has no default rate points; give them with -o {name}.qualities=...")
        # every option with its value, so each result records the full configuration
        plans.append(CodecPlan(name, dict(instance.options), rates))
    return plans

