"""Parsing ``-o CODEC.KEY=VALUE`` options and ``--qualities`` into per-codec plans, validated before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .registry import get_codec_class
from ..errors import CodecConfigError

RATE_OPTION = "qualities"


@dataclass
class CodecPlan:
    """One codec configuration in a sweep: its name, options and the rate points to run."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    rate_points: list[Any] = field(default_factory=list)


def split_list(text: str | Iterable[Any] | None) -> list[str]:
    """``"10, 50,90"`` -> ``["10", "50", "90"]``: the one parser of comma-separated command-line lists."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return [str(item).strip() for item in items if str(item).strip()]


def unique(items: Iterable[Any]) -> list[Any]:
    """Items in order with repeats dropped (``-c jpeg,jpeg`` or ``-q 50,50`` does the work once)."""
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def parse_option_args(args: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["jpeg.subsampling=444", "cdc.checkpoint=a.b.pt"]`` -> ``{"jpeg": {"subsampling": "444"}, ...}``.

    The codec is everything before the first ``.`` (codec names have none), the key runs to the first ``=``.
    """
    parsed: dict[str, dict[str, str]] = {}
    for arg in args:
        left, eq, value = arg.partition("=")
        codec, dot, key = left.partition(".")
        if not eq or not dot or not codec or not key:
            raise CodecConfigError(f"option {arg!r} is not of the form CODEC.KEY=VALUE (e.g. jpeg.subsampling=444)")
        parsed.setdefault(codec.strip(), {})[key.strip()] = value.strip()
    return parsed


def options_for(codec: str, parsed: dict[str, dict[str, str]]) -> dict[str, str]:
    """Options that apply to ``codec``: those given for its family (``compressai``) then for itself."""
    family = codec.partition(":")[0]
    merged = dict(parsed.get(family, {})) if family != codec else {}
    merged.update(parsed.get(codec, {}))
    return merged


def _check_option_names(name: str, cls, opts: dict) -> None:
    """An unknown ``-o`` key: the valid ones including ``qualities`` (the rate points), and a close match."""
    import difflib

    unknown = sorted(set(opts) - set(cls.option_specs))
    if not unknown:
        return
    valid = sorted(cls.option_specs) + [RATE_OPTION]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=2)
        if close:
            hints.append(f"-o {name}.{key}: did you mean {' or '.join(close)}?")
    rate = getattr(cls, "rate_label", "quality")
    listed = ", ".join(f"{k} (the rate points, {rate}: -o {name}.{RATE_OPTION}=A,B or -q A,B)" if k == RATE_OPTION
                       else k for k in valid)
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise CodecConfigError(f"codec {name!r} has no option {', '.join(unknown)}{hint}; valid options: {listed}")


def check_option_targets(parsed: dict[str, dict[str, str]], codec_names: list[str]) -> None:
    """Refuse ``-o CODEC.key=value`` for a codec that is not being run (``cdc`` also covers ``cdc:...``)."""
    families = {c.partition(":")[0] for c in codec_names}
    stray = sorted(set(parsed) - set(codec_names) - families)
    if stray:
        raise CodecConfigError(f"options given for {', '.join(stray)}, which is not among the codecs given: "
                               f"{','.join(codec_names)}")


def build_plans(codec_names: list[str], option_args: Iterable[str], qualities: str | None,
                device: str = "cpu") -> list[CodecPlan]:
    """Validate codec names, options and every rate point (raising ConfigError subclasses) before any work."""
    codec_names = unique(codec_names)
    if not codec_names:
        raise CodecConfigError("no codec given; name at least one with --codecs (see `cdc-bench codecs`)")
    parsed = parse_option_args(option_args)
    check_option_targets(parsed, codec_names)
    plans = []
    for name in codec_names:
        cls = get_codec_class(name)
        opts = options_for(name, parsed)
        given = opts.pop(RATE_OPTION, None)
        rates_text = given if given is not None else qualities
        if rates_text is not None and not split_list(rates_text):   # -q '' silently ran every default point
            where = f"-o {name}.{RATE_OPTION}={given}" if given is not None else f"-q {qualities!r}"
            raise CodecConfigError(f"{where} names no rate point; give them, e.g. -q 10,50,90, or drop it for "
                                   f"{name}'s default points")
        _check_option_names(name, cls, opts)
        instance = cls(opts, device=device)  # validates keys and values now, before any work starts
        # The instance's rate points: an option may fix them (CDC with a local checkpoint has one).
        rates = unique(instance.validate_rate(r) for r in (split_list(rates_text) if rates_text
                                                             else instance.rate_points))
        if not rates:
            raise CodecConfigError(f"codec {name} has no default rate points; give them with -o {name}.qualities=...")
        # every option with its value, so each result records the full configuration
        plans.append(CodecPlan(name, dict(instance.options), rates))
    return plans
