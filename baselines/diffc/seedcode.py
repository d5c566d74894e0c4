"""Entropy coding of the chunk indices with CompressAI's rANS coder.

A PFR index N among 2^b candidates, for a chunk of KL kappa bits, is small with high probability: its rank
r = N + 1 is close to Zipf-distributed, P(r) ~ r^-s with s = 1 + 1 / (kappa + e^-1 log(e + 1)) (the prior of
Vonderfecht & Liu's code, after Li & El Gamal). Both sides know kappa from the bitstream's per-step bits, so
both build the same prior.

CompressAI's rANS tables have 16-bit precision, too coarse for 2^16 symbols, so a rank is coded in two parts:
its octave L = floor(log2 r) (at most 17 symbols, under the Zipf mass of each octave), then the L bits of
r - 2^L under uniform tables (8 bits at a time). Within an octave the Zipf prior varies by a factor 2^s, so the
uniform part costs at most ~0.1 bit more than the Zipf code would; the tests measure the total.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from cdc_bench.errors import BitstreamError

from .._container import rans_guard

PRECISION = 16
PIECE_BITS = 8
_TAIL = 2.0 ** -14  # mass of CompressAI's escape symbol, never used by a valid stream


@dataclass(frozen=True)
class Chunk:
    """What the prior of one chunk depends on: its candidate bits and its share of the step's KL (in bits)."""

    size: int
    kl_bits: float


def zipf_exponent(kl_bits: float) -> float:
    return 1.0 + 1.0 / (kl_bits + math.exp(-1.0) * math.log(math.e + 1.0))


@functools.lru_cache(maxsize=4096)
def _octave_cdf(size: int, exponent: float) -> tuple[int, ...]:
    ranks = np.arange(1, (1 << size) + 1, dtype=np.float64)
    mass = ranks ** -exponent
    octave = np.frexp(ranks)[1] - 1  # floor(log2 r), exactly
    pmf = np.bincount(octave, weights=mass, minlength=size + 1)
    pmf = pmf / pmf.sum() * (1.0 - _TAIL)
    return _quantized(list(pmf) + [_TAIL])


@functools.lru_cache(maxsize=PIECE_BITS + 1)
def _uniform_cdf(bits: int) -> tuple[int, ...]:
    n = 1 << bits
    return _quantized([(1.0 - _TAIL) / n] * n + [_TAIL])


def _quantized(pmf: list[float]) -> tuple[int, ...]:
    from compressai._CXX import pmf_to_quantized_cdf

    return tuple(pmf_to_quantized_cdf(pmf, PRECISION))


def _pieces(octave: int, size: int) -> list[int]:
    """Widths of the uniform pieces of an octave's remainder bits (low bits first). The top octave of a chunk
    (L = size) holds one rank, 2^size, so it has none."""
    bits = octave if octave < size else 0
    return [min(PIECE_BITS, bits - i) for i in range(0, bits, PIECE_BITS)]


def max_symbols(chunks: list[Chunk]) -> int:
    """An upper bound on the symbols a stream of these chunks holds (bounds the decoder's reads)."""
    return sum(1 + len(_pieces(c.size - 1, c.size)) for c in chunks)


def encode(indexes: list[int], chunks: list[Chunk]) -> bytes:
    """One rANS string for every chunk index, in order."""
    from compressai.ans import RansEncoder

    symbols, cdfs = [], []
    for index, chunk in zip(indexes, chunks, strict=True):
        rank = index + 1
        octave = rank.bit_length() - 1
        symbols.append(octave)
        cdfs.append(_octave_cdf(chunk.size, zipf_exponent(chunk.kl_bits)))
        rest = rank - (1 << octave)
        for width in _pieces(octave, chunk.size):
            symbols.append(rest & ((1 << width) - 1))
            cdfs.append(_uniform_cdf(width))
            rest >>= width
    unique = list(dict.fromkeys(cdfs))
    where = {cdf: i for i, cdf in enumerate(unique)}
    return RansEncoder().encode_with_indexes(symbols, [where[c] for c in cdfs], [list(c) for c in unique],
                                             [len(c) for c in unique], [0] * len(unique))


def decode(data: bytes, chunks: list[Chunk], what: str) -> list[int]:
    """The chunk indices of :func:`encode`; BitstreamError when a decoded value cannot be one."""
    from compressai.ans import RansDecoder

    decoder = RansDecoder()
    decoder.set_stream(rans_guard([[data]], max_symbols(chunks), what)[0][0])

    def one(cdf: tuple[int, ...]) -> int:
        return decoder.decode_stream([0], [list(cdf)], [len(cdf)], [0])[0]

    indexes = []
    for i, chunk in enumerate(chunks):
        octave = one(_octave_cdf(chunk.size, zipf_exponent(chunk.kl_bits)))
        if not 0 <= octave <= chunk.size:
            raise BitstreamError(f"{what} bitstream is corrupt (chunk {i}: octave {octave} of a {chunk.size}-bit "
                                 "chunk)")
        rest, shift = 0, 0
        for width in _pieces(octave, chunk.size):
            piece = one(_uniform_cdf(width))
            if not 0 <= piece < 1 << width:
                raise BitstreamError(f"{what} bitstream is corrupt (chunk {i}: bad index bits)")
            rest |= piece << shift
            shift += width
        index = (1 << octave) + rest - 1
        if index >= 1 << chunk.size:
            raise BitstreamError(f"{what} bitstream is corrupt (chunk {i}: index {index} >= 2^{chunk.size})")
        indexes.append(index)
    return indexes


def ideal_bits(index: int, chunk: Chunk) -> float:
    """-log2 of the index's Zipf probability: what an ideal coder of the same prior would spend."""
    s = zipf_exponent(chunk.kl_bits)
    norm = float((np.arange(1, (1 << chunk.size) + 1, dtype=np.float64) ** -s).sum())
    return s * math.log2(index + 1) + math.log2(norm)
