"""Per-item features of the dataset-level metrics beyond FID/KID (FD-DINOv2: DINOv2; CMMD: CLIP), and their values.

A worker extracts one feature vector per image (original and reconstruction) in each feature space a sweep's
metrics need; the store keeps them under the space's name as the protocol, beside FID's, and
:mod:`cdc_bench.sweep.dataset_metrics` turns a group's stacked features into the value at the end of a sweep.
Each set records the network file it came from (repository and the weights' sha256 prefix).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

from .fid import ItemFeatures, image_digest


def _space(space: str) -> tuple[Callable, Callable, object]:
    """(extract(images, device) -> N x D, distance(original, recon) -> (value, std), model spec) of a space."""
    if space == "dinov2":
        from . import dinov2

        return (lambda images, device: dinov2.dinov2_features(images, device=device)), dinov2.fd_dinov2, dinov2.MODEL
    if space == "clip":
        from . import cmmd

        return (lambda images, device: cmmd.clip_embeddings(images, device=device)), cmmd.cmmd, cmmd.MODEL
    raise ValueError(f"unknown feature space {space!r}; choose dinov2 or clip")


def extractor_label(space: str) -> str:
    from ..weights import file_sha256
    from .hub_models import model_files

    model = _space(space)[2]
    return f"{model.repo_id} sha256:{file_sha256(model_files(model)['model.safetensors'])[:12]}"


_ORIGINALS: "OrderedDict[tuple[str, str, str], np.ndarray]" = OrderedDict()


def space_features(space: str, original: np.ndarray, recon: np.ndarray, device: str = "cpu") -> ItemFeatures:
    """The reconstruction's and the original's features in ``space`` (the original's kept for its rate points)."""
    if original.shape != recon.shape:
        raise ValueError(f"reconstruction {recon.shape} and original {original.shape} differ in size")
    extract = _space(space)[0]
    label = extractor_label(space)
    digest = image_digest(original)
    key = (digest, space, f"{device}:{label}")
    if key not in _ORIGINALS:
        _ORIGINALS[key] = extract([original], device)
        while len(_ORIGINALS) > 4:
            _ORIGINALS.popitem(last=False)
    _ORIGINALS.move_to_end(key)
    return ItemFeatures(space, label, extract([recon], device), _ORIGINALS[key], digest)


def space_value(space: str, original: np.ndarray, recon: np.ndarray) -> tuple[float, float | None]:
    """``(value, std)`` of the space's metric from two stacked feature arrays."""
    return _space(space)[1](original, recon)
