"""Compare a speed report with a saved baseline: the regression gate.

One verdict per (phase, image size): the encode of the size, and its decodes pooled over the step counts both
runs measured. Each verdict is a bootstrap interval of the median ratio new / baseline over the timed rounds
(``gate.py``), on the clock that is stable under load (CPU time on CPU runs, CUDA-event time on GPU runs; wall
time only when one of the runs lacks it). A unit regresses when its interval's lower bound exceeds
``max_slowdown``. Per-point median ratios on both clocks are kept for the table. Runs on different hardware,
image sizes, dtypes, thread counts or codecs measure different things, so they are refused unless the caller
allows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .bench import timing_key
from .gate import CONFIDENCE, SEED, Interval, gate_interval, regressed

Key = tuple[int, int, "int | None"]


@dataclass
class PointRatio:
    """One (phase, size, steps) point: median ratios new / baseline on the gate clock and on the wall clock."""

    phase: str
    width: int
    height: int
    steps: int | None
    ratio: float
    wall_ratio: float


@dataclass
class GateRow:
    """The verdict of one (phase, size): ``steps`` are the step counts pooled (``[None]`` for encode)."""

    phase: str
    width: int
    height: int
    steps: list[int | None]
    interval: Interval
    wall_ratio: float      # pooled median ratio on the wall clock, for information only
    regressed: bool


@dataclass
class Comparison:
    rows: list[GateRow]
    points: list[PointRatio]
    max_slowdown: float
    clock: str
    only_old: list[Key] = field(default_factory=list)
    only_new: list[Key] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(r.regressed for r in self.rows)

    @property
    def worst(self) -> GateRow | None:
        return max(self.rows, key=lambda r: r.interval.low, default=None)

    def as_dict(self) -> dict[str, Any]:
        return {"clock": self.clock, "max_slowdown": self.max_slowdown, "regressed": self.regressed,
                "rows": [{**asdict(r), "interval": r.interval.as_dict()} for r in self.rows],
                "points": [asdict(p) for p in self.points],
                "only_old": self.only_old, "only_new": self.only_new}


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


def _key(row: Mapping[str, Any]) -> Key:
    return int(row["width"]), int(row["height"]), row.get("steps")


def _times(row: Mapping[str, Any], phase: str, clock: str) -> list[float]:
    summary = row.get(timing_key(phase, clock)) or {}
    return list(summary.get("times") or [summary["median"]] if summary else [])


def comparison_clock(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The new run's gate clock when both runs recorded it for every row, else wall time."""
    clock = new.get("gate_clock", "wall")
    for report in (old, new):
        for phase, rows in (("encode", report.get("encode", [])), ("decode", report.get("rows", []))):
            if any(not r.get(timing_key(phase, clock)) for r in rows):
                return "wall"
    return clock


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compare_reports(old: Mapping[str, Any], new: Mapping[str, Any], max_slowdown: float,
                    confidence: float = CONFIDENCE, seed: int = SEED) -> Comparison:
    """The gate: per (phase, size) a pooled median-ratio interval over the rounds both runs timed."""
    if max_slowdown <= 0:
        raise ValueError(f"max slowdown must be positive, got {max_slowdown}")
    clock = comparison_clock(old, new)
    old_rows = {_key(r): r for r in old["rows"]}
    new_rows = {_key(r): r for r in new["rows"]}
    common = sorted(set(old_rows) & set(new_rows), key=lambda k: (k[0] * k[1], k[0], k[2] or 0))
    units: list[tuple[str, int, int, list[tuple[int | None, Mapping, Mapping]]]] = []
    old_enc = {(int(r["width"]), int(r["height"])): r for r in old.get("encode", [])}
    new_enc = {(int(r["width"]), int(r["height"])): r for r in new.get("encode", [])}
    for size in sorted(set(old_enc) & set(new_enc), key=lambda s: (s[0] * s[1], s[0])):
        units.append(("encode", *size, [(None, old_enc[size], new_enc[size])]))
    for size in sorted({k[:2] for k in common}, key=lambda s: (s[0] * s[1], s[0])):
        units.append(("decode", *size, [(k[2], old_rows[k], new_rows[k]) for k in common if k[:2] == size]))
    rows, points = [], []
    for phase, width, height, members in units:
        for steps, o, n in members:
            ratio = _median(_times(n, phase, clock)) / _median(_times(o, phase, clock))
            wall = _median(_times(n, phase, "wall")) / _median(_times(o, phase, "wall"))
            points.append(PointRatio(phase, width, height, steps, ratio, wall))
        interval = gate_interval([(_times(o, phase, clock), _times(n, phase, clock)) for _, o, n in members],
                                 confidence, seed)
        wall = gate_interval([(_times(o, phase, "wall"), _times(n, phase, "wall")) for _, o, n in members],
                             confidence, seed).ratio
        rows.append(GateRow(phase, width, height, [s for s, _, _ in members], interval, wall,
                            regressed(interval, max_slowdown)))
    only_old = sorted(set(old_rows) - set(new_rows), key=str)
    only_new = sorted(set(new_rows) - set(old_rows), key=str)
    return Comparison(rows, points, max_slowdown, clock, only_old, only_new)
