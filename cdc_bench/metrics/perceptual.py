"""Learned perceptual metrics: LPIPS (AlexNet, as HiFiC and MS-ILLM report it; VGG as ``lpips-vgg``) and DISTS.

LPIPS runs through the ``lpips`` package, DISTS through ``piq``. Both normally fetch torchvision's ImageNet
weights through ``torch.hub`` on first use (a silent download, and an unpickling load). Here every file is a
registered weight (``cdc-bench weights``), resolved before loading, and loaded with
``torch.load(..., weights_only=True)``; a missing file raises :class:`WeightsMissing` naming the file, its URL and
the folder (``$TORCH_HOME/hub/checkpoints``). Networks are cached per (net, device) in the process.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from ..weights import WeightFile, register_weight
from . import MetricInfo


def torch_hub_checkpoints() -> Path:
    """torchvision's weight folder, ``$TORCH_HOME/hub/checkpoints`` (read at call time, like torch.hub)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    base = Path(spec.origin).parent if spec is not None and spec.origin else Path(f"<{package} not installed>")
    return base / relative


def _hub_weight(name: str, filename: str, url: str, sha256: str | None, used_by: list[str], note: str) -> WeightFile:
    return register_weight(WeightFile(name, url, lambda: torch_hub_checkpoints() / filename, sha256,
                                      used_by=used_by, note=note))


def _lpips_linear(net: str, sha256: str) -> WeightFile:
    relative = f"weights/v0.1/{net}.pth"
    return register_weight(WeightFile(
        f"lpips-{net}-v0.1", f"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/{relative}",
        lambda: _package_file("lpips", relative), sha256, used_by=["lpips" if net == "alex" else "lpips-vgg"],
        note="ships inside the PyPI package lpips (pip install lpips==0.1.4)"))


# torchvision names its files <arch>-<first 8 hex digits of the sha256>.pth (torch.hub's check_hash rule).
ALEXNET = _hub_weight("torchvision-alexnet", "alexnet-owt-7be5be79.pth",
                      "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                      "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", ["lpips"],
                      "torchvision AlexNet ImageNet weights (AlexNet_Weights.IMAGENET1K_V1), the LPIPS trunk")
VGG16 = _hub_weight("torchvision-vgg16", "vgg16-397923af.pth",
                    "https://download.pytorch.org/models/vgg16-397923af.pth",
                    "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", ["lpips-vgg", "dists"],
                    "torchvision VGG16 ImageNet weights (VGG16_Weights.IMAGENET1K_V1)")
DISTS_ALPHA_BETA = _hub_weight("piq-dists", "dists_weights.pt",
                               "https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt",
                               None, ["dists"], "DISTS alpha/beta of piq 0.8 (no published sha256: not verified)")
LPIPS_LINEAR = {"alex": _lpips_linear("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
                "vgg": _lpips_linear("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")}
LPIPS_TRUNK = {"alex": ALEXNET, "vgg": VGG16}


def _resolve(*weights: WeightFile) -> list[Path]:
    """Local paths of the files, never downloading (that happens before a sweep or in ``cdc-bench weights``)."""
    from ..weights import ensure_all

    found = ensure_all([w.name for w in weights], allow_download=False)
    return [found[w.name] for w in weights]


def _load(path: Path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


@functools.lru_cache(maxsize=8)
def load_lpips(net: str = "alex", device: str = "cpu"):
    """An ``lpips.LPIPS`` (v0.1) with torchvision's ImageNet trunk, built without torch.hub."""
    import lpips

    if net not in LPIPS_TRUNK:
        raise ValueError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_TRUNK)}")
    trunk_path, linear_path = _resolve(LPIPS_TRUNK[net], LPIPS_LINEAR[net])
    # pnet_rand + pretrained=False: lpips builds the layers but loads nothing (it would go through torch.hub).
    model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    model.net.load_state_dict(_trunk_state(model.net, _load(trunk_path), trunk_path), strict=True)
    result = model.load_state_dict(_load(linear_path), strict=False)
    if result.unexpected_keys or any(k.startswith("lin") for k in result.missing_keys if not k.startswith("lins.")):
        raise ValueError(f"{linear_path} is not LPIPS v0.1 {net} linear weights "
                         f"(unexpected {result.unexpected_keys}, missing {result.missing_keys})")
    return model.to(device).eval()


