"""LPIPS and DISTS end to end with stand-in weight files (random-init torchvision nets) in a temporary TORCH_HOME.

The real ImageNet files cannot be downloaded here; the stand-ins have the same names, layout and compute, so the
loading path (no torch.hub, weights_only) and the metric code are exercised for real.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from cdc_bench.metrics import get_metric, perceptual
from cdc_bench.weights import WeightsMissing


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    perceptual.load_lpips.cache_clear()
    perceptual.load_dists.cache_clear()
    yield tmp_path / "torch" / "hub" / "checkpoints"
    perceptual.load_lpips.cache_clear()
    perceptual.load_dists.cache_clear()


@pytest.fixture
def alexnet_standin(torch_home):
    torch_home.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), torch_home / "alexnet-owt-7be5be79.pth")
    return torch_home


@pytest.fixture
def vgg_features_standin(torch_home):
    """VGG16's convolutional weights only (60 MB instead of 530): all LPIPS-VGG and DISTS read."""
    torch_home.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    state = {k: v for k, v in torchvision.models.vgg16(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(state, torch_home / "vgg16-397923af.pth")
    return torch_home


def _pair(seed=0, shape=(64, 96, 3), noise=40):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


def test_registered_with_conventions():
    info = get_metric("lpips")
    assert (info.column, info.lower_better, info.dataset_level) == ("lpips", True, False)
    assert set(info.weights) == {"torchvision-alexnet", "lpips-alex-v0.1"}
    assert get_metric("lpips-vgg").column == "lpips_vgg" and get_metric("dists").lower_better


def test_torchvision_file_names_carry_the_sha256_prefix():
    # torch.hub's check_hash rule: the hex digits after the last '-' of the file name start the sha256.
    for weight in (perceptual.ALEXNET, perceptual.VGG16):
        prefix = weight.path.name.rsplit("-", 1)[1].split(".")[0]
        assert weight.sha256.startswith(prefix)


def test_missing_trunk_names_file_url_and_folder(torch_home):
    with pytest.raises(WeightsMissing) as err:
        perceptual.lpips_alex(*_pair())
    message = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert str(torch_home) in message
    assert not torch_home.exists() or not any(torch_home.iterdir())  # nothing was downloaded


def test_lpips_matches_the_lpips_package_own_loading(alexnet_standin):
    import lpips

    a, b = _pair()
    ours = perceptual.lpips_alex(a, b)
    # The package's own construction reads the same stand-in through torch.hub's cache (no download: it exists).
    reference = lpips.LPIPS(net="alex", verbose=False).eval()
    to = lambda im: torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        expected = float(reference(to(a), to(b)))
    assert ours == pytest.approx(expected, rel=1e-5)
    assert ours > 0
    assert perceptual.lpips_alex(a, a) == pytest.approx(0.0, abs=1e-7)


def test_lpips_grows_with_distortion_and_batches_equal_singles(alexnet_standin):
    a, small = _pair(noise=5)
    _, large = _pair(noise=80)
    c, d = _pair(seed=3, shape=(48, 48, 3))
    singles = [perceptual.lpips_alex(x, y) for x, y in ((a, small), (a, large), (c, d))]
    assert singles[0] < singles[1]
    batched = perceptual.lpips_many([a, a, c], [small, large, d], batch_size=8)
    np.testing.assert_allclose(batched, singles, rtol=1e-5)
    assert perceptual.load_lpips("alex", "cpu") is perceptual.load_lpips("alex", "cpu")  # cached per process


def test_lpips_vgg_with_standin(vgg_features_standin):
    a, b = _pair(seed=4)
    value = perceptual.lpips_vgg(a, b)
    assert value > 0 and perceptual.lpips_vgg(a, a) == pytest.approx(0.0, abs=1e-7)


def test_dists_with_standin(vgg_features_standin):
    torch.manual_seed(2)
    alpha, beta = torch.rand(1, 1475, 1, 1), torch.rand(1, 1475, 1, 1)
    total = alpha.sum() + beta.sum()  # piq's released alpha/beta are normalised to sum to 1, as DISTS defines them
    torch.save({"alpha": alpha / total, "beta": beta / total}, vgg_features_standin / "dists_weights.pt")
    a, small = _pair(seed=5, noise=5)
    _, large = _pair(seed=5, noise=80)
    assert perceptual.dists(a, a) == pytest.approx(0.0, abs=1e-5)
    assert 0 < perceptual.dists(a, small) < perceptual.dists(a, large)


def test_shape_mismatch_is_refused(alexnet_standin):
    with pytest.raises(ValueError, match="differ"):
        perceptual.lpips_many([np.zeros((8, 8, 3), np.uint8)], [np.zeros((8, 9, 3), np.uint8)])
