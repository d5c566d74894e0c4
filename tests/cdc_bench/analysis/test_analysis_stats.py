"""Bootstrap intervals: they cover the true mean at the stated rate, and pairing narrows BD intervals."""

from __future__ import annotations

import numpy as np
import pytest

from cdc_bench.analysis.bdrate import bd_rate
from cdc_bench.analysis.stats import Bootstrap, contains_zero, fid_patch_bootstrap, mean_ci, paired_bd_ci


@pytest.mark.parametrize("method", ["percentile", "BCa"])
def test_mean_interval_covers_the_true_mean_at_the_stated_rate(method):
    # 200 data sets of 30 draws from a known distribution (exponential, mean 2: skewed, as per-image
    # metrics often are); a 90% interval must cover 2.0 in roughly 90% of them.
    boot = Bootstrap(level=0.90, method=method, n_resamples=500)
    hits = 0
    for seed in range(200):
        data = np.random.default_rng(1000 + seed).exponential(2.0, 30)
        lo, hi = mean_ci(data, Bootstrap(boot.level, boot.method, boot.n_resamples, seed))
        hits += lo <= 2.0 <= hi
    # Bootstrap intervals undercover slightly at n=30; binomial sd at p=0.9 over 200 trials is 2.1%.
    assert 0.82 <= hits / 200 <= 0.96, hits


def test_mean_interval_is_seeded_and_recorded():
    data = np.random.default_rng(0).normal(30, 2, 24)
    assert mean_ci(data, Bootstrap(seed=3)) == mean_ci(data, Bootstrap(seed=3))
    assert mean_ci(data, Bootstrap(seed=3)) != mean_ci(data, Bootstrap(seed=4))
    assert Bootstrap().as_dict() == {"level": 0.95, "method": "percentile", "n_resamples": 1000, "seed": 0}
    lo, hi = mean_ci(data)
    assert lo < data.mean() < hi


def test_mean_interval_edge_cases():
    assert all(np.isnan(mean_ci([1.0])))
    assert mean_ci([2.5, 2.5, 2.5]) == (2.5, 2.5)
    assert mean_ci([1.0, np.nan, 3.0, 2.0])[0] <= 2.0
    with pytest.raises(ValueError, match="method"):
        Bootstrap(method="bca-typo")
    assert contains_zero(-1.0, 2.0) and not contains_zero(0.5, 2.0) and not contains_zero(np.nan, 1.0)


def _correlated_curves(n_images=24, seed=0):
    """Per-image RD curves where images differ a lot (texture sets the rate) and the test codec needs ~10%
    fewer bits on every image, with a little codec-specific noise: the situation of any codec comparison."""
    rng = np.random.default_rng(seed)
    quality = np.array([28.0, 31.0, 34.0, 37.0])
    base = np.exp(rng.normal(0, 0.6, n_images))[:, None] * np.array([0.2, 0.4, 0.8, 1.6])
    anchor_bpp = base * np.exp(rng.normal(0, 0.02, base.shape))
    test_bpp = 0.9 * base * np.exp(rng.normal(0, 0.02, base.shape))
    q = np.tile(quality, (n_images, 1))
    return anchor_bpp, q + rng.normal(0, 0.05, q.shape), test_bpp, q + rng.normal(0, 0.05, q.shape)


def test_paired_bd_interval_is_narrower_than_unpaired():
    mats = _correlated_curves()
    fn = lambda ra, qa, rt, qt: bd_rate(ra, qa, rt, qt).value  # noqa: E731
    boot = Bootstrap(n_resamples=300, seed=1)
    lo_p, hi_p, n_p = paired_bd_ci(*mats, fn, boot)
    lo_u, hi_u, _ = paired_bd_ci(*mats, fn, boot, paired=False)
    point = fn(*(m.mean(0) for m in mats))
    assert lo_p <= point <= hi_p and n_p == 300
    assert hi_p < 0   # the 10% saving is distinguishable from none once pairing removes the image spread
    assert (hi_p - lo_p) < 0.25 * (hi_u - lo_u)
    assert lo_u < 0 < hi_u or (hi_u - lo_u) > 10


def test_paired_bd_interval_needs_two_images():
    mats = [m[:1] for m in _correlated_curves()]
    assert paired_bd_ci(*mats, lambda *c: bd_rate(*c).value)[2] == 0


def test_fid_patch_bootstrap_brackets_the_spread():
    rng = np.random.default_rng(0)
    orig = rng.normal(0, 1, (200, 8))
    recon = orig + rng.normal(0.3, 0.5, orig.shape)
    lo, hi = fid_patch_bootstrap(orig, recon, Bootstrap(n_resamples=30))
    assert 0 < lo < hi
