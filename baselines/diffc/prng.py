"""A counter-based generator of standard normals that is bit-identical on every torch device.

DiffC's decoder regenerates the encoder's candidate noise from a seed, so the candidates must be the same
numbers on the encoder's device and the decoder's. torch's own generators are not (the CPU's Mersenne twister
and CUDA's Philox give different streams), and transcendental functions (log, cos in a Box-Muller transform) may
differ by an ulp between devices. So every value here is made with integer operations only, which are exact
everywhere:

* ``uniform32(key, counter)``: a 32-bit hash of a 64-bit key and a 64-bit counter (two rounds of an
  xorshift-multiply finaliser in the shape of Wellons' ``lowbias32``, a bijection of 32-bit words, keyed by
  xor; multipliers below 2**31 so that no int64 product overflows).
* ``normal(key, counter)``: the top :data:`TABLE_BITS` bits of that word index a table of the conditional means of
  N(0, 1) over :data:`TABLE_SIZE` equiprobable bins. The table is computed once in float64 on the CPU and moved to
  the device, so a lookup is exact. This is a discretised normal (its variance is 1 - 2e-6, its tails end at
  +-5.3); the PFR test checks that samples drawn through it have their target distribution.

No library offers a cross-device bit-identical generator (torch's, numpy's and cupy's are device-specific), hence
this module. It is a statistical generator, not a cryptographic one.
"""
from __future__ import annotations

import functools
import math

import torch

TABLE_BITS = 20
TABLE_SIZE = 1 << TABLE_BITS
MASK32 = 0xFFFFFFFF
_M1, _M2 = 0x7FEB352D, 0x5BD1E995  # lowbias32's first and MurmurHash2's multiplier


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit xorshift-multiply finaliser (lowbias32's shape, multipliers below 2**31 so that a uint32 times
    one fits in int64 and no product overflows)."""
    x = x ^ (x >> 16)
    x = (x * _M1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _M2) & MASK32
    return x ^ (x >> 16)


def uniform32(key: int, counter: torch.Tensor) -> torch.Tensor:
    """One 32-bit word (in int64) per counter (int64 >= 0) for a 64-bit ``key``: the same on every device."""
    k0, k1 = key & MASK32, (key >> 32) & MASK32
    h = _mix((counter & MASK32) ^ k0)
    return _mix(h ^ ((counter >> 32) * 0x9E3779B1 & MASK32) ^ k1)


def derive_key(*parts: int) -> int:
    """A 64-bit key from integers (stream seed, step, chunk, ...): a fixed-width, platform-free hash."""
    h = 0x243F6A8885A308D3
    for part in parts:
        if part < 0 or part >= 1 << 64:
            raise ValueError(f"key parts must be 0 <= part < 2**64, got {part}")
        h ^= part
        h = (h * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
        h ^= h >> 29
        h = (h * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        h ^= h >> 32
    return h


@functools.lru_cache(maxsize=1)
def _cpu_table() -> torch.Tensor:
    """Conditional means of N(0,1) over TABLE_SIZE equiprobable bins: M * (phi(a_j) - phi(a_{j+1}))."""
    p = torch.arange(TABLE_SIZE + 1, dtype=torch.float64) / TABLE_SIZE
    edges = torch.special.ndtri(p)  # -inf .. +inf
    pdf = torch.exp(-0.5 * edges * edges) / math.sqrt(2 * math.pi)
    pdf[0] = pdf[-1] = 0.0
    means = (pdf[:-1] - pdf[1:]) * TABLE_SIZE
    return means.to(torch.float32)


_device_tables: dict[str, torch.Tensor] = {}


def normal_table(device: torch.device | str) -> torch.Tensor:
    key = str(device)
    if key not in _device_tables:
        _device_tables[key] = _cpu_table().to(device)
    return _device_tables[key]


def normal(key: int, counter: torch.Tensor) -> torch.Tensor:
    """Standard normals (float32) for the counters, on the counters' device, identical on every device."""
    index = uniform32(key, counter) >> (32 - TABLE_BITS)
    return normal_table(counter.device)[index]


def normals(key: int, n: int, device: torch.device | str = "cpu", start: int = 0) -> torch.Tensor:
    """``n`` consecutive normals of the stream ``key`` (counters ``start .. start + n - 1``)."""
    return normal(key, torch.arange(start, start + n, dtype=torch.int64, device=device))


def uniforms(key: int, counter: torch.Tensor) -> torch.Tensor:
    """Uniforms in (0, 1) as float64 (encoder-side only: PFR's arrival times never reach the decoder)."""
    return (uniform32(key, counter).to(torch.float64) + 0.5) / 4294967296.0
