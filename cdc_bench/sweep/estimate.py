"""How long a larger sweep will take, from a small run's own per-item times: per codec, a fixed cost per item
plus a cost per pixel, printed as a range.

Scaling a whole run's mean time per item by the pixel ratio (what the bare run did) overestimates: a small crop's
item is dominated by fixed costs (an encoder process started per item, x265's set-up at ``veryslow``, a metric's
set-up), which do not grow with the image. Here each codec's fixed cost is measured on a tiny image (best of
three encode + decode + the run's per-image metrics), the rest of its measured per-item time is charged per
pixel, and the two are scaled separately. The range comes from the spread of the codec's own items (their
first and third quartile), since rate points cost differently (high quality encodes more bits).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

PROBE_SIDE = 64


@dataclass(frozen=True)
class CodecCost:
    codec: str
    fixed_s: float                 # per item of PROBE_SIDE^2 pixels: the part independent of size
    per_pixel_s: tuple[float, float]   # (low, high): from the first and third quartile of the measured items

    def item_s(self, pixels: float) -> tuple[float, float]:
        extra = max(pixels - PROBE_SIDE ** 2, 0.0)
        return tuple(self.fixed_s + rate * extra for rate in self.per_pixel_s)  # type: ignore[return-value]


def probe_fixed_cost(codec, rate: Any, metrics: Sequence[Callable] = (), repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds to encode, decode and measure (``metrics``: compute functions) a tiny image:
    the item's cost that does not scale with its size."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (PROBE_SIDE, PROBE_SIDE, 3), dtype=np.uint8)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        recon = codec.decode(codec.encode(image, rate).data)
        for compute in metrics:
            compute(image, recon)
        best = min(best, time.perf_counter() - start)
    return best


def codec_cost(codec: str, item_seconds: list[float], pixels: float, fixed_s: float) -> CodecCost:
    """Fixed + per-pixel cost of one codec from its measured items (all of ``pixels`` pixels)."""
    q1, q3 = np.percentile(np.asarray(item_seconds, dtype=float), [25, 75])
    rates = tuple(max(q - fixed_s, 0.0) / max(pixels - PROBE_SIDE ** 2, 1.0) for q in (q1, q3))
    return CodecCost(codec, fixed_s, rates)  # type: ignore[arg-type]


def sweep_minutes(costs: Mapping[str, CodecCost], items: Mapping[str, int], pixels: float,
                  workers: int) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """(low, high) wall minutes of a sweep of ``items[codec]`` items of ``pixels`` pixels on ``workers``
    processes (ideal parallelism), and the same per codec."""
    per_codec = {}
    for codec, n in items.items():
        low, high = costs[codec].item_s(pixels)
        per_codec[codec] = (n * low / max(1, workers) / 60, n * high / max(1, workers) / 60)
    return (sum(v[0] for v in per_codec.values()), sum(v[1] for v in per_codec.values()), per_codec)


def describe(low: float, high: float, per_codec: Mapping[str, tuple[float, float]], workers: int = 1) -> str:
    parts = ", ".join(f"{codec} {a:.0f}-{b:.0f}" for codec, (a, b) in per_codec.items())
    return f"about {low:.0f}-{high:.0f} min here with {max(1, workers)} worker(s) ({parts})"


def estimate_from_rows(rows, rates: Mapping[str, Any], codecs: Mapping[str, Any], items: Mapping[str, int],
                       run_pixels: float, target_pixels: float, workers: int,
                       metrics: Sequence[Callable] = ()) -> str | None:
    """The estimate text from a run's rows (a frame with codec, status, encode_s, decode_s, metrics_s), the
    codec objects to probe at a middle rate point (``rates``) with the run's per-image ``metrics``, and the
    target sweep's items per codec."""
    ok = rows[rows["status"] == "ok"]
    costs = {}
    for codec in items:
        mine = ok[ok["codec"] == codec]
        if mine.empty or codec not in codecs:
            return None
        seconds = (mine[["encode_s", "decode_s", "metrics_s"]].fillna(0.0).sum(axis=1)).tolist()
        costs[codec] = codec_cost(codec, seconds, run_pixels, probe_fixed_cost(codecs[codec], rates[codec], metrics))
    return describe(*sweep_minutes(costs, items, target_pixels, workers), workers=workers)
