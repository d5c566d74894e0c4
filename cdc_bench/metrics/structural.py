"""Full-reference structure and gradient metrics through piq: SSIM, VIF, FSIM, GMSD, MS-GMSD, HaarPSI.

Each is piq 0.8's function on the reconstruction ``x`` and the original ``y`` as float32 tensors in [0, 1]
(``data_range=1``), with piq's defaults, which follow each metric's authors' MATLAB code (piq's own tests check
them against it). piq converts colour the way each paper does: VIF, GMSD and MS-GMSD use the luma of YIQ, FSIM
is FSIMc (chromatic, YIQ), HaarPSI uses YIQ. Two choices are ours:

* SSIM is the mean over the three RGB channels of the SSIM map with the 11-tap Gaussian window (sigma 1.5),
  without Wang's automatic downsampling (``downsample=False``): the SSIM codec papers compute with
  scikit-image / pytorch_msssim, and the one MS-SSIM of this package already uses that window;
* images below the smallest size a metric accepts give NaN rather than an error, as MS-SSIM does here.
"""

from __future__ import annotations

import math

import numpy as np

from . import MetricInfo

# The smallest side each piq 0.8 function accepts (found by trying sizes 1..80; below it piq raises): SSIM's
# 11-tap window, VIF's four scales, FSIM's 2x downsampling, MS-GMSD's four scales, HaarPSI's filters.
MIN_SIDE = {"ssim": 11, "vif": 41, "fsim": 2, "gmsd": 1, "ms-gmsd": 17, "haarpsi": 16}


def piq_tensor(image: np.ndarray, device: str = "cpu"):
    """H x W x 3 uint8 -> 1 x 3 x H x W float32 in [0, 1], what piq's functions take with data_range=1."""
    import torch

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].to(device)


def _piq_value(name: str, original: np.ndarray, recon: np.ndarray, device: str) -> float:
    import piq
    import torch

    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    if min(original.shape[:2]) < MIN_SIDE[name]:
        return math.nan
    x, y = piq_tensor(recon, device), piq_tensor(original, device)
    with torch.inference_mode():
        if name == "ssim":
            value = piq.ssim(x, y, data_range=1.0, downsample=False)
        elif name == "vif":
            value = piq.vif_p(x, y, data_range=1.0)
        elif name == "fsim":
            value = piq.fsim(x, y, data_range=1.0, chromatic=True)
        elif name == "gmsd":
            value = piq.gmsd(x, y, data_range=1.0)
        elif name == "ms-gmsd":
            value = piq.multi_scale_gmsd(x, y, data_range=1.0)
        elif name == "haarpsi":
            value = piq.haarpsi(x, y, data_range=1.0)
        else:
            raise ValueError(f"no piq metric {name!r}")
    return float(value)


def ssim(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """SSIM (RGB mean, Gaussian 11-tap window, no downsampling)."""
    return _piq_value("ssim", original, recon, device)


def vif(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """VIF in the pixel domain (VIFp, Sheikh & Bovik 2006), on luma; 1 for identical images."""
    return _piq_value("vif", original, recon, device)


def fsim(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """FSIMc (Zhang et al. 2011), the chromatic FSIM."""
    return _piq_value("fsim", original, recon, device)


def gmsd(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """GMSD (Xue et al. 2014): deviation of the gradient-magnitude similarity map; 0 for identical images."""
    return _piq_value("gmsd", original, recon, device)


def ms_gmsd(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """Multi-scale GMSD (Zhang et al. 2017), on luma (piq's ``chromatic=False`` default)."""
    return _piq_value("ms-gmsd", original, recon, device)


def haarpsi(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """HaarPSI (Reisenhofer et al. 2018); 1 for identical images."""
    return _piq_value("haarpsi", original, recon, device)


_PIQ = (("piq", "pip install piq"),)
SSIM = MetricInfo("ssim", "ssim", lower_better=False, label="SSIM", compute=ssim, range=(-1.0, 1.0), packages=_PIQ)
VIF = MetricInfo("vif", "vif", lower_better=False, label="VIF", compute=vif, range=(0.0, None), packages=_PIQ)
FSIM = MetricInfo("fsim", "fsim", lower_better=False, label="FSIMc", compute=fsim, range=(0.0, 1.0), packages=_PIQ)
GMSD = MetricInfo("gmsd", "gmsd", lower_better=True, label="GMSD", compute=gmsd, precision=5, range=(0.0, None), packages=_PIQ)
MS_GMSD = MetricInfo("ms-gmsd", "ms_gmsd", lower_better=True, label="MS-GMSD", compute=ms_gmsd, precision=5,
                     range=(0.0, None), packages=_PIQ)
HAARPSI = MetricInfo("haarpsi", "haarpsi", lower_better=False, label="HaarPSI", compute=haarpsi, range=(0.0, 1.0), packages=_PIQ)
