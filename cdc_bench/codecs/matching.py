"""Matched bitrates: find, per image and codec, the rate point whose real bpp meets a target.

Codecs land on different rates at their default points, so comparing them "at 0.2 bpp" needs a search. A
codec says how its knob can be searched through :meth:`Codec.rate_domain`: integers or reals in a range
(bisection: JPEG/WebP/AVIF/JPEG XL quality, HEVC QP, JPEG 2000 ratio) or only its listed points (a choice:
CDC's lambdas, zoo qualities). Real bitstreams are measured at every probe, so the found point is exact; probes
are cached per worker, so the targets of one image share their encodes.

No library does this search for codecs in general (CompressAI's bench sweeps fixed points), hence this module.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Codec, Encoded, RateDomain
from ..errors import CodecConfigError

MODES = ("below", "nearest")
_FLOAT_STEPS = 24  # bisection steps on a real knob: a relative resolution of ~1e-5 over three decades
_CACHE_SIZE = 256


@dataclass
class Match:
    """The rate point chosen for one target, its bitstream, and every probe the search encoded."""

    rate: Any
    encoded: Encoded
    bpp: float
    target_bpp: float
    met: bool                          # False: even the lowest rate the codec offers exceeds the target
    probes: list[tuple[Any, float]] = field(default_factory=list)   # (rate, bpp) in the order probed


_probes: "OrderedDict[tuple, Encoded]" = OrderedDict()


def _encode_cached(codec: Codec, image: np.ndarray, digest: str, rate: Any, probes: list) -> Encoded:
    key = (codec.name, codec.options_key, digest, repr(rate))
    if key in _probes:
        _probes.move_to_end(key)
        encoded = _probes[key]
    else:
        encoded = codec.encode(image, rate)
        _probes[key] = encoded
        while len(_probes) > _CACHE_SIZE:
            _probes.popitem(last=False)
    probes.append((rate, 8.0 * len(encoded.data) / (image.shape[0] * image.shape[1])))
    return encoded


def match_rate(codec: Codec, image: np.ndarray, target_bpp: float, mode: str = "below") -> Match:
    """The rate point of ``codec`` whose real bpp on ``image`` is closest to ``target_bpp``.

    ``below``: the highest bpp not above the target (falls back to the lowest rate, with ``met=False``);
    ``nearest``: the closest bpp on either side. Assumes bpp is monotonic in the knob (true of every codec
    here up to encoder noise); the direction is found from the ends of the range.
    """
    if mode not in MODES:
        raise CodecConfigError(f"match mode {mode!r}: choose one of {', '.join(MODES)}")
    if not (isinstance(target_bpp, (int, float)) and math.isfinite(target_bpp) and target_bpp > 0):
        raise CodecConfigError(f"target bpp {target_bpp!r} must be a positive number")
    pixels = image.shape[0] * image.shape[1]
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
    probes: list[tuple[Any, float]] = []
    results: dict[str, tuple[float, Encoded]] = {}

    def bpp(rate: Any) -> float:
        key = repr(rate)
        if key not in results:
            encoded = _encode_cached(codec, image, digest, rate, probes)
            results[key] = (8.0 * len(encoded.data) / pixels, encoded)
        return results[key][0]

    domain = codec.rate_domain()
    if domain.kind == "float":
        low, high = _bracket_float(domain, bpp, target_bpp)
    else:
        candidates = domain.candidates()
        low, high = _bracket_discrete(candidates, bpp, target_bpp)
    # low: the best rate at or below the target (None if none is); high: the first one above it (None if none)
    if low is None:
        chosen, met = high, False
    elif high is None or mode == "below":
        chosen, met = low, True
    else:
        chosen = low if target_bpp - bpp(low) <= bpp(high) - target_bpp else high
        met = True
    value, encoded = bpp(chosen), results[repr(chosen)][1]
    return Match(chosen, encoded, value, float(target_bpp), met, probes)


def _bracket_discrete(candidates: list[Any], bpp, target: float) -> tuple[Any, Any]:
    """Binary search over candidates ordered so that bpp increases with the index."""
    if bpp(candidates[0]) > bpp(candidates[-1]):
        candidates = candidates[::-1]
    if bpp(candidates[0]) > target:
        return None, candidates[0]
    if bpp(candidates[-1]) <= target:
        return candidates[-1], None
    lo, hi = 0, len(candidates) - 1  # bpp(lo) <= target < bpp(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bpp(candidates[mid]) <= target:
            lo = mid
        else:
            hi = mid
    return candidates[lo], candidates[hi]


def _bracket_float(domain: RateDomain, bpp, target: float) -> tuple[Any, Any]:
    """Bisection on a real knob (on a log scale when the domain says so)."""
    to_x = math.log if domain.log else float
    from_x = math.exp if domain.log else float
    a, b = float(domain.low), float(domain.high)
    if bpp(a) > bpp(b):
        a, b = b, a  # now bpp(a) <= bpp(b)
    if bpp(a) > target:
        return None, a
    if bpp(b) <= target:
        return b, None
    xa, xb = to_x(a), to_x(b)
    for _ in range(_FLOAT_STEPS):
        mid = round(from_x((xa + xb) / 2), 6)
        if mid in (a, b):
            break
        if bpp(mid) <= target:
            a, xa = mid, to_x(mid)
        else:
            b, xb = mid, to_x(mid)
    return a, b


def clear_cache() -> None:
    _probes.clear()
