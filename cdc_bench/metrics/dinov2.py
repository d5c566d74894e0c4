"""FD-DINOv2: the Fréchet distance between DINOv2 ViT-L/14 features of originals and reconstructions.

The protocol of Stein et al. (NeurIPS 2023, "Exposing flaws of generative model evaluation metrics", their
``dgm-eval``): each image resized to 224 x 224 (PIL bicubic), ImageNet mean/std normalised, the final-norm CLS
token of ``dinov2_vitl14`` (1,024 values; transformers' ``Dinov2Model.pooler_output`` is the same layer-normed CLS
token) as its feature, and the Fréchet distance of the two feature sets (the formula FID uses, computed by
:func:`.frechet.fid_from_features`). Whole images, one feature each (unlike FID/256's patches).

Weights: ``facebook/dinov2-large`` on the Hugging Face hub (see :mod:`.hub_models` for pinning).
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from . import MetricInfo
from .frechet import fid_from_features
from .hub_models import HubModel, load_pretrained, register_hub_model

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MODEL = HubModel("facebook/dinov2-large", revision="main",
                 sha256={"config.json": None, "model.safetensors": None}, used_by=("fd-dinov2",),
                 note="DINOv2 ViT-L/14 (Oquab et al. 2023) for FD-DINOv2; revision and sha256 not yet pinned")
WEIGHTS = register_hub_model(MODEL)


def preprocess(images: Sequence[np.ndarray], size: int = INPUT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """N uint8 H x W x 3 images -> N x 3 x size x size float32: PIL bicubic resize, [0, 1], mean/std normalised."""
    import torch
    from PIL import Image

    batch = np.stack([np.asarray(Image.fromarray(np.asarray(im, dtype=np.uint8)).resize((size, size), Image.BICUBIC),
                                 dtype=np.float32) / 255.0 for im in images])
    x = torch.from_numpy(batch).permute(0, 3, 1, 2)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@functools.lru_cache(maxsize=2)
def load_dinov2(device: str = "cpu"):
    from transformers import Dinov2Model

    return load_pretrained(MODEL, Dinov2Model, device)


def dinov2_features(images: Sequence[np.ndarray], model=None, device: str = "cpu", batch_size: int = 16) -> np.ndarray:
    """N x D float32 CLS features (D = 1,024 for ViT-L/14); ``model`` defaults to the registered weights."""
    import torch

    model = model if model is not None else load_dinov2(device)
    out = []
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start:start + batch_size]).to(device)
        with torch.inference_mode():
            out.append(model(pixel_values=x).pooler_output.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)


def fd_dinov2(original_features: np.ndarray, recon_features: np.ndarray) -> tuple[float, None]:
    """``(FD, None)`` of two feature sets, as the dataset-level metrics return ``(value, std)``."""
    return fid_from_features(original_features, recon_features), None


FD_DINOV2 = MetricInfo("fd-dinov2", "fd_dinov2", lower_better=True, label="FD-DINOv2", compute=None,
                       weights=WEIGHTS, dataset_level=True, feature_space="dinov2", precision=2, range=(0.0, None))
