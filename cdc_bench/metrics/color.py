"""CIEDE2000 colour difference: the mean over pixels of ΔE00 between the two images in CIELAB.

The images are read as sRGB (IEC 61966-2-1) with the D65 white point, converted to CIELAB by scikit-image's
``rgb2lab`` and compared pixel by pixel by its ``deltaE_ciede2000`` (kL = kC = kH = 1), the formula of Sharma,
Wu and Dalal (2005) whose published test pairs the tests check it against. 0 for identical images; a ΔE00 of
about 1 is a just-noticeable difference.
"""

from __future__ import annotations

import numpy as np

from . import MetricInfo


def ciede2000_map(original: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """ΔE00 of every pixel (H x W float64) of two uint8 sRGB images."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    lab1 = rgb2lab(np.asarray(original, dtype=np.float64) / 255.0, illuminant="D65", observer="2")
    lab2 = rgb2lab(np.asarray(recon, dtype=np.float64) / 255.0, illuminant="D65", observer="2")
    return deltaE_ciede2000(lab1, lab2)


def ciede2000(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """Mean ΔE00 over the pixels."""
    return float(ciede2000_map(original, recon).mean())


CIEDE2000 = MetricInfo("ciede2000", "ciede2000", lower_better=True, label="CIEDE2000 ΔE00", compute=ciede2000,
                       precision=3, range=(0.0, None), packages=(("skimage", "pip install scikit-image"),))
