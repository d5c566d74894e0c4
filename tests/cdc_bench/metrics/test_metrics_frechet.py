"""FID and KID on synthetic features against independent numpy/scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from cdc_bench.metrics.frechet import (feature_statistics, fid_from_features, frechet_distance, kernel_distance,
                                       polynomial_mmd2)


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


def _sets(n1, n2, d, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n1, d))
    b = rng.normal(0.5, 1.5, size=(n2, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    return a, b


@pytest.mark.parametrize("n1, n2", [(300, 200), (20, 30)])  # more samples than dimensions, and fewer
def test_fid_matches_scipy_sqrtm(n1, n2):
    a, b = _sets(n1, n2, 48)
    expected = _scipy_fid(a, b)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) == pytest.approx(expected, rel=1e-6)


def test_fid_matches_clean_fid_function():
    from cleanfid.fid import frechet_distance as clean_fid_frechet

    a, b = _sets(200, 150, 32, seed=3)
    expected = clean_fid_frechet(*feature_statistics(a), *feature_statistics(b))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)


def test_fid_of_a_set_against_itself_is_zero_and_shift_adds_its_square():
    a, _ = _sets(64, 1, 16)
    assert abs(fid_from_features(a, a)) < 1e-8
    # Shifting every sample by c moves only the mean: FID = ||c||^2.
    c = np.full(16, 0.5)
    assert fid_from_features(a, a + c) == pytest.approx(16 * 0.25, rel=1e-6)


def _mmd2_by_loops(x, y):
    """Unbiased MMD^2 written out term by term (independent of the vectorised form)."""
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_polynomial_mmd_matches_loops():
    x, y = _sets(12, 12, 5, seed=1)
    assert polynomial_mmd2(x, y) == pytest.approx(_mmd2_by_loops(x, y), rel=1e-10)


def test_kid_subsets_are_smaller_than_the_sets_so_the_std_is_real():
    from cdc_bench.metrics.frechet import kid_subset_size

    assert kid_subset_size(192, 192) == 96 and kid_subset_size(6573, 6573) == 1000 and kid_subset_size(15, 40) == 7
    x, y = _sets(15, 15, 6, seed=2)
    mean, std = kernel_distance(x, y, num_subsets=50)
    assert std > 0   # subsets of the whole set (the old min(n, 1000)) all gave the same value: std 0
    # the subset estimator is unbiased: its mean lands near the whole-set MMD
    assert abs(mean - _mmd2_by_loops(y, x)) < 3 * std


def test_kid_spread_is_nonzero_on_kodak_fid256_patches():
    """Kodak's 24 images give 192 FID/256 patches: subsets of 96, and a std that is not 0."""
    from cdc_bench.metrics.patches import patch_count

    n = 16 * patch_count(512, 768) + 8 * patch_count(768, 512)
    assert n == 192
    x, y = _sets(n, n, 64, seed=9)
    mean, std = kernel_distance(x, y + 0.3)
    assert std > 0 and mean > 0


def test_kid_mean_equals_clean_fid_on_the_same_subsets():
    from cleanfid.fid import kernel_distance as clean_fid_kid

    x, y = _sets(60, 80, 8, seed=4)
    # clean-fid draws from numpy's global generator: replay the same subsets through ours.
    np.random.seed(7)
    expected = clean_fid_kid(x, y, num_subsets=10, max_subset_size=25)
    np.random.seed(7)
    per_subset = []
    for _ in range(10):
        sub_y = y[np.random.choice(len(y), 25, replace=False)]
        sub_x = x[np.random.choice(len(x), 25, replace=False)]
        per_subset.append(polynomial_mmd2(sub_y, sub_x))
    assert np.mean(per_subset) == pytest.approx(expected, rel=1e-9)
    mean, std = kernel_distance(x, y, num_subsets=10, max_subset_size=25, seed=0)
    assert std > 0 and abs(mean - expected) < 5 * std  # other subsets, same estimator


def test_kid_separates_distributions_and_is_reproducible():
    a, b = _sets(200, 200, 16, seed=5)
    a2, _ = _sets(200, 1, 16, seed=6)
    far, _ = kernel_distance(a, b, num_subsets=20, max_subset_size=100)
    near, _ = kernel_distance(a, a2, num_subsets=20, max_subset_size=100)
    assert far > 10 * abs(near)
    assert kernel_distance(a, b, num_subsets=3, seed=1) == kernel_distance(a, b, num_subsets=3, seed=1)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        kernel_distance(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="2-D"):
        feature_statistics(np.zeros(5))
