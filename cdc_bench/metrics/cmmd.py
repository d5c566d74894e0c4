"""CMMD (Jayasumana et al., CVPR 2024): maximum mean discrepancy between CLIP embeddings of two image sets.

The protocol of google-research/cmmd: CLIP ViT-L/14 at 336 px (``openai/clip-vit-large-patch14-336``), each
image as float [0, 1] resized to 336 x 336 with torch's bicubic interpolation, normalised with CLIP's mean/std,
its projected image embedding (``image_embeds``) divided by its L2 norm; then the MMD with a Gaussian RBF kernel
(sigma = 10) in the estimator of their ``distance.py``, the mean of each full kernel matrix (diagonal included),
scaled by 1000: ``1000 (mean K_xx + mean K_yy - 2 mean K_xy)``. 0 for identical sets; lower is better.
Note: the preprocessing is written from the paper's code as we know it and could not be compared with it here.

Weights: ``openai/clip-vit-large-patch14-336`` on the Hugging Face hub (see :mod:`.hub_models` for pinning).
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from . import MetricInfo
from .hub_models import HubModel, load_pretrained, register_hub_model

INPUT_SIZE = 336
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGMA = 10.0
SCALE = 1000.0

MODEL = HubModel("openai/clip-vit-large-patch14-336", revision="main",
                 sha256={"config.json": None, "model.safetensors": None}, used_by=("cmmd",),
                 note="CLIP ViT-L/14@336px for CMMD; revision and sha256 not yet pinned")
WEIGHTS = register_hub_model(MODEL)


def preprocess(images: Sequence[np.ndarray], size: int = INPUT_SIZE):
    import torch
    import torch.nn.functional as F

    batch = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])).permute(0, 3, 1, 2)
    x = F.interpolate(batch, size=(size, size), mode="bicubic", align_corners=False)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


@functools.lru_cache(maxsize=2)
def load_clip(device: str = "cpu"):
    from transformers import CLIPVisionModelWithProjection

    return load_pretrained(MODEL, CLIPVisionModelWithProjection, device)


def clip_embeddings(images: Sequence[np.ndarray], model=None, device: str = "cpu", batch_size: int = 16,
                    size: int = INPUT_SIZE) -> np.ndarray:
    """N x D unit-norm float32 CLIP image embeddings (D = 768 for ViT-L/14)."""
    import torch

    model = model if model is not None else load_clip(device)
    out = []
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start:start + batch_size], size).to(device)
        with torch.inference_mode():
            emb = model(pixel_values=x).image_embeds.float()
        out.append((emb / emb.norm(dim=-1, keepdim=True)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.projection_dim), np.float32)


def mmd(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA, scale: float = SCALE) -> float:
    """CMMD's estimator: ``scale * (mean K_xx + mean K_yy - 2 mean K_xy)``, K = exp(-|a-b|^2 / (2 sigma^2))."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
        raise ValueError(f"CMMD needs two non-empty N x D embedding sets of one D, got {x.shape} and {y.shape}")
    gamma = 1.0 / (2 * sigma ** 2)
    xx, yy = (x * x).sum(1), (y * y).sum(1)

    def kernel_mean(a_sq, b_sq, ab):
        return float(np.exp(-gamma * np.maximum(a_sq[:, None] + b_sq[None, :] - 2 * ab, 0.0)).mean())

    return scale * (kernel_mean(xx, xx, x @ x.T) + kernel_mean(yy, yy, y @ y.T) - 2 * kernel_mean(xx, yy, x @ y.T))


def cmmd(original_embeddings: np.ndarray, recon_embeddings: np.ndarray) -> tuple[float, None]:
    """``(CMMD, None)``, as the dataset-level metrics return ``(value, std)``."""
    return mmd(original_embeddings, recon_embeddings), None


CMMD = MetricInfo("cmmd", "cmmd", lower_better=True, label="CMMD", compute=None, weights=WEIGHTS,
                  dataset_level=True, feature_space="clip", precision=4, range=(0.0, None))
