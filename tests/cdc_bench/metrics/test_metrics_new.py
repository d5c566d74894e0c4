"""The piq metrics, CIEDE2000, YUV PSNR and Butteraugli against their reference implementations, same inputs.

References: piq's functions called directly as their documentation says (and, for SSIM, pytorch_msssim and
scikit-image, two independent implementations); scikit-image's CIEDE2000 on Sharma, Wu & Dalal's published test
pairs; scikit-image's PSNR on planes converted by the BT.709 equations; the ``butteraugli`` program run by hand.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from cdc_bench.metrics import METRIC_PRESETS, expand_metric_presets, get_metric, metric_names
from cdc_bench.metrics import color, structural, yuv


@pytest.fixture(scope="module")
def pair():
    """A smooth 96 x 112 image (piq's VIF needs 41 px) and a noisy, shifted copy."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:112]
    base = np.stack([128 + 80 * np.sin(x / 9.0), 128 + 60 * np.cos(y / 7.0), 90 + x + y * 0.3], axis=-1)
    original = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    recon = np.clip(original.astype(float) + rng.normal(2, 9, base.shape), 0, 255).astype(np.uint8)
    return original, recon


def _tensors(original, recon):
    to = lambda im: torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return to(recon), to(original)


PIQ_REFERENCE = {
    "ssim": lambda x, y: __import__("piq").ssim(x, y, data_range=1.0, downsample=False),
    "vif": lambda x, y: __import__("piq").vif_p(x, y, data_range=1.0),
    "fsim": lambda x, y: __import__("piq").fsim(x, y, data_range=1.0, chromatic=True),
    "gmsd": lambda x, y: __import__("piq").gmsd(x, y, data_range=1.0),
    "ms-gmsd": lambda x, y: __import__("piq").multi_scale_gmsd(x, y, data_range=1.0),
    "haarpsi": lambda x, y: __import__("piq").haarpsi(x, y, data_range=1.0),
}


@pytest.mark.parametrize("name", sorted(PIQ_REFERENCE))
def test_piq_metric_equals_piq_and_orders_distortions(pair, name):
    original, recon = pair
    info = get_metric(name)
    value = info.compute(original, recon)
    assert value == pytest.approx(float(PIQ_REFERENCE[name](*_tensors(original, recon))), rel=1e-6)
    perfect = info.compute(original, original)
    worse = info.compute(original, np.clip(recon.astype(int) * 2 - original, 0, 255).astype(np.uint8))
    assert perfect == pytest.approx(0.0 if info.lower_better else 1.0, abs=1e-5)
    assert (worse > value) if info.lower_better else (worse < value)


def test_ssim_matches_pytorch_msssim_and_skimage(pair):
    from pytorch_msssim import ssim as tm_ssim
    from skimage.metrics import structural_similarity

    original, recon = pair
    ours = structural.ssim(original, recon)
    x, y = _tensors(original, recon)
    assert ours == pytest.approx(float(tm_ssim(x, y, data_range=1.0)), abs=1e-4)  # float32 sums in another order
    sk = structural_similarity(original, recon, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False)
    assert ours == pytest.approx(sk, abs=2e-3)  # skimage pads the borders; piq/pytorch_msssim use the valid part


def test_piq_metric_small_images_give_nan():
    tiny = np.zeros((12, 12, 3), np.uint8)
    assert math.isnan(structural.vif(tiny, tiny)) and not math.isnan(structural.ssim(tiny, tiny))


# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", Table 1: pairs 1, 2, 7, 17-20, 25, 34.
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_formula_on_sharma_pairs():
    from skimage.color import deltaE_ciede2000

    for lab1, lab2, expected in SHARMA_PAIRS:
        assert deltaE_ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_image_is_mean_of_pixel_differences(pair):
    from skimage.color import deltaE_ciede2000, rgb2lab

    original, recon = pair
    crop_o, crop_r = original[:4, :5], recon[:4, :5]
    by_pixel = [deltaE_ciede2000(rgb2lab(crop_o[i:i + 1, j:j + 1] / 255.0), rgb2lab(crop_r[i:i + 1, j:j + 1] / 255.0))
                for i in range(4) for j in range(5)]
    assert color.ciede2000(crop_o, crop_r) == pytest.approx(float(np.mean(by_pixel)), rel=1e-9)
    assert color.ciede2000(original, original) == 0.0


def test_yuv_conversion_and_plane_psnrs(pair):
    from skimage.metrics import peak_signal_noise_ratio

    white, red = np.full((1, 1, 3), 255, np.uint8), np.array([[[255, 0, 0]]], np.uint8)
    assert yuv.rgb_to_ycbcr709(white)[0, 0] == pytest.approx([255, 128, 128])
    assert yuv.rgb_to_ycbcr709(red)[0, 0] == pytest.approx([0.2126 * 255, 128 - 0.2126 * 255 / 1.8556, 255.5])
    original, recon = pair
    a, b = yuv.rgb_to_ycbcr709(original), yuv.rgb_to_ycbcr709(recon)
    expected = [peak_signal_noise_ratio(a[..., c], b[..., c], data_range=255) for c in range(3)]
    assert yuv.plane_psnrs(original, recon) == pytest.approx(expected, rel=1e-12)
    assert get_metric("psnr-yuv").compute(original, recon) == pytest.approx((6 * expected[0] + sum(expected[1:])) / 8)
    assert math.isinf(yuv.psnr_y(original, original))


@pytest.mark.skipif(shutil.which("butteraugli") is None,
                    reason="butteraugli not installed (apt-get install butteraugli)")
def test_butteraugli_equals_the_program_on_png_files(pair, tmp_path):
    from PIL import Image

    from cdc_bench.metrics.butteraugli import butteraugli

    original, recon = pair
    Image.fromarray(original).save(tmp_path / "a.png")
    Image.fromarray(recon).save(tmp_path / "b.png")
    by_hand = float(subprocess.run(["butteraugli", str(tmp_path / "a.png"), str(tmp_path / "b.png")],
                                   capture_output=True, text=True, check=True).stdout.split()[0])
    assert butteraugli(original, recon) == pytest.approx(by_hand, abs=1e-6) and by_hand > 0
    assert butteraugli(original, original) == 0.0
    assert butteraugli(original, recon[:, ::-1].copy()) > by_hand  # channel or row order bugs would not show this


def test_butteraugli_missing_program_is_a_preflight_row(monkeypatch):
    from cdc_bench.metrics import butteraugli as module
    from cdc_bench.sweep.preflight import metric_problems

    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    problems = metric_problems("butteraugli")
    assert len(problems) == 1 and "apt-get install butteraugli" in problems[0].fix


def test_every_new_metric_is_registered_with_metadata():
    for name in ("ssim", "vif", "fsim", "gmsd", "ms-gmsd", "haarpsi", "ciede2000", "psnr-y", "psnr-u", "psnr-v",
                 "psnr-yuv", "ssimulacra2", "butteraugli"):
        assert name in metric_names()
        info = get_metric(name)
        assert info.compute is not None and not info.dataset_level and info.lower_better is not None and info.label
    assert get_metric("gmsd").lower_better and not get_metric("vif").lower_better


def test_jpeg_ai_presets():
    from cdc_bench.sweep.preflight import parse_targets

    assert expand_metric_presets(["psnr", "jpeg-ai", "fsim"]) == ["psnr", *METRIC_PRESETS["jpeg-ai"]]
    assert all(name in metric_names() for name in METRIC_PRESETS["jpeg-ai"])
    assert parse_targets("jpeg-ai") == (0.03, 0.06, 0.12, 0.25, 0.5, 0.75)
    assert parse_targets("0.1,0.2") == (0.1, 0.2)
