"""DiffC's shared randomness and PFR: the generator is exact and well distributed, PFR samples its target,
the chunk layout and the index code are right."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from baselines.diffc import pfr, prng, seedcode


def test_generator_is_frozen_and_device_independent():
    # The stream format depends on these words: a change of the generator must change bitstream.VERSION.
    words = prng.uniform32(prng.derive_key(1, 2, 3), torch.arange(4, dtype=torch.int64)).tolist()
    again = prng.uniform32(prng.derive_key(1, 2, 3), torch.tensor([3, 2, 1, 0])).tolist()
    assert words == again[::-1] and len(set(words)) == 4 and all(0 <= w < 2 ** 32 for w in words)
    z = prng.normals(12345, 1000)
    assert torch.equal(z, prng.normals(12345, 1000))
    assert torch.equal(z[500:], prng.normals(12345, 500, start=500))
    if torch.cuda.is_available():
        assert torch.equal(z, prng.normals(12345, 1000, "cuda").cpu())
        big = 1 << 22
        assert torch.equal(prng.normals(7, big, start=1 << 40), prng.normals(7, big, "cuda", start=1 << 40).cpu())


def test_normals_are_standard_normal_and_uncorrelated():
    z = prng.normals(99, 1 << 18).double().numpy()
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.01
    assert stats.kstest(z[:20000], "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01
    other = prng.normals(100, 1 << 18).double().numpy()  # a neighbouring key
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.01
    words = prng.uniform32(5, torch.arange(1 << 16, dtype=torch.int64))
    counts = torch.bincount(words >> 24, minlength=256).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3


def _pfr_samples(mu: torch.Tensor, size: int, trials: int) -> np.ndarray:
    samples = []
    for trial in range(trials):
        key = prng.derive_key(2024, trial)
        samples.append(pfr.candidate(key, pfr.encode_chunk(mu, key, size), mu.numel(), "cpu"))
    return torch.stack(samples).double().numpy()


def test_pfr_sample_has_its_target_distribution():
    # 2-D target N(mu, I) with KL 2.3 bits, 2^10 candidates, 2000 independent keys: KS per dimension, moments.
    mu = torch.tensor([1.5, -1.0])
    s = _pfr_samples(mu, 10, 2000)
    for d in range(2):
        assert stats.kstest(s[:, d] - float(mu[d]), "norm").pvalue > 1e-3, d
    assert np.allclose(s.mean(0), mu.numpy(), atol=0.08)
    assert np.allclose(np.cov(s.T), np.eye(2), atol=0.12)


def test_pfr_truncated_to_few_candidates_falls_short_of_its_target():
    # PFR over a finite list is importance sampling: with 2^4 candidates for 2.3 bits the sample is pulled only
    # part of the way to mu (measured: 78%); this is why chunks get padding bits above their KL.
    s = _pfr_samples(torch.tensor([1.5, -1.0]), 4, 2000)
    assert 0.6 < s.mean(0)[0] / 1.5 < 0.9
    assert stats.kstest(s[:, 0] - 1.5, "norm").pvalue < 1e-3


def test_chunk_layout():
    assert pfr.chunk_sizes(5, 12, 2) == (7,)
    sizes = pfr.chunk_sizes(95, 12, 2)
    assert len(sizes) == 10 and sum(sizes) == 95 + 20 and max(sizes) - min(sizes) <= 1 and max(sizes) <= 12
    lay = pfr.layout(300, 95, 12, 2)
    assert sum(lay.counts) == 300 and min(lay.counts) >= 1
    with pytest.raises(ValueError, match="dimensions"):
        pfr.layout(5, 200, 12, 2)
    perm = pfr.permutation(1000, 3, "cpu")
    assert sorted(perm.tolist()) == list(range(1000)) and perm.tolist() != list(range(1000))


def test_step_roundtrip_and_kl():
    mu = prng.normals(3, 200).view(4, 50) * 0.5
    bits, indexes, sample = pfr.encode_step(mu, seed=1, step=4, max_bits=8, padding=2)
    assert bits == math.ceil(pfr.step_bits(mu)) and len(indexes) == len(pfr.chunk_sizes(bits, 8, 2))
    assert torch.equal(sample, pfr.decode_step(mu.shape, bits, indexes, 1, 4, 8, 2, "cpu"))
    assert sample.shape == mu.shape
    # the sample is pulled towards mu: closer to it than an unrelated normal vector is
    assert (sample - mu).square().mean() < 1.0 + 0.2 < (prng.normals(8, 200).view(4, 50) - mu).square().mean() + 0.25


def test_index_code_roundtrip_and_cost():
    rng = np.random.default_rng(0)
    chunks = [seedcode.Chunk(int(b), float(b) - 2.0) for b in rng.integers(3, 17, 300)]
    indexes = [int(min((1 << c.size) - 1, rng.zipf(1.2) - 1)) for c in chunks]
    data = seedcode.encode(indexes, chunks)
    assert seedcode.decode(data, chunks, "test") == indexes
    ideal = sum(seedcode.ideal_bits(i, c) for i, c in zip(indexes, chunks))
    # the octave + uniform-bits code of 16-bit precision tables costs at most 0.15 bit/index over the Zipf ideal,
    # plus rANS's 64-bit final state
    assert 8 * len(data) <= ideal + 0.15 * len(chunks) + 64
