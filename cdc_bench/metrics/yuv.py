"""PSNR of the Y, U (Cb) and V (Cr) planes, the colour PSNRs JPEG AI reports beside its perceptual metrics.

Which conversion (stated because JPEG AI's documents leave room): ITU-R BT.709 (Kr = 0.2126, Kb = 0.0722),
**full range**, 4:4:4 (no chroma subsampling), computed in float64 from the 8-bit RGB samples **without
rounding** to integer planes, and PSNR with peak 255 on each plane:

    Y  = Kr R + (1 - Kr - Kb) G + Kb B
    Cb = (B - Y) / (2 (1 - Kb)) + 128
    Cr = (R - Y) / (2 (1 - Kr)) + 128

``psnr-yuv`` is JPEG AI's weighted average ``(6 PSNR_Y + PSNR_U + PSNR_V) / 8``. Identical images give inf.
"""

from __future__ import annotations

import math

import numpy as np

from . import MetricInfo

KR, KB = 0.2126, 0.0722
PEAK = 255.0


def rgb_to_ycbcr709(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> H x W x 3 float64 Y, Cb, Cr (BT.709 full range, 8-bit scale, unrounded)."""
    rgb = np.asarray(image, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = KR * r + (1 - KR - KB) * g + KB * b
    return np.stack([y, (b - y) / (2 * (1 - KB)) + 128, (r - y) / (2 * (1 - KR)) + 128], axis=-1)


def plane_psnrs(original: np.ndarray, recon: np.ndarray) -> tuple[float, float, float]:
    """PSNR [dB] of the Y, Cb and Cr planes."""
    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    diff = rgb_to_ycbcr709(original) - rgb_to_ycbcr709(recon)
    mse = np.square(diff).reshape(-1, 3).mean(axis=0)
    return tuple(math.inf if m == 0 else 10 * math.log10(PEAK ** 2 / m) for m in mse)  # type: ignore[return-value]


def psnr_y(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    return plane_psnrs(original, recon)[0]


def psnr_u(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    return plane_psnrs(original, recon)[1]


def psnr_v(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    return plane_psnrs(original, recon)[2]


def psnr_yuv(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """JPEG AI's ``(6 Y + U + V) / 8`` of the plane PSNRs."""
    y, u, v = plane_psnrs(original, recon)
    return (6 * y + u + v) / 8


def _psnr_info(name: str, label: str, compute) -> MetricInfo:
    return MetricInfo(name, name.replace("-", "_"), lower_better=False, label=label, compute=compute, unit="dB",
                      precision=2)


PSNR_Y = _psnr_info("psnr-y", "PSNR-Y (BT.709)", psnr_y)
PSNR_U = _psnr_info("psnr-u", "PSNR-U (BT.709)", psnr_u)
PSNR_V = _psnr_info("psnr-v", "PSNR-V (BT.709)", psnr_v)
PSNR_YUV = _psnr_info("psnr-yuv", "PSNR-YUV (6:1:1)", psnr_yuv)
