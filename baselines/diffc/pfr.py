"""Poisson functional representation (PFR) coding of one step's Gaussian, split into chunks of a few bits.

At every step the sender must communicate a sample of q = N(mu, I) (the step's posterior, in units of the
model's standard deviation, centred on the model's mean) to a receiver who knows only p = N(0, I). With PFR
(Li & El Gamal 2018) both sides share the candidates z_1, z_2, ... ~ p (our counter-based generator, prng.py);
the sender draws Poisson arrival times T_1 < T_2 < ... and sends the index k* = argmin_k T_k / w(z_k), where
w = q/p = exp(<z, mu> - |mu|^2 / 2). z_{k*} is then an exact sample of q, and the index costs about
KL(q||p) + log2(KL + 1) + O(1) bits.

The number of candidates grows as 2^KL, so a step's dimensions are split at random into chunks of at most
``max_bits`` candidate bits each (Vonderfecht & Liu 2025): a step whose KL is ``n`` bits gets
ceil(n / (max_bits - padding)) chunks whose sizes share ``n + padding * chunks`` bits evenly, each chunk
gets a share of the dimensions proportional to its size, and each chunk is coded with its own PFR over
2^size candidates. The padding bits make the truncation of PFR to a finite list rarely matter. ``n`` (an
integer number of bits, ceil of the step's KL) is all the receiver needs to rebuild the layout; the bitstream
carries it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import prng

#: candidate-times-dimension values evaluated at once when scoring candidates (bounds the encoder's memory)
BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Layout:
    """How one step's dimensions are split: chunk sizes in bits and the dimensions of each chunk."""

    sizes: tuple[int, ...]
    counts: tuple[int, ...]


def step_bits(mu: torch.Tensor) -> float:
    """KL(N(mu, I) || N(0, I)) in bits, in float64."""
    return 0.5 * float(mu.double().square().sum()) / math.log(2)


def chunk_sizes(bits: int, max_bits: int, padding: int) -> tuple[int, ...]:
    """Sizes (candidate bits) of the chunks of a step of ``bits`` bits of KL: even shares, as the paper's code."""
    if bits < 1 or max_bits - padding < 1:
        raise ValueError(f"need bits >= 1 and max_bits > padding, got {bits}, {max_bits}, {padding}")
    chunks = -(-bits // (max_bits - padding))
    total = bits + padding * chunks
    base, extra = divmod(total, chunks)
    return tuple(base + 1 if i < extra else base for i in range(chunks))


def layout(dim: int, bits: int, max_bits: int, padding: int) -> Layout:
    """The chunk layout of a step; ValueError when it would leave a chunk without a dimension."""
    sizes = chunk_sizes(bits, max_bits, padding)
    total = sum(sizes)
    counts = [dim * s // total for s in sizes[:-1]]
    counts.append(dim - sum(counts))
    if min(counts) < 1:
        raise ValueError(f"a step of {bits} bits needs {len(sizes)} chunks, more than its {dim} dimensions can "
                         f"fill (each chunk needs one)")
    return Layout(sizes, tuple(counts))


def max_chunks(dim: int, max_bits: int, padding: int) -> int:
    """Bits a step may carry before some chunk would get no dimension (a bound the header checks)."""
    return dim * (max_bits - padding)


def permutation(dim: int, key: int, device: torch.device | str) -> torch.Tensor:
    """The step's random assignment of dimensions to chunks: a permutation, the same on every device.

    Sorting (hash << 32 | index) orders by the hash with ties broken by index, so no sort stability is needed.
    """
    index = torch.arange(dim, dtype=torch.int64, device=device)
    return torch.argsort((prng.uniform32(key, index) << 32) | index)


def candidate(key: int, index: int, dim: int, device: torch.device | str) -> torch.Tensor:
    """Candidate ``index`` of a chunk: ``dim`` standard normals."""
    return prng.normals(key, dim, device, start=index * dim)


def encode_chunk(mu: torch.Tensor, key: int, size: int) -> int:
    """The PFR index (0-based) among 2^size candidates for a sample of N(mu, I)."""
    dim, count = mu.numel(), 1 << size
    mu = mu.float()
    # Arrival times T_k = E_1 + ... + E_k (E ~ Exp(1)); only the sender draws them, from its own stream.
    arrivals = -torch.log(prng.uniforms(prng.derive_key(key, 1),
                                        torch.arange(count, dtype=torch.int64, device=mu.device)))
    log_arrival = torch.log(torch.cumsum(arrivals, 0))
    block = max(1, BLOCK_ELEMENTS // dim)
    best_score, best = math.inf, 0
    for start in range(0, count, block):
        n = min(block, count - start)
        z = prng.normals(key, n * dim, mu.device, start=start * dim).view(n, dim)
        score = log_arrival[start:start + n] - (z @ mu).double()  # log T_k - log w_k (+ a constant)
        k = int(torch.argmin(score))
        if float(score[k]) < best_score:
            best_score, best = float(score[k]), start + k
    return best


def step_keys(seed: int, step: int) -> tuple[int, int]:
    """The keys of a step: one for the dimension permutation, one from which each chunk's is derived."""
    return prng.derive_key(seed, step, 0), prng.derive_key(seed, step, 1)


def encode_step(mu: torch.Tensor, seed: int, step: int, max_bits: int, padding: int
                ) -> tuple[int, list[int], torch.Tensor]:
    """Code a sample of N(mu, I) (any shape): (the step's bits, the chunk indices, the sample, shaped as mu)."""
    flat = mu.reshape(-1)
    bits = max(1, math.ceil(step_bits(flat)))
    plan = layout(flat.numel(), bits, max_bits, padding)
    perm_key, chunk_key = step_keys(seed, step)
    order = permutation(flat.numel(), perm_key, flat.device)
    indexes, start = [], 0
    for c, (size, count) in enumerate(zip(plan.sizes, plan.counts)):
        dims = order[start:start + count]
        indexes.append(encode_chunk(flat[dims], prng.derive_key(chunk_key, c), size))
        start += count
    return bits, indexes, decode_step(mu.shape, bits, indexes, seed, step, max_bits, padding, flat.device)


def decode_step(shape: torch.Size | tuple, bits: int, indexes: list[int], seed: int, step: int, max_bits: int,
                padding: int, device: torch.device | str) -> torch.Tensor:
    """The sample a step's chunk indices stand for (what the encoder's :func:`encode_step` returned)."""
    dim = math.prod(shape)
    plan = layout(dim, bits, max_bits, padding)
    if len(indexes) != len(plan.sizes):
        raise ValueError(f"step {step} has {len(plan.sizes)} chunks, got {len(indexes)} indices")
    perm_key, chunk_key = step_keys(seed, step)
    order = permutation(dim, perm_key, device)
    sample = torch.empty(dim, dtype=torch.float32, device=device)
    start = 0
    for c, (size, count, index) in enumerate(zip(plan.sizes, plan.counts, indexes)):
        if not 0 <= index < 1 << size:
            raise ValueError(f"chunk index {index} outside 0..{(1 << size) - 1}")
        sample[order[start:start + count]] = candidate(prng.derive_key(chunk_key, c), index, count, device)
        start += count
    return sample.view(*shape)
