"""FD-DINOv2 and CMMD offline: tiny random networks of the real architectures (transformers' Dinov2Model and
CLIPVisionModelWithProjection), written by the test as ``config.json`` + ``model.safetensors`` into the manual
model folder, loaded through the registered weight files, and a whole ``cdc-bench run`` computing both.

References on the same inputs: the network called directly on torchvision-preprocessed pixels; clean-fid's
``frechet_distance`` for FD; a direct transcription of CMMD's ``distance.py`` (pairwise distances by scipy) for MMD.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cdc_bench.errors import WeightsMissing
from cdc_bench.metrics import cmmd, dinov2, features, get_metric

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14)


def _save(model, folder):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config.to_dict()))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """Tiny DINOv2 and CLIP networks in the manual folders of a fresh cdc-bench cache; the hub is off."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    torch.manual_seed(0)
    dino = Dinov2Model(Dinov2Config(image_size=224, **TINY)).eval()
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=336, projection_dim=16, **TINY)).eval()
    _save(dino, dinov2.MODEL.folder())
    _save(clip, cmmd.MODEL.folder())
    for cache in (dinov2.load_dinov2, cmmd.load_clip):
        cache.cache_clear()
    features._ORIGINALS.clear()
    yield dino, clip
    for cache in (dinov2.load_dinov2, cmmd.load_clip):
        cache.cache_clear()


def _images(n, seed=0, size=(40, 56)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def test_dinov2_features_are_the_networks_cls_token_on_dgm_eval_preprocessing(tiny_models):
    from torchvision import transforms

    dino, _ = tiny_models
    images = _images(3)
    reference = transforms.Compose([transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
                                    transforms.ToTensor(),
                                    transforms.Normalize(dinov2.IMAGENET_MEAN, dinov2.IMAGENET_STD)])
    x = torch.stack([reference(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        expected = dino(pixel_values=x).pooler_output.numpy()
    np.testing.assert_allclose(dinov2.dinov2_features(images), expected, rtol=1e-4, atol=1e-5)


def test_fd_equals_clean_fid_formula():
    from cleanfid.fid import frechet_distance

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 6)), rng.normal(0.3, 1.2, size=(60, 6))
    expected = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert dinov2.fd_dinov2(a, b)[0] == pytest.approx(expected, rel=1e-6)


def test_mmd_equals_cmmd_distance_py_transcription():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 5)), rng.normal(0.5, size=(30, 5))
    gamma = 1 / (2 * 10.0 ** 2)
    k = lambda a, b: np.exp(-gamma * cdist(a, b, "sqeuclidean")).mean()
    assert cmmd.mmd(x, y) == pytest.approx(1000 * (k(x, x) + k(y, y) - 2 * k(x, y)), rel=1e-9)
    assert cmmd.mmd(x, x) == pytest.approx(0, abs=1e-9) and cmmd.mmd(x, y) > 0


def test_clip_embeddings_are_unit_norm_projected(tiny_models):
    _, clip = tiny_models
    images = _images(2)
    emb = cmmd.clip_embeddings(images)
    with torch.no_grad():
        raw = clip(pixel_values=cmmd.preprocess(images)).image_embeds.numpy()
    np.testing.assert_allclose(emb, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_missing_model_names_the_manual_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    dinov2.load_dinov2.cache_clear()
    with pytest.raises(WeightsMissing, match="dinov2-large"):
        dinov2.load_dinov2()
    assert get_metric("fd-dinov2").dataset_level and get_metric("cmmd").weights == cmmd.WEIGHTS


def test_run_computes_fd_dinov2_and_cmmd_per_rate_point(tiny_models, tmp_path):
    from cdc_bench.cli import main
    from cdc_bench.store.results import ResultsStore

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(_images(3, seed=5, size=(48, 64))):
        Image.fromarray(image).save(folder / f"im{i}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-d", f"folder:{folder}", "-c", "jpeg", "-q", "5,90", "-m",
                                       "psnr,fd-dinov2,cmmd", "--out", str(out), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = ResultsStore(out).dataset_metrics_frame()
    got = {(r.metric, r.quality): r for r in rows.itertuples()}
    assert set(got) == {(m, q) for m in ("fd-dinov2", "cmmd") for q in ("5", "90")}
    assert got[("fd-dinov2", "5")].protocol == "dinov2" and got[("cmmd", "5")].protocol == "clip"
    assert got[("fd-dinov2", "5")].feature_extractor.startswith("facebook/dinov2-large sha256:")
    assert all(r.value >= 0 and r.n_images == 3 for r in got.values())
