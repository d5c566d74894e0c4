"""SSIMULACRA 2 (Cloudinary / libjxl ``tools/ssimulacra2``), our numpy port, checked against libjxl's value.

Why our own: the PyPI package ``ssimulacra2`` 0.3.0 (a pure-Python port, file paths only) blurs with scipy's
truncated, reflected Gaussian instead of libjxl's recursive, zero-padded one, and its values differ from the
C++ program's by several points (21.16 vs 17.51 here on rust-av/ssimulacra2's ``tank`` pair); no Debian package
ships the C++ tool (libjxl-tools 0.7 has cjxl/djxl/jxlinfo only). This module follows libjxl step by step:

1. sRGB (8-bit) -> linear RGB; at each of 6 scales (stopping once a side is under 8 px) the linear image
   is halved by 2x2 box averaging (edge pixels repeated), then turned into XYB (libjxl's opsin absorbance,
   cube root) and made positive (B <- B - Y + 0.55, X <- 14 X + 0.42, Y <- Y + 0.01);
2. means, variances and covariance through libjxl's recursive Gaussian (Charalampidis 2016, sigma 1.5, zero
   outside the image);
3. per channel and scale the SSIM error ``1 - (1 - (mu1-mu2)^2) (2 s12 + C2) / (s11 + s22 + C2)`` (no C1),
   and the edge maps (ringing / blur "artifact" and "detail lost"), each as its mean and its 4-norm;
4. the 108 weights of libjxl and its polynomial and power mapping to a score: 100 for identical images, ~90
   visually lossless, ~30 low quality, negative for very poor reconstructions.

Computed in float64 (libjxl uses float32). Against the C++ program's scores on synthetic pairs (the tests):
within 0.002 on unlike patterns, 0.3 on blurred ones, 2.5 on nearly identical flat images, where the C++ value
is itself float32 noise.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import MetricInfo

NUM_SCALES = 6
MIN_SIDE = 8
C2 = 0.0009
SIGMA = 1.5

# libjxl opsin_params.h: the opsin absorbance matrix and bias of XYB.
OPSIN = np.array([[0.30, 0.622, 0.078], [0.23, 0.692, 0.078], [0.24342268924547819, 0.20476744424496821,
                                                                0.55180986650955360]])
OPSIN_BIAS = 0.0037930732552754493

# libjxl tools/ssimulacra2.cc: Msssim::Score's weights, in its order (channel X,Y,B; scale; norm 1 then 4;
# per norm the SSIM error, then artifact, then detail lost).
WEIGHTS = np.array([
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379, 0.0,
    1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0,
    1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833, 0.0,
    0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0, 0.0,
    0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
    0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
    225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0, 0.0,
    0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0, 8.826982764996862,
    23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682, 0.9834382792465353, 0.0012286405048278493,
    171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
])


@functools.lru_cache(maxsize=1)
def recursive_gaussian() -> tuple[int, np.ndarray, np.ndarray]:
    """``(radius N, n2[3], d1[3])`` of libjxl's ``CreateRecursiveGaussian(1.5)`` (Charalampidis 2016, eqs. 33-57)."""
    radius = round(3.2795 * SIGMA + 0.2546)
    omega = np.array([1, 3, 5]) * math.pi / (2 * radius)
    p = np.array([1, -1, 1]) / np.tan(0.5 * omega)
    r = np.array([1, -1, 1]) * p * p / np.sin(omega)
    rho = np.exp(-0.5 * SIGMA * SIGMA * omega * omega) / radius
    d13 = p[0] * r[1] - r[0] * p[1]
    d35 = p[1] * r[2] - r[1] * p[2]
    d51 = p[2] * r[0] - r[2] * p[0]
    zeta15, zeta35 = d35 / d13, d51 / d13
    a = np.array([p, r, [zeta15, zeta35, 1.0]])
    gamma = np.array([1.0, radius * radius - SIGMA * SIGMA, zeta15 * rho[0] + zeta35 * rho[1] + rho[2]])
    beta = np.linalg.solve(a, gamma)
    return radius, -beta * np.cos(omega * (radius + 1)), -2 * np.cos(omega)


