"""Bootstrap confidence intervals over images: dataset means, and paired BD-rate / BD-metric.

On 24 Kodak images a 0.2 dB or 3 % BD-rate gap can be noise; an interval over images says whether it is. Means
use :func:`scipy.stats.bootstrap` (percentile or BCa). BD values are bootstrapped *paired*: one resample of image
indices is applied to both curves, because both codecs saw the same images, and the image-to-image variation
they share cancels in the difference. Every interval records its level, method, resample count and seed.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

METHODS = ("percentile", "BCa")


@dataclass(frozen=True)
class Bootstrap:
    """How an interval was computed; stored beside it so a table can say so."""

    level: float = 0.95
    method: str = "percentile"
    n_resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise ValueError(f"confidence level must be in (0, 1), got {self.level}")
        if self.method not in METHODS:
            raise ValueError(f"bootstrap method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.n_resamples < 10:
            raise ValueError(f"n_resamples must be at least 10, got {self.n_resamples}")

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def percent(self) -> str:
        return f"{self.level * 100:g}%"


def mean_ci(values, boot: Bootstrap = Bootstrap()) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values`` (NaNs dropped); (nan, nan) with fewer than 2 values."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    if np.ptp(x) == 0:   # every image gives the same value: no spread to resample
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's DegenerateDataWarning on near-constant data: NaN says it
        res = bootstrap((x,), np.mean, confidence_level=boot.level, n_resamples=boot.n_resamples,
                        method=boot.method, random_state=np.random.default_rng(boot.seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_bd_ci(anchor_bpp: np.ndarray, anchor_q: np.ndarray, test_bpp: np.ndarray, test_q: np.ndarray,
                 bd: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float],
                 boot: Bootstrap = Bootstrap(), paired: bool = True) -> tuple[float, float, int]:
    """Percentile interval of a BD value over images.

    Inputs are images x rate points matrices (row i of every matrix is the same image). Each resample draws
    image indices with replacement, averages each curve's rate points over them and calls ``bd`` on the means.
    ``paired=False`` draws the two curves' images independently (for comparison only: it ignores that both
    codecs saw the same images). Returns (low, high, resamples that gave a finite value).
    """
    mats = [np.asarray(m, dtype=float) for m in (anchor_bpp, anchor_q, test_bpp, test_q)]
    n = mats[0].shape[0]
    if n < 2 or any(m.shape[0] != n for m in mats):
        return float("nan"), float("nan"), 0
    rng = np.random.default_rng(boot.seed)
    values = []
    for _ in range(boot.n_resamples):
        ia = rng.integers(0, n, n)
        it = ia if paired else rng.integers(0, n, n)
        v = bd(mats[0][ia].mean(0), mats[1][ia].mean(0), mats[2][it].mean(0), mats[3][it].mean(0))
        if np.isfinite(v):
            values.append(v)
    # Too many failed resamples (curves that stop overlapping) would bias the interval: report none.
    if len(values) < 0.9 * boot.n_resamples:
        return float("nan"), float("nan"), len(values)
    alpha = (1 - boot.level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi), len(values)


def contains_zero(low: float, high: float) -> bool:
    """True when an interval is known and includes 0: the difference is not distinguishable from none."""
    return bool(np.isfinite(low) and np.isfinite(high) and low <= 0 <= high)


def fid_patch_bootstrap(orig: np.ndarray, recon: np.ndarray, boot: Bootstrap = Bootstrap(n_resamples=50),
                        ) -> tuple[float, float]:
    """Percentile interval of FID by resampling patches (paired: patch i of the original and of its
    reconstruction are drawn together). Each resample is a full Fréchet distance over the feature dimension
    (a 2048 x 2048 matrix square root for Inception), so keep ``n_resamples`` small: tens, not thousands."""
    from ..metrics.frechet import fid_from_features

    n = len(orig)
    if n < 2 or len(recon) != n:
        return float("nan"), float("nan")
    rng = np.random.default_rng(boot.seed)
    values = []
    for _ in range(boot.n_resamples):
        idx = rng.integers(0, n, n)
        values.append(fid_from_features(orig[idx], recon[idx]))
    alpha = (1 - boot.level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)
