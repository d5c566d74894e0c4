"""PSNR and MS-SSIM, computed as CompressAI >= 1.2.1 reports them (RGB, 8-bit, data_range 255)."""

from __future__ import annotations

import math

import numpy as np

from . import MetricInfo, to_float_tensor


def psnr(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """PSNR in dB over all RGB samples of two uint8 images (inf when identical)."""
    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    mse = np.mean((original.astype(np.float64) - recon.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def ms_ssim(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """MS-SSIM of uint8 RGB images via pytorch_msssim (data_range 255).

    Images smaller than MS-SSIM's 5 scales allow (161 px with the 11-tap window) give NaN rather than an error:
    the metric is undefined there, and one tiny image must not end a sweep.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim
    import torch

    if min(original.shape[:2]) <= 160:
        return math.nan
    with torch.no_grad():
        value = _ms_ssim(to_float_tensor(original, device), to_float_tensor(recon, device), data_range=255.0)
    return float(value)


PSNR = MetricInfo("psnr", "psnr", lower_better=False, label="PSNR", compute=psnr, unit="dB", precision=2)
MS_SSIM = MetricInfo("ms-ssim", "ms_ssim", lower_better=False, label="MS-SSIM", compute=ms_ssim, range=(0.0, 1.0))
