"""Compare a speed report with a saved one: median ratios per (size, steps) and a regression verdict.

Ratios are new median / old median, so 1.25 means 25% slower. Runs on different hardware, image sizes,
dtypes, thread counts or codecs measure different things, so they are refused unless the caller allows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

PHASES = ("encode", "decode")


@dataclass
class RatioRow:
    width: int
    height: int
    steps: int | None
    phase: str
    old_median: float
    new_median: float
    ratio: float
    regressed: bool


@dataclass
class Comparison:
    rows: list[RatioRow]
    max_slowdown: float
    only_old: list[tuple[int, int, int | None]] = field(default_factory=list)
    only_new: list[tuple[int, int, int | None]] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(r.regressed for r in self.rows)

    @property
    def worst(self) -> RatioRow | None:
        return max(self.rows, key=lambda r: r.ratio, default=None)


def _sizes(report: Mapping[str, Any]) -> list[str]:
    return sorted(report.get("settings", {}).get("sizes") or {f"{r['width']}x{r['height']}" for r in report["rows"]})


def mismatches(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two runs in a way that makes their times incomparable (empty when comparable).

    Keys missing from either side (e.g. ``dtype`` before the codec was built) are not compared.
    """
    found = []
    if old.get("codec") != new.get("codec"):
        found.append(f"codec: {old.get('codec')} vs {new.get('codec')}")
    old_env, new_env = old.get("env", {}), new.get("env", {})
    for key in ("device", "device_name", "dtype", "threads"):
        if key in old_env and key in new_env and old_env[key] != new_env[key]:
            found.append(f"{key}: {old_env[key]} vs {new_env[key]}")
    old_sizes, new_sizes = _sizes(old), _sizes(new)
    if old_sizes and new_sizes and old_sizes != new_sizes:
        found.append(f"sizes: {','.join(old_sizes)} vs {','.join(new_sizes)}")
    return found


def soft_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Differences worth a note but not a refusal (options such as gamma or the checkpoint, the rate point)."""
    notes = []
    old_opts, new_opts = old.get("options", {}), new.get("options", {})
    for key in sorted(set(old_opts) | set(new_opts)):
        if old_opts.get(key) != new_opts.get(key):
            notes.append(f"option {key}: {old_opts.get(key)} vs {new_opts.get(key)}")
    if old.get("rate") != new.get("rate"):
        notes.append(f"rate: {old.get('rate')} vs {new.get('rate')}")
    return notes


def _key(row: Mapping[str, Any]) -> tuple[int, int, int | None]:
    return int(row["width"]), int(row["height"]), row.get("steps")


def compare_reports(old: Mapping[str, Any], new: Mapping[str, Any], max_slowdown: float,
                    phases: Iterable[str] = PHASES) -> Comparison:
    """Median ratios for every (size, steps) measured in both runs; a row regresses when ratio > max_slowdown."""
    if max_slowdown <= 0:
        raise ValueError(f"max slowdown must be positive, got {max_slowdown}")
    old_rows = {_key(r): r for r in old["rows"]}
    new_rows = {_key(r): r for r in new["rows"]}
    common = sorted(set(old_rows) & set(new_rows), key=lambda k: (k[0] * k[1], k[0], k[2] or 0))
    rows = []
    for key in common:
        for phase in phases:
            old_m, new_m = float(old_rows[key][phase]["median"]), float(new_rows[key][phase]["median"])
            ratio = new_m / old_m if old_m > 0 else float("inf")
            rows.append(RatioRow(key[0], key[1], key[2], phase, old_m, new_m, ratio, ratio > max_slowdown))
    only_old = sorted(set(old_rows) - set(new_rows), key=str)
    only_new = sorted(set(new_rows) - set(old_rows), key=str)
    return Comparison(rows, max_slowdown, only_old, only_new)
