"""PSNR and MS-SSIM against CompressAI bench's own metric code, on Kodak crops compressed with real JPEG.

CompressAI's ``compute_metrics(rec, original)`` is the reference: cdc-bench's MS-SSIM must give the same number
(the fast path reuses the original's statistics across rate points, so stale or mixed-up statistics would show).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from cdc_bench.metrics import get_metric
from cdc_bench.metrics import distortion
from cdc_bench.metrics.distortion import ms_ssim, psnr

compressai_codecs = pytest.importorskip("compressai.utils.bench.codecs")

QUALITIES = (3, 35, 92)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="jpeg", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _compressai(original: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    # Argument order as in CompressAI's Codec.run: (reconstruction, original).
    return compressai_codecs.compute_metrics(recon, original, ["psnr-rgb", "ms-ssim-rgb"])


@pytest.fixture(scope="module")
def crops(kodak_dir):
    from cdc_bench.datasets.images import read_image

    # One even-sized crop and one odd-sized one (odd sides take pytorch_msssim's padded 2x2 pooling).
    a = read_image(kodak_dir / "kodim01.png")[0][100:356, 200:584]
    b = read_image(kodak_dir / "kodim23.png")[0][37:290, 101:434]
    return {"kodim01": np.ascontiguousarray(a), "kodim23": np.ascontiguousarray(b)}


@pytest.fixture(autouse=True)
def _fresh_cache():
    distortion._originals.clear()
    yield
    distortion._originals.clear()


@pytest.mark.parametrize("name", ["kodim01", "kodim23"])
def test_equal_to_compressai_bench(crops, name):
    original = crops[name]
    for quality in QUALITIES:  # the image's rate points in a row, as the runner runs them (cache hits)
        recon = _jpeg(original, quality)
        ref = _compressai(original, recon)
        assert abs(ms_ssim(original, recon) - ref["ms-ssim-rgb"]) <= 1e-4, quality
        assert abs(psnr(original, recon) - ref["psnr-rgb"]) <= 1e-4, quality


def test_ms_ssim_is_bit_identical_to_pytorch_msssim(crops):
    """Same tensors, same operations, same order: not merely close (a change of summation order shows here)."""
    for name, original in crops.items():
        for quality in QUALITIES:
            recon = _jpeg(original, quality)
            assert ms_ssim(original, recon) == _compressai(original, recon)["ms-ssim-rgb"], (name, quality)


def test_values_differ_across_qualities_and_grow_with_quality(crops):
    original = crops["kodim01"]
    values = [ms_ssim(original, _jpeg(original, q)) for q in QUALITIES]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert 0.5 < values[0] < values[-1] < 1.0


def test_cached_original_statistics_follow_the_pixels(crops):
    """Another original of the same shape, or the same array changed in place, is not served stale statistics."""
    a = crops["kodim01"]
    b = np.pad(crops["kodim23"], ((0, 256 - 253), (0, 384 - 333), (0, 0)), mode="edge")  # kodim01's shape
    recon = _jpeg(a, 35)
    first = ms_ssim(a, recon)
    other = ms_ssim(b, recon)
    assert other != first and other == _compressai(b, recon)["ms-ssim-rgb"]
    changed = a.copy()
    assert ms_ssim(changed, recon) == first
    changed[:64] = 0
    assert ms_ssim(changed, recon) == _compressai(changed, recon)["ms-ssim-rgb"] != first
    assert ms_ssim(a, recon) == first  # and back


def test_psnr_exact_values():
    a = np.full((20, 30, 3), 100, np.uint8)
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[0, 0, 0] = 110  # one sample off by 10: mse = 100 / 1800
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 * 1800 / 100), abs=1e-12)
    assert psnr(np.zeros_like(a), np.full_like(a, 255)) == pytest.approx(0.0, abs=1e-12)


def test_identical_images_and_undefined_sizes(crops):
    original = crops["kodim23"]
    assert ms_ssim(original, original.copy()) == pytest.approx(1.0, abs=1e-6)
    small = original[:160, :200]
    assert math.isnan(ms_ssim(small, small))  # too small for 5 scales: NaN, not an assertion error
    with pytest.raises(ValueError, match="shape mismatch"):
        ms_ssim(original, original[:, :-1])
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(original, original[:, :-1])


def test_registered_with_conventions():
    assert get_metric("ms-ssim").compute is ms_ssim and get_metric("psnr").compute is psnr
    assert not get_metric("ms-ssim").lower_better and get_metric("psnr").column == "psnr"
