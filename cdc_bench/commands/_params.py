"""Command-line value types: each wraps one of the library's parsers (:mod:`cdc_bench.sweep.preflight`), so a
bad value is a usage error (exit 2) with the library's own message, and the library never imports click."""

from __future__ import annotations

import math

import click

from ..errors import ConfigError
from ..sweep.preflight import parse_device, parse_fid_protocol, parse_targets, parse_timeout, parse_workers


class _Checked(click.ParamType):
    """A click type from one of the parsers above: a bad value is a usage error (exit 2) with its message."""

    def __init__(self, name: str, parse):
        self.name = name
        self._parse = parse

    def convert(self, value, param, ctx):
        try:
            return self._parse(value)
        except ConfigError as err:
            self.fail(str(err), param, ctx)


TIMEOUT = _Checked("seconds|none", parse_timeout)
WORKERS = _Checked("integer", parse_workers)
DEVICE = _Checked("device", parse_device)
FID_PROTOCOL = _Checked("protocol", parse_fid_protocol)
TARGETS = _Checked("bpp,bpp,...", parse_targets)


class FiniteFloat(click.FloatRange):
    """click's ``FloatRange``, which lets ``nan`` through (comparisons with it are false) and ``inf`` where a side
    is open: a finite number only, so no NaN reaches the bootstrap or a nearest-rate search."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FIGURE_FORMATS = ("pdf", "png", "svg")


def figure_formats(text: str) -> list[str]:
    """``--format pdf,png``: each one of :data:`FIGURE_FORMATS`, at least one (a usage error otherwise)."""
    formats = [part.strip().lower() for part in str(text).split(",") if part.strip()]
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats:
        raise click.UsageError(f"--format: unknown {', '.join(bad) or '(empty)'}; use {', '.join(FIGURE_FORMATS)}")
    return list(dict.fromkeys(formats))
