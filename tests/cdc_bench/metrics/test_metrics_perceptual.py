"""LPIPS and DISTS end to end with stand-in weight files (random-init torchvision nets) in a temporary TORCH_HOME.

The real ImageNet files cannot be downloaded here; the stand-ins have the same names, layout and compute, so the
loading path (no torch.hub, weights_only) and the metric code are exercised for real. Each stand-in's sha256 is
pinned in place of the real one for the test (an unpinned file is refused). Values are compared with the reference
packages (lpips, piq) built their own way around the same backbone state dict.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from cdc_bench.metrics import get_metric, perceptual
from cdc_bench.download import sha256_of
from cdc_bench.weights import WeightChecksumMismatch, WeightsMissing


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
def pinned_alexnet(alexnet_standin, monkeypatch):
    monkeypatch.setattr(perceptual.ALEXNET, "sha256", sha256_of(alexnet_standin / "alexnet-owt-7be5be79.pth"))
    return alexnet_standin


@pytest.fixture
def vgg_features_standin(torch_home):
    """VGG16's convolutional weights only (60 MB instead of 530): all LPIPS-VGG and DISTS read."""
    torch_home.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    state = {k: v for k, v in torchvision.models.vgg16(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(state, torch_home / "vgg16-397923af.pth")
    return torch_home


@pytest.fixture
def pinned_vgg(vgg_features_standin, monkeypatch):
    monkeypatch.setattr(perceptual.VGG16, "sha256", sha256_of(vgg_features_standin / "vgg16-397923af.pth"))
    return vgg_features_standin


_VGG16 = torchvision.models.vgg16  # the tests patch torchvision.models.vgg16 itself


def _reference_vgg16(standin_dir):
    """A torchvision VGG16 whose features hold the stand-in's weights: what the reference packages build from."""
    model = _VGG16(weights=None)
    state = torch.load(standin_dir / "vgg16-397923af.pth", weights_only=True)
    model.features.load_state_dict({k[len("features."):]: v for k, v in state.items()})
    return model


def _to_lpips(image):
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1


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


def test_lpips_matches_the_lpips_package_own_loading(pinned_alexnet):
    import lpips

    a, b = _pair()
    ours = perceptual.lpips_alex(a, b)
    # The package's own construction reads the same stand-in through torch.hub's cache (no download: it exists).
    reference = lpips.LPIPS(net="alex", verbose=False).eval()
    with torch.no_grad():
        expected = float(reference(_to_lpips(a), _to_lpips(b)))
    assert ours == pytest.approx(expected, rel=1e-5)
    assert ours > 0
    assert perceptual.lpips_alex(a, a) == pytest.approx(0.0, abs=1e-7)


def test_lpips_grows_with_distortion_and_batches_equal_singles(pinned_alexnet):
    a, small = _pair(noise=5)
    _, large = _pair(noise=80)
    c, d = _pair(seed=3, shape=(48, 48, 3))
    singles = [perceptual.lpips_alex(x, y) for x, y in ((a, small), (a, large), (c, d))]
    assert singles[0] < singles[1]
    batched = perceptual.lpips_many([a, a, c], [small, large, d], batch_size=8)
    np.testing.assert_allclose(batched, singles, rtol=1e-5)
    assert perceptual.load_lpips("alex", "cpu") is perceptual.load_lpips("alex", "cpu")  # cached per process


def test_lpips_vgg_matches_the_lpips_package(pinned_vgg, monkeypatch):
    import lpips
    import lpips.pretrained_networks as lpips_nets

    a, b = _pair(seed=4)
    ours = perceptual.lpips_vgg(a, b)
    # lpips's own construction (its slicing of torchvision's VGG16, its packaged linear layers), same backbone.
    monkeypatch.setattr(lpips_nets.tv, "vgg16", lambda *args, **kwargs: _reference_vgg16(pinned_vgg))
    reference = lpips.LPIPS(net="vgg", verbose=False).eval()
    with torch.no_grad():
        expected = float(reference(_to_lpips(a), _to_lpips(b)))
    assert ours == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert perceptual.lpips_vgg(a, a) == pytest.approx(0.0, abs=1e-7)


def test_dists_matches_piq(pinned_vgg, monkeypatch):
    import piq
    import piq.perceptual as piq_perceptual

    torch.manual_seed(2)
    alpha, beta = torch.rand(1, 1475, 1, 1), torch.rand(1, 1475, 1, 1)
    total = alpha.sum() + beta.sum()  # piq's released alpha/beta are normalised to sum to 1, as DISTS defines them
    torch.save({"alpha": alpha / total, "beta": beta / total}, pinned_vgg / "dists_weights.pt")
    a, small = _pair(seed=5, noise=5)
    _, large = _pair(seed=5, noise=80)
    ours = [perceptual.dists(a, small), perceptual.dists(a, large)]
    # piq's own DISTS: its torch.hub read of dists_weights.pt (the file is in the hub cache: no download) and
    # its VGG16 feature extractor, given the same backbone.
    monkeypatch.setattr(piq_perceptual, "vgg16", lambda *args, **kwargs: _reference_vgg16(pinned_vgg))
    reference = piq.DISTS(reduction="none").eval()
    to01 = lambda im: (_to_lpips(im) + 1) / 2  # noqa: E731
    with torch.no_grad():
        expected = [float(reference(to01(x), to01(a))) for x in (small, large)]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)
    assert perceptual.dists(a, a) == pytest.approx(0.0, abs=1e-5)
    assert ours[0] < ours[1]


def test_a_trunk_that_fails_its_sha256_is_never_loaded(alexnet_standin):
    # the stand-in is not torchvision's file: unpinned, it must be refused before torch.load
    with pytest.raises(WeightChecksumMismatch, match="fails its sha256"):
        perceptual.lpips_alex(*_pair())


def test_shape_mismatch_is_refused(pinned_alexnet):
    with pytest.raises(ValueError, match="differ"):
        perceptual.lpips_many([np.zeros((8, 8, 3), np.uint8)], [np.zeros((8, 9, 3), np.uint8)])