def _blur_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """One pass of libjxl's recursive Gaussian along ``axis``: for n = -N+1 .. L-1,
    ``y_k[n] = n2_k (x[n-N-1] + x[n+N-1]) - d1_k y_k[n-1] - y_k[n-2]`` (x = 0 outside), output sum_k y_k[n], n >= 0.
    Each y_k is a second-order IIR filter, so scipy's ``lfilter`` runs it over all rows at once."""
    from scipy.signal import lfilter

    radius, n2, d1 = recursive_gaussian()
    length = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (2 * radius, radius)
    padded = np.pad(x, pad)
    steps = length + radius - 1
    u = np.take(padded, range(steps), axis=axis) + np.take(padded, range(2 * radius, 2 * radius + steps), axis=axis)
    out = sum(lfilter([n2[k]], [1.0, d1[k], 1.0], u, axis=axis) for k in range(3))
    return np.take(out, range(radius - 1, steps), axis=axis)


def blur(plane: np.ndarray) -> np.ndarray:
    return _blur_axis(_blur_axis(plane, 1), 0)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    v = np.asarray(image, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def positive_xyb(linear: np.ndarray) -> np.ndarray:
    """H x W x 3 linear RGB -> 3 x H x W XYB made positive, as ssimulacra2.cc's ``MakePositiveXYB(ToXYB(...))``."""
    mixed = np.maximum(linear @ OPSIN.T + OPSIN_BIAS, 0.0)
    mixed = np.cbrt(mixed) - np.cbrt(OPSIN_BIAS)
    x = 0.5 * (mixed[..., 0] - mixed[..., 1])
    y = 0.5 * (mixed[..., 0] + mixed[..., 1])
    b = mixed[..., 2]
    return np.stack([14.0 * x + 0.42, y + 0.01, (b - y) + 0.55])


def downscale_by_2(linear: np.ndarray) -> np.ndarray:
    """2x2 box average; an odd last row/column is averaged with itself (libjxl's clamp to the edge)."""
    h, w = linear.shape[:2]
    padded = np.pad(linear, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return 0.25 * (padded[0::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 0::2] + padded[1::2, 1::2])


def _norms(values: np.ndarray) -> tuple[float, float]:
    """(mean, 4-norm mean) of a non-negative map."""
    return float(values.mean()), float(np.mean(values ** 4) ** 0.25)


def _scale_stats(img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """3 x 2 x 3: per channel, per norm (1, 4): the SSIM error, artifact and detail-lost terms."""
    stats = np.zeros((3, 2, 3))
    for c in range(3):
        a, b = img1[c], img2[c]
        mu1, mu2 = blur(a), blur(b)
        s11, s22, s12 = blur(a * a), blur(b * b), blur(a * b)
        num_m = 1.0 - (mu1 - mu2) ** 2
        num_s = 2 * (s12 - mu1 * mu2) + C2
        denom_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + C2
        ssim_error = np.maximum(1.0 - num_m * num_s / denom_s, 0.0)
        edge = (1.0 + np.abs(b - mu2)) / (1.0 + np.abs(a - mu1)) - 1.0
        for n, (ssim_n, artifact_n, lost_n) in enumerate(zip(_norms(ssim_error), _norms(np.maximum(edge, 0.0)),
                                                             _norms(np.maximum(-edge, 0.0)))):
            stats[c, n] = (ssim_n, artifact_n, lost_n)
    return stats


def score(scales: list[np.ndarray]) -> float:
    """libjxl's Msssim::Score: weighted sum in its order (weights consumed only for the scales present)."""
    total, i = 0.0, 0
    for c in range(3):
        for stats in scales:
            for n in range(2):
                for term in range(3):
                    total += WEIGHTS[i] * abs(stats[c, n, term])
                    i += 1
    total *= 0.9562382616834844
    total = 2.326765642916932 * total - 0.020884521182843837 * total ** 2 + 6.248496625763138e-05 * total ** 3
    return 100.0 - 10.0 * total ** 0.6276336467831387 if total > 0 else 100.0


def ssimulacra2(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """SSIMULACRA 2 score of the reconstruction (NaN for images under 8 x 8 px, which libjxl refuses)."""
    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    if min(original.shape[:2]) < MIN_SIDE:
        return math.nan
    lin1, lin2 = srgb_to_linear(original[..., :3]), srgb_to_linear(recon[..., :3])
    scales = []
    for scale in range(NUM_SCALES):
        if min(lin1.shape[:2]) < MIN_SIDE:
            break
        if scale:  # as libjxl: the size is checked before halving, so the last scale may be under 8 px
            lin1, lin2 = downscale_by_2(lin1), downscale_by_2(lin2)
        scales.append(_scale_stats(positive_xyb(lin1), positive_xyb(lin2)))
    return score(scales)


SSIMULACRA2 = MetricInfo("ssimulacra2", "ssimulacra2", lower_better=False, label="SSIMULACRA 2",
                         compute=ssimulacra2, precision=2, range=(None, 100.0))