def _trunk_state(trunk, state: dict, path: Path) -> dict:
    """torchvision's ``features.<i>.*`` keys renamed to lpips's ``slice<k>.<i>.*`` (lpips slices ``features``)."""
    renamed = {}
    for slice_name, block in trunk.named_children():
        for index, _ in block.named_children():
            for param in ("weight", "bias"):
                key = f"features.{index}.{param}"
                if key in state:
                    renamed[f"{slice_name}.{index}.{param}"] = state[key]
    if not renamed:
        raise ValueError(f"{path} holds no torchvision 'features.*' weights")
    return renamed


def _to_lpips_input(images: Sequence[np.ndarray], device: str):
    import torch

    batch = torch.from_numpy(np.stack([np.asarray(im, dtype=np.uint8) for im in images]))
    return batch.permute(0, 3, 1, 2).to(device).float() / 127.5 - 1.0  # lpips expects [-1, 1]


def lpips_many(originals: Sequence[np.ndarray], recons: Sequence[np.ndarray], net: str = "alex",
               device: str = "cpu", batch_size: int = 8) -> np.ndarray:
    """LPIPS of each (original, reconstruction) pair; pairs of equal size run as one batch."""
    import torch

    if len(originals) != len(recons):
        raise ValueError(f"{len(originals)} originals but {len(recons)} reconstructions")
    model = load_lpips(net, device)
    values = np.full(len(originals), np.nan)
    by_shape: dict[tuple, list[int]] = {}
    for i, (a, b) in enumerate(zip(originals, recons)):
        if a.shape != b.shape:
            raise ValueError(f"pair {i}: original {a.shape} and reconstruction {b.shape} differ")
        by_shape.setdefault(a.shape, []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), max(1, batch_size)):
            chunk = indices[start:start + batch_size]
            with torch.no_grad():
                d = model(_to_lpips_input([originals[i] for i in chunk], device),
                          _to_lpips_input([recons[i] for i in chunk], device))
            values[chunk] = d.reshape(len(chunk)).double().cpu().numpy()
    return values


def lpips_alex(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    return float(lpips_many([original], [recon], "alex", device)[0])


def lpips_vgg(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    return float(lpips_many([original], [recon], "vgg", device)[0])


@functools.lru_cache(maxsize=4)
def load_dists(device: str = "cpu"):
    """piq's DISTS with its weights read from registered files (piq's own __init__ goes through torch.hub)."""
    import piq
    import torch
    import torchvision
    from piq.perceptual import VGG16_LAYERS, ContentLoss

    vgg_path, alpha_beta_path = _resolve(VGG16, DISTS_ALPHA_BETA)
    features = torchvision.models.vgg16(weights=None).features
    state = _load(vgg_path)  # DISTS uses the convolutional part only; the classifier may be absent
    features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    weights = _load(alpha_beta_path)
    channels = [3, 64, 128, 256, 512, 512]
    layer_weights = list(torch.split(weights["alpha"], channels, dim=1)) + list(
        torch.split(weights["beta"], channels, dim=1))
    model = piq.DISTS.__new__(piq.DISTS)
    # The same arguments piq.DISTS.__init__ passes (piq 0.8), with the feature extractor built here.
    ContentLoss.__init__(model, feature_extractor=features,
                         layers=[VGG16_LAYERS[n] for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")],
                         weights=layer_weights, replace_pooling=True, reduction="none",
                         normalize_features=False, allow_layers_weights_mismatch=True)
    return model.to(device).eval()


def dists(original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> float:
    """DISTS distance (0 for identical images; lower is better), inputs in [0, 1] as piq expects."""
    import torch

    if original.shape != recon.shape:
        raise ValueError(f"shape mismatch: original {original.shape}, reconstruction {recon.shape}")
    model = load_dists(device)
    x = (_to_lpips_input([recon], device) + 1) / 2
    y = (_to_lpips_input([original], device) + 1) / 2
    with torch.no_grad():
        return float(model(x, y).reshape(-1)[0])


LPIPS_ALEX = MetricInfo("lpips", "lpips", lower_better=True, label="LPIPS (AlexNet)", compute=lpips_alex,
                        weights=(ALEXNET.name, LPIPS_LINEAR["alex"].name), range=(0.0, None),
                        packages=(("lpips", "pip install lpips"),), compressai_key="lpips")
LPIPS_VGG = MetricInfo("lpips-vgg", "lpips_vgg", lower_better=True, label="LPIPS (VGG)", compute=lpips_vgg,
                       weights=(VGG16.name, LPIPS_LINEAR["vgg"].name), range=(0.0, None),
                       packages=(("lpips", "pip install lpips"),))
DISTS = MetricInfo("dists", "dists", lower_better=True, label="DISTS", compute=dists,
                   weights=(VGG16.name, DISTS_ALPHA_BETA.name), range=(0.0, None),
                   packages=(("piq", "pip install piq"),))
