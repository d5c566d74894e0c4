"""Comparing two sets of Inception features: Fréchet distance (FID) and kernel distance (KID). Pure numpy/scipy.

FID is the quantity of clean-fid's ``frechet_distance``, computed through eigenvalues (see there why).
KID follows clean-fid's ``kernel_distance`` estimator (unbiased
MMD^2 with the polynomial kernel ``(x.y / d + 1)^3`` over random subsets) but also returns the standard deviation
over the subsets, as torch-fidelity and the KID paper report it, and draws the subsets from a seeded generator so
a number can be reproduced; clean-fid returns only the mean and draws from numpy's global state.

Subsets are always smaller than the sets (:func:`kid_subset_size`): 1,000 samples, as in the KID paper and
torch-fidelity, when each set has at least 2,000; half the smaller set below that. Subsets as large as the set
(clean-fid's ``min(n, 1000)``) would all be the whole set on Kodak's 192 FID/256 patches, and the std would be 0.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples) in float64, as clean-fid computes them."""
    features = _as_2d(features, "features")
    if len(features) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), the quantity clean-fid's ``frechet_distance`` computes.

    Not clean-fid's function itself: it calls ``scipy.linalg.sqrtm`` on the 2048 x 2048 product, which took 30-150 s
    per value on our 2-core machines (and is inexact for the singular covariances of a few hundred patches). The
    trace of the square root only needs the eigenvalues of S1^(1/2) S2 S1^(1/2) (similar to S1 S2, symmetric PSD),
    which two ``eigh`` calls give exactly. Tests compare both against scipy's sqrtm on small problems.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in size: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2))


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    from scipy import linalg

    w, v = linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = linalg.eigvalsh(root1 @ sigma2 @ root1)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID of two feature sets. With fewer samples than dimensions (Kodak's 192 patches vs 2,048 features) the
    trace term is the nuclear norm of A B^T for centred, scaled features A, B (S1 = A^T A, S2 = B^T B): exact
    and far cheaper than any 2048 x 2048 decomposition."""
    f1, f2 = _as_2d(features1, "features1"), _as_2d(features2, "features2")
    for f in (f1, f2):
        if len(f) < 2:
            raise ValueError(f"FID needs at least 2 feature vectors per set, got {len(f)}")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    if len(f1) + len(f2) > f1.shape[1]:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a = (f1 - mu1) / np.sqrt(len(f1) - 1)
    b = (f2 - mu2) / np.sqrt(len(f2) - 1)
    diff = mu1 - mu2
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * nuclear)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equally sized samples with the kernel ``(a.b / d + 1)^3`` (clean-fid's form)."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / (m * m))


KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def kid_subset_size(n1: int, n2: int, max_subset_size: int = KID_SUBSET_SIZE) -> int:
    """Samples per KID subset: ``min(max_subset_size, min(n1, n2) // 2)``, so that subsets are drawn from a
    larger set and their spread measures something (1,000 of DIV2K's 6,573 patches; 96 of Kodak's 192)."""
    return min(max_subset_size, min(n1, n2) // 2)


def kernel_distance(features1: np.ndarray, features2: np.ndarray, num_subsets: int = KID_SUBSETS,
                    max_subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """KID as (mean, std) over ``num_subsets`` random subsets of :func:`kid_subset_size` samples each, drawn
    without replacement (the mean is unbiased for any subset size; the std is the spread over subsets)."""
    f1 = _as_2d(features1, "features1").astype(np.float64)
    f2 = _as_2d(features2, "features2").astype(np.float64)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    m = kid_subset_size(len(f1), len(f2), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 4 samples in each set (subsets of half of them), got {len(f1)} "
                         f"and {len(f2)}")
    rng = np.random.default_rng(seed)
    values = np.array([polynomial_mmd2(f2[rng.choice(len(f2), m, replace=False)],
                                       f1[rng.choice(len(f1), m, replace=False)])
                       for _ in range(num_subsets)])
    return float(values.mean()), float(values.std())


def _as_2d(features: np.ndarray, what: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (samples x dimensions), got shape {features.shape}")
    return features
