"""The regression gate's statistic: a bootstrap interval of the median ratio new / baseline.

Why an interval and not the ratio of two medians: on a shared machine single rounds vary by tens of percent, so
a plain ratio crosses any fixed limit now and then even when nothing changed. The gate fails only when the
whole interval lies above the limit (its lower bound exceeds ``--max-slowdown``): with a 95% two-sided interval,
identical code fails about once in 40 compares at worst, and far less when the limit is above 1.

Why pooled: a phase at one image size is measured at several step counts (decode) in every round. Each point's
times are divided by the baseline's median at that point, then the points are pooled, so one test per
(phase, size) uses every timed round instead of a median of three. The statistic is
``median(new pooled) / median(baseline pooled)``; the interval is scipy's percentile bootstrap (seeded, so the
same two reports always give the same verdict). Percentile rather than BCa: with a handful of rounds and a
median (a step function of the data) BCa's acceleration estimate is unstable and can return NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 4000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """Median ratio new / baseline and its bootstrap interval; ``low == high == ratio`` when a side has one
    sample only (no interval can be formed; ``method`` then says so)."""

    ratio: float
    low: float
    high: float
    n_old: int
    n_new: int
    confidence: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median_ratio(new: np.ndarray, old: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(new, axis=axis) / np.median(old, axis=axis)


def median_ratio_interval(old: Sequence[float], new: Sequence[float], confidence: float = CONFIDENCE,
                          seed: int = SEED, resamples: int = RESAMPLES) -> Interval:
    """``median(new) / median(old)`` with a two-sample percentile bootstrap interval (rounds resampled within
    each run, the two runs independently)."""
    old_a, new_a = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    if old_a.size == 0 or new_a.size == 0:
        raise ValueError("no timings to compare")
    if np.any(old_a <= 0) or not np.all(np.isfinite(old_a)) or not np.all(np.isfinite(new_a)):
        raise ValueError("timings must be finite and the baseline's positive")
    ratio = float(_median_ratio(new_a, old_a))
    if old_a.size < 2 or new_a.size < 2:
        return Interval(ratio, ratio, ratio, int(old_a.size), int(new_a.size), confidence,
                        "none (one round on a side: rerun with --repeats 3 or more)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical resamples warn about a degenerate distribution; harmless here
        res = stats.bootstrap((new_a, old_a), _median_ratio, n_resamples=resamples, confidence_level=confidence,
                              method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval(ratio, min(low, ratio), max(high, ratio), int(old_a.size), int(new_a.size), confidence,
                    "percentile bootstrap")


def pooled(points: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Pool several points' (baseline, new) timings, each divided by the baseline's median at that point."""
    old_parts, new_parts = [], []
    for old, new in points:
        scale = float(np.median(np.asarray(old, dtype=float)))
        if not scale > 0:
            raise ValueError("a baseline median is not positive")
        old_parts.append(np.asarray(old, dtype=float) / scale)
        new_parts.append(np.asarray(new, dtype=float) / scale)
    return np.concatenate(old_parts), np.concatenate(new_parts)


def gate_interval(points: Sequence[tuple[Sequence[float], Sequence[float]]], confidence: float = CONFIDENCE,
                  seed: int = SEED) -> Interval:
    """The interval of the pooled median ratio of several points (one point: that point's own)."""
    old, new = pooled(points)
    return median_ratio_interval(old, new, confidence, seed)


def regressed(interval: Interval, max_slowdown: float) -> bool:
    """Fail only when the whole interval lies above the limit."""
    return interval.low > max_slowdown
